"""The cache after a Redis restart: back within 2 s of Redis answering again, and then no relapse.

A Redis server of the test's own on a free port (never the machine's shared one), killed and restarted on the
same port while the cache holds a pool of connections opened before: those are dead sockets afterwards, and each
used to fail its next command and start a new outage (caching flapped for seconds after every restart).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from chorus.launcher import free_port
from chorus.services.gateway.cache import RedisCache

pytestmark = pytest.mark.timeout(60)


def start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def test_caching_resumes_within_two_seconds_of_redis_returning_and_does_not_flap(tmp_path):
    port = free_port()
    proc = start_redis(port, tmp_path)
    try:

        async def scenario() -> tuple[float, list[str]]:
            cache = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.5, connect_timeout=0.25, max_connections=32)
            try:
                # a pool of many connections: concurrent commands, each on its own connection
                await asyncio.gather(*(cache.set(f"k{i}", b"v", 60) for i in range(32)))
                assert (await cache.get("k1")) == ("hit", b"v")
                nonlocal proc
                stop(proc)
                assert (await cache.get("k1"))[0] == "bypass" and cache.down_since is not None
                await asyncio.sleep(1.5)  # down for a while: the back-off has grown to its cap
                proc = start_redis(port, tmp_path)  # empty again: nothing was saved
                back = time.monotonic()
                while (await cache.get("k1"))[0] == "bypass":
                    assert time.monotonic() - back < 10, "caching did not resume"
                    await asyncio.sleep(0.02)
                resumed = time.monotonic() - back
                outcomes = []
                for _ in range(20):  # every pooled connection used again, concurrently
                    results = await asyncio.gather(*(cache.set(f"k{i}", b"v", 60) for i in range(32)))
                    outcomes += ["ok" if ok else "failed" for ok in results]
                    outcomes += [state for state, _ in await asyncio.gather(*(cache.get(f"k{i}") for i in range(32)))]
                    await asyncio.sleep(0.01)
                return resumed, outcomes
            finally:
                await cache.aclose()

        resumed, outcomes = asyncio.run(scenario())
    finally:
        stop(proc)
    assert resumed < 2.0  # the back-off is capped at 1 s (CHORUS_REDIS_MAX_BACKOFF)
    assert set(outcomes) == {"ok", "hit"}  # no relapse: no failed store, no bypass
