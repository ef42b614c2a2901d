"""The cache: LRU bounds, keys, single flight, and best-effort Redis against the real server (database 15)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from contextlib import asynccontextmanager

import httpx

from chorus.services.gateway.app import build_gateway, create_app
from chorus.services.gateway.cache import MemoryCache, RedisCache, cache_key
from tests.gateway.conftest import REDIS_TEST_URL, make_settings
from tests.gateway.fakes import FakeService
from tests.redis_urls import address, database


def run(coro):
    return asyncio.run(coro)


# --- keys and the in-process LRU -----------------------------------------------------------------------


def test_key_names_service_version_route_and_query():
    key = cache_key("similarity", "2024-01-01T00:00/x", "items/B001/similar", "k=10&measure=jaccard&min_common=1")
    assert key == "chorus:v1:similarity:2024-01-01T00%3A00%2Fx:items/B001/similar:k=10&measure=jaccard&min_common=1"


def test_memory_cache_is_bounded_lru_with_ttl():
    now = [1000.0]

    async def scenario():
        cache = MemoryCache(max_entries=2, clock=lambda: now[0])
        await cache.set("a", b"1", ttl=60)
        await cache.set("b", b"2", ttl=60)
        assert await cache.get("a") == ("hit", b"1")  # a is now the most recent
        await cache.set("c", b"3", ttl=60)  # evicts b
        assert await cache.get("b") == ("miss", None)
        assert await cache.get("a") == ("hit", b"1") and len(cache) == 2
        await cache.set("d", b"4", ttl=1)
        now[0] += 2
        assert await cache.get("d") == ("miss", None)

    run(scenario())


def test_memory_cache_is_bounded_in_bytes():
    async def scenario():
        cache = MemoryCache(max_entries=100, max_bytes=10)
        await cache.set("a", b"1234", ttl=60)
        await cache.set("b", b"5678", ttl=60)
        await cache.set("a", b"12", ttl=60)  # replacing counts the new size only
        assert cache.bytes == 6
        await cache.set("c", b"abcde", ttl=60)  # 11 bytes: b goes (least recently used)
        assert await cache.get("b") == ("miss", None) and cache.bytes == 7
        assert not await cache.set("huge", b"x" * 11, ttl=60)
        assert await cache.get("a") == ("hit", b"12")

    run(scenario())


# --- single flight -------------------------------------------------------------------------------------


def _gateway(sim: FakeService, rat: FakeService, **overrides):
    transports = {"similarity": httpx.MockTransport(sim), "rating": httpx.MockTransport(rat)}
    return build_gateway(make_settings(**overrides), transports)


def test_concurrent_identical_misses_reach_the_service_once():
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    sim.delay = 0.05

    async def scenario():
        gw = _gateway(sim, rat)
        await gw.check_all()
        query = "k=10&measure=jaccard&min_common=1"
        answers = await asyncio.gather(*(gw.get("similarity", "items/B001/similar", query) for _ in range(50)))
        assert sim.api_calls() == 1
        assert {a.body for a in answers} == {answers[0].body} and {a.cache for a in answers} == {"miss"}
        assert (await gw.get("similarity", "items/B001/similar", query)).cache == "hit"
        # different keys are not merged
        await asyncio.gather(*(gw.get("similarity", f"items/B00{i}", "") for i in (1, 2, 3)))
        assert sim.api_calls() == 4
        await gw.aclose()

    run(scenario())


def test_a_failed_flight_fails_every_waiter_once_and_is_not_remembered():
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    sim.delay = 0.05

    async def scenario():
        gw = _gateway(sim, rat)
        await gw.check_all()
        sim.mode = "refuse"
        results = await asyncio.gather(*(gw.get("similarity", "stats", "") for _ in range(10)), return_exceptions=True)
        assert all(type(r).__name__ == "UpstreamUnavailable" for r in results)
        assert sim.api_calls() == 1
        sim.mode = "ok"
        assert (await gw.get("similarity", "stats", "")).status == 200
        await gw.aclose()

    run(scenario())


def test_a_client_going_away_does_not_cancel_the_shared_fetch():
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    sim.delay = 0.1

    async def scenario():
        gw = _gateway(sim, rat)
        await gw.check_all()
        leader = asyncio.create_task(gw.get("similarity", "stats", ""))
        await asyncio.sleep(0.01)
        follower = asyncio.create_task(gw.get("similarity", "stats", ""))
        await asyncio.sleep(0.01)
        leader.cancel()
        assert (await follower).status == 200
        assert (await gw.get("similarity", "stats", "")).cache == "hit"
        assert sim.api_calls() == 1
        await gw.aclose()

    run(scenario())


# --- Redis, the real server ----------------------------------------------------------------------------


@asynccontextmanager
async def running(app):
    """The app with its lifespan, and an HTTP client talking to it in this event loop."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


AUTH = {"Authorization": "Bearer t"}  # the cache's details in /readyz need the status token


def _app(redis_url: str, **overrides):
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    transports = {"similarity": httpx.MockTransport(sim), "rating": httpx.MockTransport(rat)}
    settings = make_settings(redis_url=redis_url, status_token="t", **overrides)
    return create_app(settings, transports=transports), sim


def test_redis_cache_aside_with_versioned_keys_and_ttl(redis_db):
    app, sim = _app(REDIS_TEST_URL, cache_ttl=120, near_cache_ttl=0)

    async def scenario():
        async with running(app) as c:
            first = await c.get("/v1/items/B001/similar?k=3")
            second = await c.get("/v1/items/B001/similar?k=3")
            ready = (await c.get("/readyz", headers=AUTH)).json()
        return first, second, ready

    first, second, ready = run(scenario())
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content and sim.api_calls() == 1
    key = "chorus:v1:similarity:s1:items/B001/similar:k=3&measure=jaccard&min_common=1"
    assert redis_db.keys("*") == [key.encode()]
    assert redis_db.get(key) == first.content
    assert 0 < redis_db.ttl(key) <= 120
    assert ready["cache"] == {"backend": "redis", "status": "ok", "detail": REDIS_TEST_URL}


