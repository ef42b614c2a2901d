"""The event store as the rating service reads it: one read per request about a user, and what that read makes of
the user's history.

The store (``CHORUS_EVENTS_URL``, :class:`chorus.shared.events.store.EventStore`) is the truth every replica
reads: an answer about a user reads their events after the served version's cutoff once
(:meth:`LiveEvents.live`), and :func:`merge_history` lays the rows those events make
(:func:`chorus.shared.events.rows.rows_of`) over the user's rows in the version. Nothing is cached between
requests, so an event is in every answer from the moment its write was acknowledged, on every replica.

A store that cannot be reached fails the request (:class:`~chorus.shared.contract.errors.EventsUnavailable`,
503, naming the store) rather than answering from the version alone, which would silently ignore what the user
did (and a forgotten user's wish). The store is opened on first use and again after a failed open, so the service
starts, and serves everything that is not about one user, while the store is down.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from chorus.shared.contract.errors import EventsUnavailable, InvalidInput
from chorus.shared.contract.names import redact_url
from chorus.shared.events.rows import acted_on, rows_of
from chorus.shared.events.store import EventStore, Live

log = logging.getLogger("chorus.rating.live")

#: What a broken store raises: SQLAlchemy's errors (every driver error is wrapped in one) and the file system's.
STORE_ERRORS = (sa.exc.SQLAlchemyError, OSError)


class LiveEvents:
    """The event store at ``url``, or none (``url`` None: every read answers None and the service answers from the
    version alone). Safe to share between threads.

    Parameters
    ----------
    url : str or None
        ``sqlite:///path`` or ``postgresql://...`` (``CHORUS_EVENTS_URL``).
    """

    name = "events"
    """Its key in ``/readyz`` and on ``app.state``."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._store: EventStore | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def public_url(self) -> str | None:
        return None if self.url is None else redact_url(self.url)

    def open(self) -> EventStore | None:
        """The store, opened now if it is not yet (None without a URL).

        Raises
        ------
        EventsUnavailable : the store cannot be opened (unreachable, or a schema this build cannot read).
        """
        if self.url is None:
            return None
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                try:
                    self._store = EventStore(self.url)
                except Exception as exc:  # a URL, a schema or a connection: the store is unusable until fixed
                    raise self._unavailable(exc) from exc
                self._error = None
            return self._store

    def start(self) -> None:
        """Open the store at start-up when it can be: a store that is down is opened again on first use, but a URL
        that is not an event store's, or a schema newer than this build, can never work and stops the start.

        Raises
        ------
        InvalidInput : such a URL or schema.
        """
        try:
            self.open()
        except EventsUnavailable as exc:
            if isinstance(exc.__cause__, InvalidInput):
                raise exc.__cause__ from None

    def live(self, user_id: str, after: int) -> Live | None:
        """``user_id``'s events after ``after`` (a version's cutoff), one read; None without a store.

        Raises
        ------
        EventsUnavailable : the store cannot be reached.
        """
        store = self.open()
        if store is None:
            return None
        try:
            live = store.live(user_id, after=after)
        except STORE_ERRORS as exc:
            raise self._unavailable(exc) from exc
        self._error = None
        return live

    def _unavailable(self, exc: Exception) -> EventsUnavailable:
        reason = getattr(exc, "detail", None) or f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
        first = self._error is None
        self._error = f"the event store {self.public_url} cannot be used ({reason})"
        if first:
            log.error(self._error)
        return EventsUnavailable(
            f"{self._error}; answers about a user need their events, so none is given from the model alone"
        )

    def readiness(self, details: bool) -> dict[str, Any]:
        """The store's state for ``/readyz``: ``status`` ``"off"`` (no store configured), ``"ok"`` (a query just
        answered) or ``"unavailable"``; with ``details``, the URL (password hidden) and why it is unavailable."""
        if self.url is None:
            return {"status": "off"}
        try:
            store = self.open()
            assert store is not None
            store.last_seq()
            self._error = None
            status = "ok"
        except EventsUnavailable:
            status = "unavailable"
        except STORE_ERRORS as exc:
            self._unavailable(exc)
            status = "unavailable"
        body: dict[str, Any] = {"status": status}
        if details:
            body |= {"url": self.public_url, "detail": self._error}
        return body

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


