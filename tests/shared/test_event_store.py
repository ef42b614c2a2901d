"""The event store on both backends (a SQLite file, a PostgreSQL schema of the test's own): idempotent appends,
tombstones, what a service sees past a version's cutoff, pagination, migrations, and durability across kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.events.store import MAX_BATCH, SCHEMA_VERSION, EventStore, events, new_event, schema
from tests.conftest import REPO


def rating(user: str, item: str, stars: float, event_id: str | None = None, ts: float = 1.0):
    return new_event(user, item, "rating", rating=stars, timestamp=ts, event_id=event_id)


def test_an_event_id_is_stored_once(store_url):
    store = EventStore(store_url)
    first = store.append([rating("u", "a", 4, "e1"), rating("u", "b", 5, "e2"), rating("u", "a", 4, "e1")])
    assert (first.stored, first.duplicates) == (2, 1)
    again = store.append([rating("u", "a", 4, "e1"), rating("u", "c", 3, "e3")])
    assert (again.stored, again.duplicates) == (1, 1)
    assert [(e.event_id, e.item_id) for e in store.live("u").events] == [("e1", "a"), ("e2", "b"), ("e3", "c")]
    # events without an id are never duplicates of each other
    assert store.append([rating("v", "a", 4), rating("v", "a", 4)]).stored == 2


def test_batches_are_bounded(store_url):
    store = EventStore(store_url)
    with pytest.raises(InvalidInput, match="1 to 1000"):
        store.append([])
    with pytest.raises(InvalidInput, match="1 to 1000"):
        store.append([rating("u", str(i), 3) for i in range(MAX_BATCH + 1)])
    assert store.append([rating("u", str(i), 3) for i in range(MAX_BATCH)]).stored == MAX_BATCH


def test_events_are_checked():
    with pytest.raises(InvalidInput, match="needs a rating"):
        new_event("u", "i", "rating")
    with pytest.raises(InvalidInput, match="carries no rating"):
        new_event("u", "i", "purchase", rating=3.0)
    with pytest.raises(InvalidInput, match="kind must be one of"):
        new_event("u", "i", "forget")
    with pytest.raises(InvalidInput, match="only a review carries text"):
        new_event("u", "i", "view", text="hello")
    with pytest.raises(InvalidInput, match="user_id must not be empty"):
        new_event("", "i", "view")
    with pytest.raises(InvalidInput, match="item_id is at most 256 characters, got 257"):
        new_event("u", "i" * 257, "view")
    with pytest.raises(InvalidInput, match="event_id must not contain a NUL"):
        new_event("u", "i", "view", event_id="a\x00b")
    with pytest.raises(InvalidInput, match="text must not contain a NUL"):
        new_event("u", "i", "review", rating=4.0, text="good\x00")
    with pytest.raises(InvalidInput, match="rating must be a finite number"):
        new_event("u", "i", "rating", rating=float("nan"))
    with pytest.raises(InvalidInput, match="timestamp must be a finite number"):
        new_event("u", "i", "view", timestamp=float("inf"))


def test_seq_increases_and_each_write_about_a_user_moves_their_seq(store_url):
    store = EventStore(store_url)
    assert (store.last_seq(), store.user_seq("u")) == (0, 0)
    store.append([rating("u", "a", 4)])
    one = store.user_seq("u")
    store.append([rating("w", "a", 4)])
    assert store.user_seq("u") == one < store.user_seq("w") == store.last_seq()
    store.forget("u", timestamp=2.0)
    assert store.user_seq("u") > store.user_seq("w")


def test_forget_deletes_the_events_and_leaves_a_tombstone(store_url):
    store = EventStore(store_url)
    store.append([rating("u", "a", 4), rating("u", "b", 2), rating("w", "a", 5)])
    cutoff = store.last_seq()
    assert store.forget("u", timestamp=9.0) == 2
    assert store.page("u", 10) == []
    live = store.live("u", after=cutoff)
    assert live.forgotten and live.events == []
    assert list(store.tombstones()) == ["u"]
    assert [e.user_id for e in store.scan()] == ["w"]
    # events after the tombstone belong to the user as a new one; a version trained past the tombstone knows that
    store.append([rating("u", "c", 3)])
    after_forget = store.live("u", after=0)
    assert after_forget.forgotten and [e.item_id for e in after_forget.events] == ["c"]
    past = store.live("u", after=store.tombstones()["u"])
    assert not past.forgotten and [e.item_id for e in past.events] == ["c"]
    # forgetting twice keeps one tombstone
    store.forget("u", timestamp=10.0)
    assert len(store.tombstones()) == 1 and store.live("u").events == []


def test_live_sees_only_what_came_after_the_cutoff(store_url):
    store = EventStore(store_url)
    store.append([rating("u", "a", 4), rating("u", "b", 2)])
    cutoff = store.last_seq()
    store.append([rating("u", "c", 5)])
    assert [e.item_id for e in store.live("u", after=cutoff).events] == ["c"]
    assert [e.item_id for e in store.live("u").events] == ["a", "b", "c"]


def test_pages_are_newest_first(store_url):
    store = EventStore(store_url)
    store.append([rating("u", str(i), 3) for i in range(7)])
    first = store.page("u", 3)
    assert [e.item_id for e in first] == ["6", "5", "4"]
    second = store.page("u", 3, before=first[-1].seq)
    assert [e.item_id for e in second] == ["3", "2", "1"]
    assert [e.item_id for e in store.page("u", 3, before=second[-1].seq)] == ["0"]


def test_scan_reads_in_order_in_chunks(store_url):
    store = EventStore(store_url)
    store.append([rating(f"u{i % 3}", str(i), 3) for i in range(25)])
    seqs = [e.seq for e in store.scan(chunk=4)]
    assert len(seqs) == 25 and seqs == sorted(seqs)
    assert [e.seq for e in store.scan(after=seqs[9], upto=seqs[14])] == seqs[10:15]


def test_migrations_run_once_even_when_many_open_the_store_at_once(store_url):
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            EventStore(store_url).close()
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = EventStore(store_url)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(schema.c.version)).scalars().all() == [SCHEMA_VERSION]


def test_a_newer_schema_is_refused(store_url):
    store = EventStore(store_url)
    with store.engine.begin() as conn:
        conn.execute(schema.insert().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(InvalidInput, match="newer than this Chorus knows"):
        EventStore(store_url)


def test_bad_urls_are_named():
    with pytest.raises(InvalidInput, match="SQLite or PostgreSQL"):
        EventStore("mysql://root@localhost/x")
    with pytest.raises(InvalidInput, match="needs a file"):
        EventStore("sqlite://")
    with pytest.raises(InvalidInput, match="not an event store URL"):
        EventStore("no url at all")


WRITER = """
import sys
from chorus.shared.events.store import EventStore, new_event
store = EventStore(sys.argv[1])
for i in range(100000):
    store.append([new_event("u", f"i{i}", "rating", rating=4.0, timestamp=float(i), event_id=f"e{i}")])
    print(i, flush=True)
