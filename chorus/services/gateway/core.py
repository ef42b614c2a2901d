"""The gateway's work, free of FastAPI: cache-aside with single-flight over the downstream services.

:meth:`Gateway.get` looks the answer up under the version the service serves now, and on a miss asks the service
once for all concurrent identical requests (single flight, per process), then stores the answer under the version
that produced it, as told by its ``X-Model-Version`` header, and, for an answer that depends on events, under
the event store's mark read before the service was asked (:mod:`.events`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum

from chorus.services.gateway.cache import Cache, CacheState, cache_key
from chorus.services.gateway.downstream import Downstream, Upstream
from chorus.services.gateway.events import NO_EVENTS, Events, EventScope, Mark
from chorus.shared.contract.errors import ChorusError
from chorus.shared.http.metrics import DOWNSTREAM_ERRORS

log = logging.getLogger("chorus.gateway")


class Unread(Enum):
    """The type of :data:`UNREAD`: no mark was read for this request yet."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


@dataclass(slots=True, frozen=True)
class Answer:
    """What the gateway sends back: status, raw JSON body, the version that answered, and the cache outcome."""

    status: int
    body: bytes
    version: str | None
    cache: CacheState


class Gateway:
    """The downstream services, the cache, and the requests in flight."""

    def __init__(
        self, downstreams: dict[str, Downstream], cache: Cache, ttl: int, events: Events | None = None
    ) -> None:
        self.downstreams = downstreams
        self.cache = cache
        self.ttl = ttl
        self.events = events or Events(None, timeout=1.0)
        self._flights: dict[str, asyncio.Future[Upstream]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(
        self,
        service: str,
        route: str,
        query: str,
        events: EventScope = NO_EVENTS,
        fresh: bool = False,
        missed: str | None = None,
        store: bool = True,
        mark: Mark | Unread = UNREAD,
    ) -> Answer:
        """Answer ``GET /v1/{route}?{query}`` from ``service``, through the cache.

        ``query`` must be canonical (every parameter, defaults included, in a fixed order, values encoded), so
        that equal requests share a key; it is also the query string sent downstream. ``events`` says which
        events the answer depends on; the key then carries the event store's ``mark`` for them (read here unless
        the hit path read it for this request), and where the store cannot be read the answer bypasses the
        cache. ``fresh`` skips the lookup (the client sent ``Cache-Control: no-cache``) but still stores the
        answer, unless ``store`` is false (``no-store``). ``missed`` is a key the hit path has just looked up in
        vain; it is not looked up twice.
        """
        downstream = self.downstreams[service]
        version = downstream.version
        if isinstance(mark, Unread):
            mark = await self.events.mark(events)  # before the service is asked: see .events
        state: CacheState = "miss" if mark is not None else "bypass"
        if version is not None and not fresh and mark is not None:
            key = cache_key(service, version, route, query, mark)
            if key != missed:
                state, body = await self.cache.get(key)
                if body is not None:
                    return Answer(200, body, version, "hit")
        if mark is None:
            # No mark: nothing tells whether a flight in progress began after this client's last write, so this
            # request is not merged with others, and its answer is not stored.
            upstream = await self._request(downstream, route, query)
            return Answer(upstream.status, upstream.body, upstream.version, state)
        flight = f"{service}:{mark}:{route}:{query}"
        future = self._flights.get(flight)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            self._flights[flight] = future
            task = asyncio.create_task(self._fetch(flight, future, downstream, route, query, store, mark))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # shield: a client that goes away must not cancel the fetch that others are waiting for
        upstream = await asyncio.shield(future)
        return Answer(upstream.status, upstream.body, upstream.version, state)

    async def _request(self, downstream: Downstream, route: str, query: str) -> Upstream:
        path = f"/v1/{route}?{query}" if query else f"/v1/{route}"
        try:
            return await downstream.request("GET", path)
        except BaseException as exc:
            _count_error(downstream, exc)
            raise

    async def _fetch(
        self,
        flight: str,
        future: asyncio.Future[Upstream],
        downstream: Downstream,
        route: str,
        query: str,
        store: bool,
        mark: str,
    ) -> None:
        try:
            upstream = await self._request(downstream, route, query)
        except BaseException as exc:
            self._flights.pop(flight, None)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
                raise
            if not future.done():
                future.set_exception(exc)
            return
        future.set_result(upstream)
        # Requests arriving while the answer is being stored join the finished flight instead of missing again.
        try:
            if store and upstream.status == 200 and upstream.version is not None:
                key = cache_key(downstream.name, upstream.version, route, query, mark)
                await self.cache.set(key, upstream.body, self.ttl)
        finally:
            self._flights.pop(flight, None)

    async def post(self, service: str, path: str, content: bytes) -> Answer:
        """Forward a POST as it is; never cached."""
        downstream = self.downstreams[service]
        try:
            upstream = await downstream.request("POST", path, content=content)
        except ChorusError as exc:
            _count_error(downstream, exc)
            raise
        return Answer(upstream.status, upstream.body, upstream.version, "bypass")

    async def poll_forever(self, interval: float) -> None:
        """Poll every service's ``/readyz`` each ``interval`` seconds, so cache keys follow model swaps."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_all(timeout=min(interval, 2.0))
            except Exception:  # the poll must outlive any surprise; check() itself handles the expected ones
                log.exception("polling the services' /readyz failed")

    async def check_all(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(d.check(timeout) for d in self.downstreams.values()))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for downstream in self.downstreams.values():
            await downstream.aclose()
        await self.cache.aclose()
        await self.events.aclose()


def _count_error(downstream: Downstream, exc: BaseException) -> None:
    if isinstance(exc, ChorusError):
        DOWNSTREAM_ERRORS.labels(downstream.name, exc.type).inc()


def _retrieve(future: asyncio.Future[Upstream]) -> None:
    """Mark a flight's exception as retrieved: when every waiter went away, asyncio would otherwise warn."""
    if not future.cancelled():
        future.exception()