def test_concurrent_redis_lookups_are_batched_into_one_mget(redis_db):
    redis_db.set("chorus:t:a", b"A")
    redis_db.set("chorus:t:c", b"C")

    async def scenario():
        cache = RedisCache(REDIS_TEST_URL, timeout=1, connect_timeout=1, max_connections=8)
        sent = []
        for name in ("get", "mget"):
            original = getattr(cache.client, name)

            async def spy(*args, _name=name, _original=original):
                sent.append(_name)
                return await _original(*args)

            setattr(cache.client, name, spy)
        together = await asyncio.gather(*(cache.get(f"chorus:t:{k}") for k in "abcab"))
        alone = await cache.get("chorus:t:c")
        await cache.aclose()
        return together, alone, sent

    together, alone, sent = run(scenario())
    assert together == [("hit", b"A"), ("miss", None), ("hit", b"C"), ("hit", b"A"), ("miss", None)]
    assert alone == ("hit", b"C")
    assert sent == ["mget", "get"]


def test_near_cache_answers_hot_keys_without_redis(redis_db):
    app, sim = _app(REDIS_TEST_URL, near_cache_ttl=30)

    async def scenario():
        async with running(app) as c:
            cache = app.state.gateway.cache
            calls = []
            original = cache.redis.get

            async def counting(key):
                calls.append(key)
                return await original(key)

            cache.redis.get = counting
            first = await c.get("/v1/items/B002")
            hits = [await c.get("/v1/items/B002") for _ in range(5)]
            cache.near._data.clear()  # another process, or the near copy expired: Redis still has it
            from_redis = await c.get("/v1/items/B002")
            ready = (await c.get("/readyz", headers=AUTH)).json()
        return first, hits, from_redis, calls, ready

    first, hits, from_redis, calls, ready = run(scenario())
    assert first.headers["x-cache"] == "miss"
    assert all(h.headers["x-cache"] == "hit" and h.content == first.content for h in hits)
    assert from_redis.headers["x-cache"] == "hit" and from_redis.content == first.content
    assert len(calls) == 2  # the miss (once: the handler does not ask again), none for the 5 hits, then one
    assert sim.api_calls() == 1
    assert "near cache" in ready["cache"]["detail"]


def test_redis_unreachable_answers_uncached_and_logs_once(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, sim = _app(f"redis://127.0.0.1:{port}/15", near_cache_ttl=0)

    async def scenario():
        async with running(app) as c:
            responses = [await c.get("/v1/items/B001") for _ in range(20)]
            ready = (await c.get("/readyz", headers=AUTH)).json()
        return responses, ready

    with caplog.at_level(logging.INFO, logger="chorus.gateway"):
        responses, ready = run(scenario())
    assert all(r.status_code == 200 and r.headers["x-cache"] == "bypass" for r in responses)
    assert sim.api_calls() == 20
    outage_logs = [r for r in caplog.records if "answering uncached" in r.getMessage()]
    assert len(outage_logs) == 1
    assert ready["status"] == "ready"  # the cache is best effort: never makes the gateway unready
    assert ready["cache"]["status"] == "down" and "reconnecting" in ready["cache"]["detail"]


class Proxy:
    """A TCP proxy to the real Redis that can be cut, slowed down and restored, on a fixed port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.delay = 0.0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    async def start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self):
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        self.writers.clear()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src, dst):
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def test_redis_outage_and_slowness_bypass_then_reconnect_by_itself(redis_db, caplog):
    proxy = Proxy(address(REDIS_TEST_URL))
    app, sim = _app(f"redis://127.0.0.1:{proxy.port}/{database(REDIS_TEST_URL)}", redis_timeout=0.1, near_cache_ttl=0)

    async def wait_for(c, url, state, seconds=5.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            response = await c.get(url)
            if response.headers["x-cache"] == state:
                return response
            await asyncio.sleep(0.05)
        raise AssertionError(f"no X-Cache: {state} within {seconds} s")

    async def scenario():
        await proxy.start()
        async with running(app) as c:
            assert (await c.get("/v1/stats")).headers["x-cache"] == "miss"
            assert (await c.get("/v1/stats")).headers["x-cache"] == "hit"

            await proxy.stop()  # Redis goes away
            during = [await c.get("/v1/stats") for _ in range(10)]
            assert all(r.status_code == 200 and r.headers["x-cache"] == "bypass" for r in during)
            assert (await c.get("/readyz")).status_code == 200

            await proxy.start()  # and comes back: the gateway notices by itself
            await wait_for(c, "/v1/stats", "hit")

            proxy.delay = 0.3  # slower than CHORUS_REDIS_TIMEOUT: answered uncached, not slowly
            slow = await c.get("/v1/stats")
            assert slow.status_code == 200 and slow.headers["x-cache"] == "bypass"
            fast = [await c.get("/v1/stats") for _ in range(5)]
            assert all(r.headers["x-cache"] == "bypass" for r in fast)
            proxy.delay = 0.0
            await wait_for(c, "/v1/stats", "hit")
        await proxy.stop()

    with caplog.at_level(logging.INFO, logger="chorus.gateway"):
        run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("answering uncached" in m for m in messages) == 2  # one per outage, not one per request
    assert sum("is back after" in m for m in messages) == 2
