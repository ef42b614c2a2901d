"""The answer cache: Redis when ``REDIS_URL`` is set, a bounded in-process LRU otherwise.

Both store the raw JSON body of a 200 answer under a key that names the service and the artifact version that
produced it (:func:`cache_key`), so once a service serves a new version no old answer is ever read again; the old
keys simply expire. With an event store, the key of an answer that depends on events also names the store's
sequence number it reflects (:mod:`chorus.services.gateway.events`), with the same effect after each write.
Values are bytes and are sent back as they are, never re-serialised.

Concurrent Redis lookups are batched into one ``MGET`` per turn of the event loop (:meth:`RedisCache.get`). An
optional in-process *near cache* (:class:`NearCache`, ``CHORUS_NEAR_CACHE_TTL``) keeps hot answers for a few
seconds so they cost no Redis round trip at all; that is safe with respect to models because an entry never
changes (a key names one answer of one version), but it keeps serving hot keys for that long when Redis goes down.

The cache is best effort. :meth:`RedisCache.get` answers ``("bypass", None)`` instead of raising when Redis fails,
is slow (``CHORUS_REDIS_TIMEOUT``) or has no free connection; after a failure the cache stops calling Redis at all,
logs the outage once, and a background task pings Redis with a doubling back-off, capped at
``CHORUS_REDIS_MAX_BACKOFF`` (1 s: a ping that fails costs one refused connection), until it answers again. Then
every pooled connection is closed before caching resumes: the ones opened before the outage are dead sockets
(a restarted Redis does not know them), and each would otherwise fail its next command and start a new outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError, RedisError

from chorus.shared.contract.names import redact_url

log = logging.getLogger("chorus.gateway")

CacheState = Literal["hit", "miss", "bypass"]

KEY_PREFIX = "chorus:v1"


def cache_key(service: str, version: str, route: str, query: str, mark: str = "") -> str:
    """``chorus:v1:{service}:{version}:{route}:{canonical query}``; the version is percent-encoded.

    ``mark`` (:data:`chorus.services.gateway.events.Mark`), when not empty, follows the version: the event
    store's sequence number the answer reflects (``u{seq}`` or ``a{seq}``). No route starts with a letter
    followed by a digit, so a key with a mark never reads as one without.
    """
    if mark:
        return f"{KEY_PREFIX}:{service}:{quote(version, safe='')}:{mark}:{route}:{query}"
    return f"{KEY_PREFIX}:{service}:{quote(version, safe='')}:{route}:{query}"


class Cache(Protocol):
    backend: str

    async def get(self, key: str) -> tuple[CacheState, bytes | None]: ...

    async def set(self, key: str, value: bytes, ttl: float) -> bool: ...

    async def status(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    """A bounded LRU of bytes with a TTL per entry, for one process (the default without ``REDIS_URL``).

    Bounded both in entries and in bytes of values; the least recently used entries go first.
    """

    backend = "memory"

    def __init__(
        self, max_entries: int, max_bytes: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> tuple[CacheState, bytes | None]:
        entry = self._data.get(key)
        if entry is None:
            return "miss", None
        if entry[0] < self.clock():
            self._drop(key)
            return "miss", None
        self._data.move_to_end(key)
        return "hit", entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if self.max_bytes is not None and len(value) > self.max_bytes:
            return False
        if key in self._data:
            self._drop(key)
        self._data[key] = (self.clock() + ttl, value)
        self.bytes += len(value)
        while len(self._data) > self.max_entries or (self.max_bytes is not None and self.bytes > self.max_bytes):
            _, (_, dropped) = self._data.popitem(last=False)
            self.bytes -= len(dropped)
        return True

    def _drop(self, key: str) -> None:
        _, value = self._data.pop(key)
        self.bytes -= len(value)

    def __len__(self) -> int:
        return len(self._data)

    async def status(self) -> dict[str, Any]:
        limit = f", {self.bytes / 1e6:.1f}/{self.max_bytes / 1e6:.0f} MB" if self.max_bytes else ""
        return {
            "backend": "memory",
            "status": "ok",
            "detail": f"in-process LRU cache ({len(self._data)}/{self.max_entries} entries{limit}); "
            "set REDIS_URL to share the cache between processes",
        }

    async def aclose(self) -> None:
        self._data.clear()
        self.bytes = 0


class RedisCache:
    """Best-effort cache-aside on Redis: a failure skips the cache, it never fails a request."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        max_backoff: float = 1.0,
        first_backoff: float = 0.25,
    ) -> None:
        # No retries inside redis-py: a failing Redis must cost a request one timeout at most, once per outage.
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
            max_connections=max_connections,
        )
        self.url = redact_url(url)
        self.max_backoff = max_backoff
        self.first_backoff = first_backoff
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._pending: list[tuple[str, asyncio.Future[tuple[CacheState, bytes | None]]]] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> tuple[CacheState, bytes | None]:
        """Look ``key`` up; lookups made in the same turn of the event loop go to Redis as one ``MGET``.

        Under concurrency most of the cost of a lookup is the round trip (a system call each way, and a wake-up
        of the Redis server), not the key; batching keeps that cost per batch instead of per request.
        """
        if self.down_since is not None:
            return "bypass", None
        future: asyncio.Future[tuple[CacheState, bytes | None]] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._mget(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _mget(self, batch: list[tuple[str, asyncio.Future[tuple[CacheState, bytes | None]]]]) -> None:
        try:
            if self.down_since is not None:
                values = None
            elif len(batch) == 1:
                values = [await self.client.get(batch[0][0])]
            else:
                values = await self.client.mget([key for key, _ in batch])
        except MaxConnectionsError:
            values = None  # a burst, not an outage
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            values = None
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for i, (_, future) in enumerate(batch):
            if future.done():
                continue  # that request went away
            if values is None:
                future.set_result(("bypass", None))
            else:
                value = cast(bytes | None, values[i])  # a client without decode_responses answers bytes
                future.set_result(("miss", None) if value is None else ("hit", value))

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if self.down_since is not None:
            return False
        try:
            await self.client.set(key, value, ex=max(1, math.ceil(ttl)))  # Redis takes whole seconds
        except MaxConnectionsError:
            return False
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        log.warning("Redis at %s failed (%s); answering uncached until it is back", self.url, self.last_error)
        self._reconnect = asyncio.create_task(self._reconnect_loop(), name="chorus-redis-reconnect")

    async def _reconnect_loop(self) -> None:
        delay = self.first_backoff
        while True:
            await asyncio.sleep(delay)
            try:
                await self.client.connection_pool.disconnect()  # pings on a new connection, never a dead one
                await self.client.ping()
            except (TimeoutError, RedisError, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("Redis still down (%s); next attempt in %.1f s", self.last_error, delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            seconds = time.monotonic() - (self.down_since or time.monotonic())
            log.warning("Redis at %s is back after %.1f s; caching again", self.url, seconds)
            self.down_since = None
            return

    async def status(self) -> dict[str, Any]:
        if self.down_since is not None:
            return {
                "backend": "redis",
                "status": "down",
                "detail": f"{self.url}: {self.last_error}; answering uncached, reconnecting "
                f"(down for {time.monotonic() - self.down_since:.1f} s)",
            }
        try:
            await self.client.ping()
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return await self.status()
        return {"backend": "redis", "status": "ok", "detail": self.url}

    async def aclose(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
        for task in list(self._batches):
            task.cancel()
        await self.client.aclose()


class NearCache:
    """Redis behind a small in-process LRU with a short TTL, for the hottest keys.

    Entries are immutable (a key names one answer of one version), so the copy here never disagrees with Redis;
    the TTL only bounds how long a key lives on here after Redis let it expire, and the memory it holds.
    """

    backend = "redis"

    def __init__(self, redis: RedisCache, ttl: float, max_entries: int, max_bytes: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self.near = MemoryCache(max_entries, max_bytes)

    async def get(self, key: str) -> tuple[CacheState, bytes | None]:
        state, value = await self.near.get(key)
        if value is not None:
            return state, value
        state, value = await self.redis.get(key)
        if value is not None:
            await self.near.set(key, value, self.ttl)
        return state, value

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        await self.near.set(key, value, min(self.ttl, ttl))
        return await self.redis.set(key, value, ttl)

    async def status(self) -> dict[str, Any]:
        status = await self.redis.status()
        status["detail"] += f"; near cache of {len(self.near)} hot answers for {self.ttl:g} s"
        return status

    async def aclose(self) -> None:
        await self.near.aclose()
        await self.redis.aclose()