@dataclass(frozen=True)
class UserHistory:
    """One user's history as an answer sees it: their rows in the version (unless forgotten since) with the rows of
    their live events laid over them.

    Attributes
    ----------
    user : int
        The user's index in the version, -1 when it does not know them or they were forgotten after it.
    items : numpy.ndarray
        int64 (m,), item indices, ascending.
    ratings : numpy.ndarray
        float64 (m,), the latest rating of each (a live event's replaces the version's).
    acted : numpy.ndarray
        int64 (a,), every catalog item the live events name, views included: never recommended to the user.
    live_rows : int
        How many of the rows came from live events (items of the version's catalog only).
    ages : numpy.ndarray
        int64 (m,), how recent each item is: 0 for the item of the user's latest live row (by event timestamp,
        then arrival), 1 for the one before, and so on; the version's rows, which keep no order of their own,
        are all one step older than the oldest live row (every age is 0 without live rows).
    """

    user: int
    items: np.ndarray
    ratings: np.ndarray
    acted: np.ndarray
    live_rows: int
    ages: np.ndarray

    def recency(self, decay: float) -> np.ndarray | None:
        """float64 (m,) weights ``decay ** age`` of the items, or None when every weight would be 1 (no live row,
        or ``decay`` 1): what the rankers weight the history items by (``Ranker.recommend``)."""
        if decay >= 1.0 or self.live_rows == 0:
            return None
        return np.power(float(decay), self.ages.astype(np.float64))


def merge_history(
    user: int,
    version_items: np.ndarray,
    version_ratings: np.ndarray,
    live: Live | None,
    item_index: Any,
    purchase: float,
) -> UserHistory:
    """The :class:`UserHistory` of a user with index ``user`` (-1: unknown to the version), their rows in the
    version (``version_items`` int (m,), ``version_ratings`` float (m,)) and their ``live`` events (None: no
    store). ``item_index(ids)`` maps raw item ids to indices (-1 for an id the catalog does not know: such rows
    cannot be scored and are skipped); ``purchase`` is the rating a purchase counts as."""
    empty = np.zeros(0, dtype=np.int64)
    if live is None:
        items = np.asarray(version_items, np.int64)
        return UserHistory(user, items, np.asarray(version_ratings, np.float64), empty, 0, np.zeros_like(items))
    if live.forgotten:
        user, version_items, version_ratings = -1, empty, np.zeros(0)
    # one row per item, oldest first by event time (ties: arrival), so a row's age is the live rows after it
    rows = sorted(rows_of(live.events, purchase), key=lambda r: (r.timestamp, r.seq))
    row_items = np.asarray(item_index([r.item_id for r in rows]), dtype=np.int64).reshape(-1)
    row_ratings = np.array([r.rating for r in rows], dtype=np.float64)
    keep = row_items >= 0
    row_items, row_ratings = row_items[keep], row_ratings[keep]
    n_live = int(row_items.shape[0])
    acted = np.asarray(item_index(acted_on(live.events)), dtype=np.int64).reshape(-1)
    # the latest row per item wins: live rows come after the version's, so keep each item's last occurrence
    version_items = np.asarray(version_items, np.int64)
    items = np.concatenate([version_items, row_items])
    ratings = np.concatenate([np.asarray(version_ratings, np.float64), row_ratings])
    ages = np.concatenate([np.full(version_items.shape[0], n_live), np.arange(n_live - 1, -1, -1)]).astype(np.int64)
    unique, last = np.unique(items[::-1], return_index=True)
    return UserHistory(
        user, unique, ratings[::-1][last], np.unique(acted[acted >= 0]), n_live, ages[::-1][last].astype(np.int64)
    )
