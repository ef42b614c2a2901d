"""Group commit in the event store, on both backends: appends waiting at the same time are written in one
transaction, each caller gets its own counts as if the appends had run one after the other, nothing is
acknowledged before its transaction committed, and ``seq`` follows the order of arrival."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from chorus.shared.events.store import Appended, EventStore, NewEvent, events, new_event

pytestmark = pytest.mark.timeout(120)


def view(event_id: str, user: str = "u", item: str = "i") -> NewEvent:
    return new_event(user, item, "view", timestamp=1.0, event_id=event_id)


def ids(store: EventStore) -> list[str]:
    """Every stored event id, in ``seq`` order."""
    return [e.event_id for e in store.scan()]


class Groups:
    """Records the size of each group the writer commits, and can hold the writer inside a transaction."""

    def __init__(self, store: EventStore) -> None:
        self.sizes: list[int] = []
        self.inside = threading.Event()
        commit: Callable[[list[Any]], None] = store._commit
        insert: Callable[[list[tuple[Any, ...]]], set[str]] = store._insert_rows

        def counted(group: list[Any]) -> None:
            self.sizes.append(len(group))
            commit(group)

        def noticed(rows: list[tuple[Any, ...]]) -> set[str]:
            self.inside.set()
            return insert(rows)

        store._commit = counted  # type: ignore[method-assign]
        store._insert_rows = noticed  # type: ignore[method-assign]


@contextmanager
def writer_held(store: EventStore, groups: Groups) -> Iterator[None]:
    """The writer busy with a first append (waiting for the write lock this block holds): appends submitted in
    the block queue up and are written together once it ends."""
    with store._write():
        first = store.submit([view("first")])
        assert groups.inside.wait(30), "the writer never started the first append"
        yield
    assert first.result(timeout=30) == Appended(1, 0)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    opened = EventStore(store_url)
    yield opened
    opened.close()


def test_appends_waiting_together_are_one_transaction_answered_as_if_one_after_the_other(store):
    groups = Groups(store)
    with writer_held(store, groups):
        a = store.submit([view("x"), view("y"), view("x")])  # x twice within the batch
        b = store.submit([view("y"), view("z")])  # y came in a, which arrived first
        c = store.submit([view("first"), view("w")])  # "first" is stored by the group before
        assert not (a.done() or b.done() or c.done())  # nothing answered before its commit
    answers = [f.result(timeout=30) for f in (a, b, c)]
    assert answers == [Appended(2, 1), Appended(1, 1), Appended(1, 1)]
    assert groups.sizes == [1, 3]  # the first append alone, then the three that waited, together
    # seq follows the order of arrival, and the order within each batch
    assert ids(store) == ["first", "x", "y", "z", "w"]


def test_concurrent_appends_from_many_threads_store_every_event_once(store):
    groups = Groups(store)
    threads, per_thread, batch = 8, 10, 20
    # each thread posts its own events, and every event twice (in two different batches of two threads), so the
    # same id is in flight in concurrent batches: the store must keep one and count the other as a duplicate
    answers: list[Appended] = []
    lock = threading.Lock()

    def post(t: int) -> None:
        for b in range(per_thread):
            mine = [view(f"t{t}-b{b}-{k}", user=f"u{t}") for k in range(batch)]
            neighbour = [view(f"t{(t + 1) % threads}-b{b}-{k}", user=f"u{(t + 1) % threads}") for k in range(batch)]
            for chunk in (mine, neighbour):
                done = store.append(chunk)
                with lock:
                    answers.append(done)

    workers = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    distinct = threads * per_thread * batch
    assert sum(a.stored for a in answers) == distinct
    assert sum(a.duplicates for a in answers) == distinct
    stored = ids(store)
    assert len(stored) == len(set(stored)) == distinct
    assert max(groups.sizes) > 1, "no two appends were ever written together"


def test_appends_from_many_tasks_of_one_event_loop(store):
    async def main() -> list[Appended]:
        futures = [store.submit_async([view(f"e{k % 50}"), view(f"f{k}")]) for k in range(200)]
        return list(await asyncio.gather(*futures))

    answers = asyncio.run(main())
    assert sum(a.stored for a in answers) == 250 and sum(a.duplicates for a in answers) == 150
    # the first append holding an id stores it: e0..e49 by the first 50 appends
    assert [a.stored for a in answers[:50]] == [2] * 50 and [a.stored for a in answers[50:]] == [1] * 150
    assert sorted(ids(store)) == sorted([f"e{k}" for k in range(50)] + [f"f{k}" for k in range(200)])


class CommitFails(EventStore):
    """A store whose transactions fail at the end, as a full disk or a lost server makes them fail: the group's
    rows are inserted, then the transaction is rolled back instead of committed, and the error comes out."""

    failing = True

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> set[str]:
        if not self.failing:
            return super()._insert_rows(rows)
        names = ("event_id", "user_id", "item_id", "kind", "rating", "text", "ts")
        try:
            with self._write() as conn:
                conn.execute(events.insert(), [dict(zip(names, row, strict=True)) for row in rows])
                raise _RolledBack
        except _RolledBack:
            pass
        raise sa.exc.OperationalError("COMMIT", None, OSError("could not write to the log: no space left"))


class _RolledBack(Exception):
    pass


def test_a_failed_commit_answers_every_waiting_caller_with_the_error_and_acknowledges_nothing(store_url):
    store = CommitFails(store_url)
    groups = Groups(store)
    try:
        with store._write():
            first = store.submit([view("first")])
            assert groups.inside.wait(30)
            waiting = [store.submit([view(f"e{k}"), view("shared")]) for k in range(5)]
        for future in [first, *waiting]:
            with pytest.raises(sa.exc.OperationalError, match="no space left"):
                future.result(timeout=30)
        assert groups.sizes == [1, 5]
        assert ids(store) == []
        # the store works again once the database does, and the ids of the failed appends are new to it
        store.failing = False
        assert store.append([view("e0"), view("shared")]) == Appended(2, 0)
    finally:
        store.close()


def test_one_callers_refused_events_fail_only_that_caller(store):
    """A group the database refuses because of one batch (a value it cannot hold) is written again one append at
    a time, so the other callers are answered as usual."""
    groups = Groups(store)
    no_user = NewEvent("bad", None, "i", "view", None, None, 1.0)  # type: ignore[arg-type]  # what new_event refuses
    with writer_held(store, groups):
        good = store.submit([view("a")])
        refused = store.submit([no_user])
        later = store.submit([view("b")])
    assert good.result(timeout=30) == Appended(1, 0) and later.result(timeout=30) == Appended(1, 0)
    with pytest.raises(sa.exc.IntegrityError):
        refused.result(timeout=30)
    assert groups.sizes == [1, 3, 1, 1, 1]  # the group of three failed, then each append alone
    assert ids(store) == ["first", "a", "b"]


def test_close_answers_what_was_submitted_and_refuses_what_comes_after(store_url):
    store = EventStore(store_url)
    futures: list[Future[Appended]] = [store.submit([view(f"e{k}")]) for k in range(20)]
    store.close()
    assert all(f.result(timeout=0) == Appended(1, 0) for f in futures)
    with pytest.raises(Exception, match="closed"):
        store.append([view("late")])
    assert sorted(ids(EventStore(store_url))) == sorted(f"e{k}" for k in range(20))


def test_the_writer_replaces_a_connection_the_server_closed(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the writer keeps a connection of its own on PostgreSQL only")
    assert store.append([view("a")]) == Appended(1, 0)
    held = store._held
    assert held is not None
    with store.engine.connect() as conn:  # as a restart of the server would
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": held.info.backend_pid})
    assert store.append([view("b")]) == Appended(1, 0)
    assert ids(store) == ["a", "b"]
