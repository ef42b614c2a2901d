"""The event store as the gateway uses it: the store behind the event routes, and the *marks* that key cached
answers by the events they reflect.

An answer that depends on events (:class:`EventScope`, declared per route in :data:`.hitpath.ROUTES`) is cached
under a key that also carries the store's sequence number at the time of the request (:meth:`Events.mark`):
``u{seq}`` with the user's highest ``seq`` (:meth:`~chorus.shared.events.store.EventStore.user_seq`) for an
answer about one user's history, ``a{seq}`` with the store's highest (:meth:`~chorus.shared.events.store.
EventStore.last_seq`) for one that depends on everyone's events. Every write about a user (an event, or the
tombstone of a forget) raises both, so the first request after an acknowledged write reads a key no earlier
answer was stored under: read-your-writes through a shared cache, with no client header, across gateway
replicas and restarts (the store, not the process, holds the numbers). The mark is read *before* the service is
asked, so an answer is never stored under a mark older than the events it reflects.

The store is read off the event loop, on a few threads of its own, each read bounded by
``CHORUS_EVENTS_TIMEOUT``. Reads stay public and keep working when the store is down: a failed or slow read
makes that request (and every one after it, until a background probe reaches the store again, with a doubling
back-off up to 1 s) bypass the cache for event-dependent answers (``X-Cache: bypass``), as a Redis outage
does; only the event routes answer 503. A store that cannot be reached when the gateway starts is opened in the
background; a wrong URL, or a store whose schema is newer than this code, stops the start with that error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from chorus.shared.contract.errors import EventsUnavailable, InvalidInput
from chorus.shared.contract.names import redact_url
from chorus.shared.events.store import Appended, EventStore, NewEvent

log = logging.getLogger("chorus.gateway")

T = TypeVar("T")

READ_THREADS = 8
"""Threads that read marks: enough for the reads of many concurrent cache hits (each takes well under 1 ms)."""


@dataclass(frozen=True, slots=True)
class EventScope:
    """The events an answer depends on: none, one user's (``user``), or everyone's (``everyone``)."""

    user: str | None = None
    everyone: bool = False

    @property
    def any(self) -> bool:
        return self.everyone or self.user is not None


NO_EVENTS = EventScope()
EVERYONE = EventScope(everyone=True)


def of_user(user_id: str) -> EventScope:
    return EventScope(user=user_id)


Mark = str | None
"""The cache key's part for an answer's events: ``""`` (no events to reflect: the answer depends on none, or no
store is configured), ``"u{seq}"`` or ``"a{seq}"``; ``None`` when the store cannot be read now, so the answer
must bypass the cache."""


class Events:
    """The configured event store (or none), its marks, and its health (see the module docstring).

    Parameters
    ----------
    url : str or None
        ``CHORUS_EVENTS_URL``; None: no store (the event routes answer 503, every mark is ``""``).
    timeout : float
        Seconds for one mark read; slower counts as an outage.
    opener : callable
        Builds the store from the URL (``EventStore``; tests pass others).
    """

    def __init__(
        self,
        url: str | None,
        timeout: float,
        *,
        max_backoff: float = 1.0,
        first_backoff: float = 0.25,
        opener: Callable[[str], EventStore] = EventStore,
    ) -> None:
        self.url = url
        self.public_url = redact_url(url) if url else None
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.first_backoff = first_backoff
        self.opener = opener
        self.store: EventStore | None = None
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="chorus-events")
        self._probe: asyncio.Task[None] | None = None
        self._pending: dict[str | None, asyncio.Future[int]] = {}

    @property
    def configured(self) -> bool:
        return self.url is not None

    async def open(self, wait: float) -> None:
        """Open the store (and apply its migrations) off the loop, waiting up to ``wait`` seconds; a store not
        reached by then is opened in the background, retried with back-off.

        Raises
        ------
        InvalidInput : a URL that names no SQLite or PostgreSQL store, or a store with a newer schema.
        """
        if self.url is None:
            return
        self._probe = asyncio.create_task(self._reach(), name="chorus-events-open")
        self._probe.add_done_callback(self._given_up)
        done, _ = await asyncio.wait({self._probe}, timeout=wait)
        if self._probe in done and self._probe.exception() is not None:
            raise self._probe.exception()  # type: ignore[misc]
        if self.store is None:
            log.warning("the event store %s is not reachable yet; opening it in the background", self.public_url)

    async def mark(self, scope: EventScope) -> Mark:
        """The key part for an answer that depends on ``scope``'s events (see :data:`Mark`); never raises.

        Requests for the same sequence number in one turn of the event loop share one read, submitted at the end
        of that turn: after each of them arrived, so it reflects every write acknowledged before any of them.
        (A read already under way is never shared: it may have begun before a request's write was acknowledged.)
        """
        if not scope.any or self.url is None:
            return ""
        store = self.store
        if store is None or self.down_since is not None:
            return None
        key = None if scope.everyone else scope.user  # None: the store's own sequence number
        loop = asyncio.get_running_loop()
        future = self._pending.get(key)
        if future is None:
            future = self._pending[key] = loop.create_future()
            future.add_done_callback(_retrieve)
            if len(self._pending) == 1:
                loop.call_soon(self._flush, store)
        try:
            seq = await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except Exception as exc:  # reads must keep working whatever the store does
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {self.timeout:g} s (CHORUS_EVENTS_TIMEOUT)")
            self._failed(exc)
            return None
        return f"a{seq}" if scope.everyone else f"u{seq}"

    def _flush(self, store: EventStore) -> None:
        """Submit the reads asked for in this turn of the loop, one per sequence number, on the read threads."""
        batch, self._pending = self._pending, {}
        loop = asyncio.get_running_loop()
        for key, future in batch.items():
            if key is None:
                read = loop.run_in_executor(self._pool, store.last_seq)
            else:
                read = loop.run_in_executor(self._pool, store.user_seq, key)
            read.add_done_callback(partial(_settle, future))

    async def call(self, work: Callable[[EventStore], T], written: str | None = None) -> T:
        """Run ``work(store)`` on a worker thread for an event route; a failure of the store becomes a 503 (for
        a write, ``written`` says what may or may not have happened, e.g. "the events were stored")."""
        store = self.require()
        try:
            return await run_in_threadpool(work, store)
        except InvalidInput:
            raise
        except Exception as exc:
            raise self._unavailable(exc, written) from None

    async def append(self, batch: Sequence[NewEvent]) -> Appended:
        """Store ``batch`` through the store's writer (group commit: :meth:`EventStore.submit_async`), answered
        once its transaction committed; the loop waits without a thread of its own. A failure of the store is a
        503."""
        store = self.require()
        try:
            return await store.submit_async(batch)
        except InvalidInput:
            raise
        except Exception as exc:
            raise self._unavailable(exc, "the events were stored") from None

    def _unavailable(self, exc: Exception, written: str | None) -> EventsUnavailable:
        """The 503 for a failure of the store in an event route (logged, and the store marked down)."""
        log.warning("the event store %s failed: %s: %s", self.public_url, type(exc).__name__, exc)
        self._failed(exc)
        what = f"the event store failed ({type(exc).__name__})"
        if written is None:
            return EventsUnavailable(f"{what}; retry in a few seconds")
        return EventsUnavailable(
            f"{what}; it is not known whether {written}: retry the same request (an event_id stored before is "
            "not stored again)"
        )

    def require(self) -> EventStore:
        """The open store, or the 503 that says why there is none."""
        if self.url is None:
            # the setting is named to the operator (log, token /readyz, docs), not in a public answer
            raise EventsUnavailable("this gateway takes no events: it has no event store configured")
        if self.store is None:
            raise EventsUnavailable("the event store cannot be reached yet; retry in a few seconds")
        return self.store

    def _failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        log.warning(
            "the event store %s failed (%s); answers that depend on events bypass the cache until it is back",
            self.public_url,
            self.last_error,
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._reach(), name="chorus-events-probe")
            self._probe.add_done_callback(self._given_up)

    def _given_up(self, task: asyncio.Task[Any]) -> None:
        """Log why the store cannot be used when opening it ended in an error no retry can mend."""
        if task.cancelled() or task.exception() is None:
            return
        self.last_error = str(task.exception())
        log.error("the event store %s cannot be used: %s", self.public_url, self.last_error)

    async def _reach(self) -> None:
        """Open the store, or read from it, until that works; then mark it up again."""
        assert self.url is not None
        loop = asyncio.get_running_loop()
        delay = self.first_backoff
        while True:
            try:
                if self.store is None:
                    self.store = await loop.run_in_executor(self._pool, self.opener, self.url)
                else:
                    await loop.run_in_executor(self._pool, self.store.last_seq)
            except InvalidInput:
                raise  # not an outage: the URL or the store's schema needs an operator
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("the event store %s is not reachable (%s)", self.public_url, self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if self.down_since is not None:
                seconds = time.monotonic() - self.down_since
                log.warning("the event store %s is back after %.1f s", self.public_url, seconds)
            self.down_since = None
            return

    async def status(self) -> dict[str, Any]:
        """``{"status": "ok" | "down" | "off", "backend", "detail"}`` for ``/readyz``; a read with the usual
        timeout tells whether the store answers now."""
        if self.url is None:
            return {"status": "off", "backend": None, "detail": "CHORUS_EVENTS_URL is not set: no event routes"}
        backend = self.url.split(":", 1)[0].split("+", 1)[0]
        if self.store is not None and self.down_since is None:
            if await self.mark(EVERYONE) is not None:
                return {"status": "ok", "backend": backend, "detail": self.public_url}
        down = "" if self.down_since is None else f" (down for {time.monotonic() - self.down_since:.1f} s)"
        error = self.last_error or "opening"
        return {
            "status": "down",
            "backend": backend,
            "detail": f"{self.public_url}: {error}; event routes answer 503, reads bypass the cache{down}",
        }

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self.store is not None:
            closing = asyncio.get_running_loop().run_in_executor(self._pool, self.store.close)
            await asyncio.wait({closing}, timeout=2.0)  # a hung store must not hang the shutdown
        self._pool.shutdown(wait=False, cancel_futures=True)


def _settle(target: asyncio.Future[int], source: asyncio.Future[int]) -> None:
    """Pass a finished read on to the future its requests wait on."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _retrieve(future: asyncio.Future[int]) -> None:
    """Mark a read's exception as retrieved: when every waiter timed out, asyncio would otherwise warn."""
    if not future.cancelled():
        future.exception()