"""


def test_an_acknowledged_event_survives_kill_9(store_url):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url], cwd=REPO, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert proc.stdout is not None
        acknowledged = -1
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 200:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    stored = {e.event_id for e in EventStore(store_url).live("u").events}
    assert {f"e{i}" for i in range(acknowledged + 1)} <= stored


def test_a_reader_that_saw_seq_n_has_seen_every_event_below_it(store_url):
    """Writers take turns, so seq order is commit order: while one write is in flight, a later one waits, and no
    reader can see a seq whose predecessor is still to come (the cutoffs, scans and cache keys rely on it)."""
    store = EventStore(store_url)
    store.append([rating("u", "a", 4, "first")])
    entered, release = threading.Event(), threading.Event()

    def slow() -> None:
        with store._write() as conn:
            conn.execute(events.insert().values(event_id="slow", user_id="u", item_id="b", kind="view", ts=1.0))
            entered.set()
            release.wait(30)

    writer = threading.Thread(target=slow)
    writer.start()
    assert entered.wait(30)
    later = threading.Thread(target=lambda: store.append([rating("u", "c", 4, "later")]))
    later.start()
    later.join(timeout=1.0)  # it must wait for the slow write; if it does not, it has committed by now
    seen_last = store.last_seq()
    seen = {e.seq for e in store.scan()}
    release.set()
    writer.join(timeout=30)
    later.join(timeout=30)
    everything = {e.seq for e in store.scan()}
    assert len(everything) == 3
    assert {q for q in everything if q <= seen_last} == seen
