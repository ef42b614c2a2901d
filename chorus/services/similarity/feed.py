"""The similarity service's reads of the event store named by ``CHORUS_EVENTS_URL``
(:class:`chorus.shared.events.store.EventStore`).

The store is opened on first use, not when the process starts, so a service whose store is down still starts,
serves nothing that needs the store and says why in ``/readyz``; every read that fails raises
:class:`~chorus.shared.contract.errors.EventsUnavailable` (HTTP 503) naming the store, so an answer is never
silently stale. A failed open is retried on the next read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from chorus.shared.contract.errors import ChorusError, EventsUnavailable
from chorus.shared.contract.names import redact_url
from chorus.shared.events.store import Event, EventStore, Live


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message (SQLAlchemy's own adds its statement and a link)."""
    if isinstance(exc, ChorusError):
        return exc.detail
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class EventFeed:
    """Reads of the event store at ``url`` (as :class:`EventStore` takes it), shared by every version the process
    serves; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.public_url = redact_url(url)
        self._store: EventStore | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _reading(self, what: str) -> Iterator[EventStore]:
        """The open store, for reading ``what``; any failure becomes :class:`EventsUnavailable`."""
        try:
            store = self._store
            if store is None:
                with self._lock:
                    if self._store is None:
                        self._store = EventStore(self.url)
                    store = self._store
            yield store
        except (sa.exc.SQLAlchemyError, OSError, ChorusError) as exc:
            raise EventsUnavailable(
                f"the event store {self.public_url} cannot be read ({what}): {_reason(exc)}"
            ) from None

    def last_seq(self) -> int:
        """The store's highest ``seq`` (one indexed query)."""
        with self._reading("its last seq") as store:
            return store.last_seq()

    def changes(self, after: int, upto: int) -> tuple[list[Event], dict[str, int]]:
        """The events with ``after < seq <= upto`` (no tombstones), oldest first, and every tombstone with
        ``seq > after`` by user (those past ``upto`` too: a tombstone means at once that the user's earlier
        events are gone)."""
        with self._reading("the events since the last read") as store:
            events = list(store.scan(after=after, upto=upto))
            tombstones = store.tombstones(after=after)
        return events, tombstones

    def live(self, user_id: str) -> Live:
        """``user_id``'s events since their last tombstone (:meth:`EventStore.live`)."""
        with self._reading(f"the events of user {user_id!r}") as store:
            return store.live(user_id)

    def problem(self) -> str | None:
        """None when the store answers a query now, else why not (for ``/readyz``)."""
        try:
            self.last_seq()
        except EventsUnavailable as exc:
            return exc.detail
        return None

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
