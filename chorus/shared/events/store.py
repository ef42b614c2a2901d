"""The event store: what users did after the review dump (ratings, purchases, views, reviews), kept durably, in
SQLite (the embedded default) or PostgreSQL, through SQLAlchemy Core.

One table, ``chorus_events``, in the order events arrived (``seq``, assigned by the database, increasing, never
reused). A forgotten user is a *tombstone*: a row of kind ``forget`` that replaces every earlier event of that user
(they are deleted in the same transaction). The tombstone keeps the user's rows of the review dump out of every
later version (:meth:`EventStore.tombstones`), and everything a service knew of the user before it is dropped: an
answer uses only the events after the user's last tombstone (:meth:`EventStore.live`). So one indexed query by
``(user_id, seq)`` gives a service all it needs about a user, and the user's highest ``seq``
(:meth:`EventStore.user_seq`) changes with every write that concerns them, which is what the gateway's cache keys
carry.

Durability: :meth:`EventStore.append` and :meth:`EventStore.forget` return after their transaction committed:
PostgreSQL's commit (``synchronous_commit`` on, its default), SQLite in WAL mode with ``synchronous=FULL``, so an
acknowledged write survives a ``kill -9`` of every process (and, for SQLite, a power cut).

Group commit: appends go through one writer thread per store (:meth:`EventStore.submit`). It takes every append
waiting when it is free (up to :data:`GROUP_EVENTS` events), writes them in one transaction, and answers each
caller once that transaction committed. A commit costs a flush to disk, and a flush costs about the same for one
event as for thousands, so many clients posting at once share flushes instead of queueing for one each. Each
caller's answer counts its own events, exactly as if the appends had run one after the other in the order they
arrived: within a group, the first occurrence of an ``event_id`` is the one stored. No timer is involved: an append
that finds the writer idle is written at once; appends that arrive while a transaction is under way are written
together by the next one.

Idempotency: every event has an ``event_id`` (the client's, or a random one); an id seen before is not stored again,
which makes retries of a batch safe. The schema is versioned (:data:`MIGRATIONS`, table ``chorus_schema``); opening
a store applies the migrations it lacks, under a lock, and refuses a store whose schema is newer than this code.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import redact_url

KINDS = ("rating", "purchase", "view", "review")
"""What a user can do to an item: ``rating`` and ``review`` carry a star rating (and a review its text)."""
RATED_KINDS = frozenset({"rating", "review"})
FORGET = "forget"
"""The kind of a tombstone row (never accepted from a client)."""
MAX_BATCH = 1000
"""Most events in one :meth:`EventStore.append`."""
MAX_TEXT_CHARS = 20_000
"""Longest review text an event may carry."""
MAX_ID_CHARS = 256
"""Longest ``event_id``, ``user_id`` or ``item_id`` (the columns' width)."""
GROUP_EVENTS = 5 * MAX_BATCH
"""Most events the writer puts in one transaction (see the module docstring): appends waiting beyond it go into the
next one, so one group never holds the callers of the next for long."""

metadata = sa.MetaData()
events = sa.Table(
    "chorus_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(MAX_ID_CHARS), nullable=False, unique=True),
    sa.Column("user_id", sa.String(MAX_ID_CHARS), nullable=False),
    sa.Column("item_id", sa.String(MAX_ID_CHARS), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("rating", sa.Float(), nullable=True),
    sa.Column("text", sa.Text(), nullable=True),
    sa.Column("ts", sa.Float(), nullable=False),
    sa.Index("chorus_events_user_seq", "user_id", "seq"),
    sqlite_autoincrement=True,
)
schema = sa.Table("chorus_schema", metadata, sa.Column("version", sa.Integer(), nullable=False))


def _create_events(conn: Connection) -> None:
    events.create(conn)


MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "the events table, its user index and its unique event ids", _create_events),
)
"""The schema's versions, in order: (version, what it adds, the function that applies it in a transaction)."""
SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass(frozen=True)
class NewEvent:
    """An event as a client sent it, checked (:func:`new_event`).

    Attributes
    ----------
    event_id : str or None
        The client's id for idempotent retries; None: the store makes one.
    user_id, item_id : str
    kind : str
        One of :data:`KINDS`.
    rating : float or None
        The star rating of a ``rating`` or ``review`` (required there), else None.
    text : str or None
        A review's text.
    timestamp : float
        Seconds since the epoch (UTC).
    """

    event_id: str | None
    user_id: str
    item_id: str
    kind: str
    rating: float | None
    text: str | None
    timestamp: float


@dataclass(frozen=True)
class Event:
    """A stored event (or a tombstone, ``kind == "forget"``, whose ``item_id`` is None)."""

    seq: int
    event_id: str
    user_id: str
    item_id: str | None
    kind: str
    rating: float | None
    text: str | None
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "kind": self.kind,
            "rating": self.rating,
            "text": self.text,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class Appended:
    """What :meth:`EventStore.append` did: events stored, events whose id was seen before."""

    stored: int
    duplicates: int


@dataclass
class _Append:
    """One caller's batch waiting for the writer, where its answer goes (a thread's future, or an event loop's
    future with its loop), and (while its group is written) the ids of its events that are the first of their id
    in the group."""

    batch: list[NewEvent]
    future: Future[Appended] | asyncio.Future[Appended]
    loop: asyncio.AbstractEventLoop | None = None
    firsts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Live:
    """What the store says about one user past a version's cutoff (:meth:`EventStore.live`).

    Attributes
    ----------
    forgotten : bool
        A tombstone came after the cutoff: the version's knowledge of the user (their rows of the dump) must not
        be used.
    events : list of Event
        The user's events after the cutoff and after their last tombstone, oldest first (no tombstones).
    """

    forgotten: bool
    events: list[Event]


def new_event(
    user_id: str,
    item_id: str,
    kind: str,
    rating: float | None = None,
    text: str | None = None,
    timestamp: float = 0.0,
    event_id: str | None = None,
) -> NewEvent:
    """A checked :class:`NewEvent`.

    Raises
    ------
    InvalidInput : an unknown kind, a rating missing on a rated kind or given on another, text on a kind other than
        ``review``, an empty id or one longer than :data:`MAX_ID_CHARS`, a text longer than :data:`MAX_TEXT_CHARS`,
        an id or a text holding a NUL character (PostgreSQL's text cannot), a rating or timestamp that is not finite.
    """
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind in RATED_KINDS and rating is None:
        raise InvalidInput(f"an event of kind {kind!r} needs a rating")
    if rating is not None and not math.isfinite(rating):
        raise InvalidInput(f"a rating must be a finite number, got {rating!r}")
    if not math.isfinite(timestamp):
        raise InvalidInput(f"a timestamp must be a finite number of seconds, got {timestamp!r}")
    if kind not in RATED_KINDS and rating is not None:
        raise InvalidInput(f"an event of kind {kind!r} carries no rating (only {' and '.join(sorted(RATED_KINDS))} do)")
    if text is not None and kind != "review":
        raise InvalidInput(f"only a review carries text, not an event of kind {kind!r}")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"a review's text is at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}")
    for name, value in (("user_id", user_id), ("item_id", item_id), ("event_id", event_id)):
        if value is None:
            continue
        if not value:
            raise InvalidInput(f"{name} must not be empty")
        if len(value) > MAX_ID_CHARS:
            raise InvalidInput(f"{name} is at most {MAX_ID_CHARS} characters, got {len(value):,}")
        if "\x00" in value:
            raise InvalidInput(f"{name} must not contain a NUL character")
    if text is not None and "\x00" in text:
        raise InvalidInput("a review's text must not contain a NUL character")
    return NewEvent(event_id, user_id, item_id, kind, rating, text, float(timestamp))


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The URL of a SQLite store at ``path``."""
    return f"sqlite:///{Path(path).resolve()}"


_WRITE = "chorus_write"
_WRITE_LOCK = 7463910572
"""The PostgreSQL advisory lock every write transaction takes (see :meth:`EventStore._write`)."""
_T = TypeVar("_T")
_REFUSED = (sa.exc.DataError, sa.exc.IntegrityError)
"""Errors that say the database refused the rows (not that it failed)."""
_COLUMNS = "event_id, user_id, item_id, kind, rating, text, ts"
# One statement for a whole group, in the rows' order (``seq`` follows it), answering the ids it stored.
# PostgreSQL: one array per column, and the write lock taken by the same statement, which runs as a transaction of
# its own (autocommit): one round trip, answered after the commit. The lock is held before any row reaches the
# insert (the rows come from joining its one row), so before any ``seq`` is drawn, and until the commit.
_PG_LOCK = f"SELECT pg_advisory_xact_lock({_WRITE_LOCK})"
_PG_INSERT = (
    f"WITH turn AS ({_PG_LOCK}) INSERT INTO chorus_events ({_COLUMNS}) SELECT {_COLUMNS} FROM turn, "
    "unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::float8[], %s::text[], %s::float8[]) "
    f"WITH ORDINALITY AS batch({_COLUMNS}, n) ORDER BY n ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
# SQLite: one JSON array of rows (``WHERE true`` tells SQLite's parser that ON CONFLICT is no join's ON).
_SQLITE_INSERT = (
    f"INSERT INTO chorus_events ({_COLUMNS}) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, "
    "value ->> 4, value ->> 5, value ->> 6 FROM json_each(?) WHERE true ORDER BY key "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def _engine(url: str) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql://...`` (psycopg 3)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InvalidInput(
            f"not an event store URL: {redact_url(url)!r} (sqlite:///path or postgresql://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInput("a SQLite event store needs a file: sqlite:///path/to/events.db")
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the events are personal data: the file (and SQLite's -wal and -shm beside it, which take its mode) is the
        # owner's alone
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})

        # SQLAlchemy's recipe for real SQLite transactions: pysqlite's own BEGIN is turned off and each transaction
        # says BEGIN itself, IMMEDIATE for a write (it waits for the write lock up front, so a writer never fails
        # half-way on a lock another took after it began)
        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

        return engine
    if backend == "postgresql":
        # no pre-ping (a round trip on every checkout): a connection found dead is retried once (:meth:`_retry`)
        return sa.create_engine(parsed.set(drivername="postgresql+psycopg"))
    raise InvalidInput(f"an event store is SQLite or PostgreSQL, not {backend!r}: {redact_url(url)}")


class EventStore:
    """The event store at ``url`` (see the module docstring); safe to share between threads.

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/events.db`` or ``postgresql://user@host/db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self._postgres = self.engine.dialect.name == "postgresql"
        # reads are single statements: on PostgreSQL without BEGIN and ROLLBACK around each (SQLite's reads are
        # in-process and cheap either way)
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT") if self._postgres else self.engine
        self._retry(self._migrate)
        self._appends: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        self._held: psycopg.Connection[Any] | None = None  # the writer's own PostgreSQL connection (autocommit)

    @property
    def public_url(self) -> str:
        """The URL with its password hidden, for logs and status pages."""
        return redact_url(self.url)

    def close(self) -> None:
        """Finish the appends already submitted, then close the connections; later appends are refused."""
        with self._writer_lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None:
            self._appends.put(None)  # after every append submitted: the writer answers them all, then stops
            writer.join()
        if self._held is not None:
            self._held.close()
            self._held = None
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends, one at a time: SQLite's BEGIN IMMEDIATE, and on
        PostgreSQL a transaction-scoped advisory lock taken first. So ``seq`` order is commit order: a reader that
        saw ``seq`` n has seen every event below n, which the cutoffs, the incremental scans and the cache keys
        built on :meth:`user_seq` rely on (PostgreSQL's sequence alone hands out numbers in the order transactions
        start, not the order they commit)."""
        with self.engine.connect() as conn, conn.execution_options(**{_WRITE: True}).begin():
            if self._postgres:
                conn.execute(sa.text(_PG_LOCK))
            yield conn

    def _retry(self, work: Callable[[], _T]) -> _T:
        """``work()``, run again once when it failed on a connection the database had closed (a server restart
        leaves the pool holding dead connections). Safe for writes too: an append's event ids are fixed before
        its transaction, so a second attempt stores nothing twice."""
        try:
            return work()
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return work()

    def _migrate(self) -> None:
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7463910571)"))  # one migrator at a time
            schema.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema.c.version))).scalar_one_or_none() or 0
            if current > SCHEMA_VERSION:
                raise InvalidInput(
                    f"the event store {self.public_url} has schema version {current}, newer than this Chorus knows "
                    f"({SCHEMA_VERSION}): upgrade Chorus"
                )
            for version, _what, apply in MIGRATIONS:
                if version > current:
                    apply(conn)
                    conn.execute(schema.insert().values(version=version))

    def append(self, batch: Sequence[NewEvent]) -> Appended:
        """Store ``batch`` (1 to :data:`MAX_BATCH` events); return when it is durable.

        An event whose ``event_id`` is already stored (or came earlier in the batch, or in an append that came
        before it) is a duplicate and is not stored again. The batch is written by the store's writer, in one
        transaction with the appends waiting beside it (see the module docstring): it is stored whole or not at
        all.

        Raises
        ------
        InvalidInput : an empty batch or one over :data:`MAX_BATCH` events.
        RuntimeError : the store was closed.
        Exception : whatever the database raised: whether the events were stored is then unknown (retrying the
            same event ids stores nothing twice).
        """
        return self.submit(batch).result()

    def submit(self, batch: Sequence[NewEvent]) -> Future[Appended]:
        """Hand ``batch`` to the writer and return at once: the future's result is what :meth:`append` returns,
        set once the transaction that holds the batch committed (or its exception, once that failed).

        Raises
        ------
        InvalidInput : an empty batch or one over :data:`MAX_BATCH` events.
        RuntimeError : the store was closed.
        """
        future: Future[Appended] = Future()
        self._enqueue(_Append(self._checked(batch), future))
        return future

    def submit_async(self, batch: Sequence[NewEvent]) -> asyncio.Future[Appended]:
        """:meth:`submit` for a coroutine: a future of the running event loop. The writer answers every caller
        of a group that waits on the same loop with one wake-up of that loop.

        Raises
        ------
        InvalidInput, RuntimeError : as :meth:`submit`.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Appended] = loop.create_future()
        self._enqueue(_Append(self._checked(batch), future, loop))
        return future

    @staticmethod
    def _checked(batch: Sequence[NewEvent]) -> list[NewEvent]:
        if not 1 <= len(batch) <= MAX_BATCH:
            raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} events, got {len(batch)}")
        return list(batch)

    def _enqueue(self, pending: _Append) -> None:
        with self._writer_lock:
            if self._closed:
                raise RuntimeError(f"the event store {self.public_url} is closed")
            if self._writer is None:
                # started on the first append, so processes that only read (and may fork) never hold a thread
                self._writer = threading.Thread(target=self._write_groups, name="chorus-events-writer", daemon=True)
                self._writer.start()
            self._appends.put(pending)

    def _write_groups(self) -> None:
        """The writer: each turn takes every append waiting (up to :data:`GROUP_EVENTS` events, at least one
        append) and commits them together; it stops at the ``None`` that :meth:`close` puts last."""
        carried: _Append | None = None
        while True:
            first = carried if carried is not None else self._appends.get()
            carried = None
            if first is None:
                return
            group, size, stop = [first], len(first.batch), False
            while size < GROUP_EVENTS:
                try:
                    more = self._appends.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if size + len(more.batch) > GROUP_EVENTS:
                    carried = more  # the first of the next group: the order of arrival is kept
                    break
                group.append(more)
                size += len(more.batch)
            # a thread's future that was cancelled is left out (an event loop's is answered if still waiting)
            self._commit(
                [a for a in group if not isinstance(a.future, Future) or a.future.set_running_or_notify_cancel()]
            )
            if stop:
                return

    def _commit(self, group: list[_Append]) -> None:
        """Write ``group`` in one transaction and answer each of its callers (never raises)."""
        if not group:
            return
        try:
            rows: list[tuple[Any, ...]] = []
            seen: set[str] = set()
            for pending in group:
                pending.firsts = []
                for e in pending.batch:
                    event_id = e.event_id if e.event_id is not None else f"chorus:{secrets.token_hex(16)}"
                    if event_id in seen:
                        continue  # a duplicate of an event of this group that came before it
                    seen.add(event_id)
                    pending.firsts.append(event_id)
                    rating = None if e.rating is None else float(e.rating)
                    rows.append((event_id, e.user_id, e.item_id, e.kind, rating, e.text, float(e.timestamp)))
            # the event ids are fixed before the first attempt, so a second one stores nothing twice
            stored = self._retry(lambda: self._insert_rows(rows))
        except Exception as exc:
            if len(group) > 1 and isinstance(exc, _REFUSED):
                # one caller's events the database refuses (not a failure of the database): each append alone,
                # so that only that caller hears of it
                for pending in group:
                    self._commit([pending])
                return
            _answer([(pending, exc) for pending in group])
            return
        answers: list[tuple[_Append, Appended | Exception]] = []
        for pending in group:
            count = sum(event_id in stored for event_id in pending.firsts)
            answers.append((pending, Appended(stored=count, duplicates=len(pending.batch) - count)))
        _answer(answers)

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert ``rows`` (distinct event ids), in their order, in one transaction; return the ids stored (those
        not stored before)."""
        if self._postgres:
            return self._insert_postgres(rows)
        with self._write() as conn:
            found = conn.exec_driver_sql(_SQLITE_INSERT, (json.dumps(rows),))
            return {str(row[0]) for row in found}

    def _insert_postgres(self, rows: list[tuple[Any, ...]]) -> set[str]:
        """:meth:`_insert_rows` on PostgreSQL: one statement (:data:`_PG_INSERT`, the write lock and the insert),
        a transaction of its own, through psycopg on a connection the writer keeps (a pool checkout, BEGIN, a
        separate lock statement and COMMIT cost more round trips and CPU than the insert itself). psycopg returns
        once the server said it is ready for the next query, which it says after the commit. A connection the
        server closed is dropped, and the error says so, for :meth:`_retry`."""
        if self._held is None:
            pooled = self.engine.raw_connection()
            conn = cast(psycopg.Connection[Any], pooled.driver_connection)
            pooled.detach()  # autocommit below: it must never serve another transaction of the pool
            conn.autocommit = True
            self._held = conn
        conn = self._held
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        try:
            inserted = conn.execute(_PG_INSERT, columns).fetchall()
        except psycopg.Error as exc:
            lost = conn.broken or conn.closed
            if lost:
                self._held = None
                conn.close()
            # as SQLAlchemy would have raised it (IntegrityError, DataError, OperationalError...), on both backends
            raise sa.exc.DBAPIError.instance(
                _PG_INSERT, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=lost
            ) from exc
        return {str(row[0]) for row in inserted}

    def forget(self, user_id: str, timestamp: float) -> int:
        """Delete every event of ``user_id`` and leave a tombstone; return how many events were deleted.

        Idempotent in effect: forgetting a user twice leaves one tombstone's worth of meaning (the second replaces
        the first)."""
        tombstone = events.insert().values(
            event_id=f"forget:{secrets.token_hex(16)}", user_id=user_id, item_id=None, kind=FORGET, ts=timestamp
        )

        def delete() -> int:
            with self._write() as conn:
                gone = conn.execute(sa.delete(events).where(events.c.user_id == user_id, events.c.kind != FORGET))
                conn.execute(sa.delete(events).where(events.c.user_id == user_id, events.c.kind == FORGET))
                conn.execute(tombstone)
            return int(gone.rowcount or 0)

        return self._retry(delete)

    def _rows(self, statement: sa.Select[Any]) -> list[sa.Row[Any]]:
        """The rows of one read statement."""

        def read() -> list[sa.Row[Any]]:
            with self._reads.connect() as conn:
                return list(conn.execute(statement).all())

        return self._retry(read)

    def _number(self, statement: sa.Select[Any]) -> int:
        """The one number a read statement gives (0 for NULL)."""

        def read() -> int:
            with self._reads.connect() as conn:
                return int(conn.execute(statement).scalar() or 0)

        return self._retry(read)

    def live(self, user_id: str, after: int = 0) -> Live:
        """``user_id``'s events with ``seq > after`` (a version's cutoff), see :class:`Live`."""
        rows = self._rows(
            sa.select(events).where(events.c.user_id == user_id, events.c.seq > after).order_by(events.c.seq)
        )
        found = [_event(r) for r in rows]
        marks = [i for i, e in enumerate(found) if e.kind == FORGET]
        if marks:
            return Live(forgotten=True, events=found[marks[-1] + 1 :])
        return Live(forgotten=False, events=found)

    def page(self, user_id: str, limit: int, before: int | None = None) -> list[Event]:
        """Up to ``limit`` of ``user_id``'s events, newest first, those with ``seq < before`` when given."""
        where = [events.c.user_id == user_id, events.c.kind != FORGET]
        if before is not None:
            where.append(events.c.seq < before)
        rows = self._rows(sa.select(events).where(*where).order_by(events.c.seq.desc()).limit(limit))
        return [_event(r) for r in rows]

    def user_seq(self, user_id: str) -> int:
        """The highest ``seq`` of any row about ``user_id`` (0 for none): it changes with every write about them."""
        return self._number(sa.select(sa.func.max(events.c.seq)).where(events.c.user_id == user_id))

    def last_seq(self) -> int:
        """The highest ``seq`` stored (0 for an empty store): a version trained now takes this as its cutoff."""
        return self._number(sa.select(sa.func.max(events.c.seq)))

    def tombstones(self, upto: int | None = None, after: int = 0) -> dict[str, int]:
        """Every forgotten user and the ``seq`` of their tombstone, those with ``after < seq <= upto``."""
        where = [events.c.kind == FORGET, events.c.seq > after]
        if upto is not None:
            where.append(events.c.seq <= upto)
        rows = self._rows(sa.select(events.c.user_id, events.c.seq).where(*where))
        return {str(row.user_id): int(row.seq) for row in rows}

    def scan(self, after: int = 0, upto: int | None = None, chunk: int = 10_000) -> Iterator[Event]:
        """Every event (no tombstones) with ``after < seq <= upto``, in ``seq`` order, read ``chunk`` at a time."""
        last = after
        while True:
            where = [events.c.seq > last, events.c.kind != FORGET]
            if upto is not None:
                where.append(events.c.seq <= upto)
            rows = self._rows(sa.select(events).where(*where).order_by(events.c.seq).limit(chunk))
            if not rows:
                return
            for row in rows:
                yield _event(row)
            last = int(rows[-1].seq)


def _answer(answers: list[tuple[_Append, Appended | Exception]]) -> None:
    """Give each caller its outcome: a thread's future at once, the futures of an event loop in one call on
    that loop (one wake-up for the whole group)."""
    on_loops: defaultdict[asyncio.AbstractEventLoop, list[tuple[Any, Appended | Exception]]] = defaultdict(list)
    for pending, outcome in answers:
        if pending.loop is not None:
            on_loops[pending.loop].append((pending.future, outcome))
        elif isinstance(outcome, Exception):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
    for loop, outcomes in on_loops.items():
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:
            pass  # the loop was closed: nobody waits for these answers any more


def _settle(outcomes: list[tuple[asyncio.Future[Appended], Appended | Exception]]) -> None:
    """On the callers' event loop: set each future still waiting (a caller that gave up cancelled its own)."""
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _event(row: sa.Row[Any]) -> Event:
    return Event(
        seq=int(row.seq),
        event_id=str(row.event_id),
        user_id=str(row.user_id),
        item_id=None if row.item_id is None else str(row.item_id),
        kind=str(row.kind),
        rating=None if row.rating is None else float(row.rating),
        text=row.text,
        timestamp=float(row.ts),
    )
