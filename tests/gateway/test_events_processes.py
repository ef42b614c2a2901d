"""The event routes over real HTTP, with gateway processes (uvicorn) on a real store (SQLite and PostgreSQL):
read-your-writes across two replicas sharing the real Redis cache, and acknowledged events surviving a
``kill -9`` of the gateway in the middle of a stream of writes."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from chorus.shared.events.store import EventStore
from tests.gateway.conftest import REDIS_TEST_URL
from tests.gateway.fakes import FakeService, asgi_app
from tests.gateway.processes import serve_in_thread, uvicorn_popen, uvicorn_process

pytestmark = pytest.mark.timeout(120)

APP = "chorus.services.gateway.app:create_app"
KEY = "process-test-key-0123456789"


def call(
    url: str, method: str = "GET", body: dict[str, Any] | None = None, timeout: float = 10, key: bool = True
) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {KEY}"} if key else {})
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture
def store(store_url):
    opened = EventStore(store_url)
    yield opened
    opened.close()


@contextlib.contextmanager
def fakes(store: EventStore):
    sim, rat = FakeService("similarity", "s1", events=store), FakeService("rating", "r1", events=store)
    with serve_in_thread(asgi_app(sim)) as sim_url, serve_in_thread(asgi_app(rat)) as rat_url:
        yield {"CHORUS_SIMILARITY_URL": sim_url, "CHORUS_RATING_URL": rat_url}


def test_a_write_through_one_replica_is_read_through_the_other(store, redis_db):
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(fakes(store))
        env |= {"CHORUS_EVENTS_URL": store.url, "CHORUS_API_KEYS": KEY, "REDIS_URL": REDIS_TEST_URL}
        a = stack.enter_context(uvicorn_process(APP, env))
        b = stack.enter_context(uvicorn_process(APP, env))
        recommendations = "/v1/users/U2/recommendations?k=5"
        status, headers, before = call(a + recommendations)
        assert status == 200 and headers["x-cache"] == "miss" and "B003" in [d["item_id"] for d in before["data"]]
        assert call(b + recommendations)[1]["x-cache"] == "hit"  # one shared cache

        status, _, stored = call(
            a + "/v1/events", "POST", {"events": [{"user_id": "U2", "item_id": "B003", "kind": "purchase"}]}
        )
        assert status == 200 and stored == {"stored": 1, "duplicates": 0}
        status, headers, after = call(b + recommendations)  # the other replica, no client header
        assert headers["x-cache"] == "miss" and "B003" not in [d["item_id"] for d in after["data"]]
        assert call(a + recommendations)[1]["x-cache"] == "hit"  # the first replica reads what the second stored

        assert call(b + "/v1/users/U2", "DELETE")[2] == {"user_id": "U2", "deleted": 1}
        status, headers, forgotten = call(a + recommendations)
        assert headers["x-cache"] == "miss" and forgotten["fallback"] == "popular"  # an unknown user at once
        assert call(a + "/readyz", key=False)[2]["events"] == {"status": "ok"}


def test_acknowledged_events_survive_a_kill_9_of_the_gateway(store):
    """Writers post batches until the gateway is killed mid-stream; every batch it acknowledged is in the store,
    and a new gateway on the same store serves them."""
    acknowledged: list[list[str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(url: str, name: str) -> None:
        n = 0
        while not stop.is_set():
            ids = [f"{name}-{n}-{i}" for i in range(25)]
            batch = [{"event_id": e, "user_id": name, "item_id": f"I{i}", "kind": "view"} for i, e in enumerate(ids)]
            try:
                status, _, body = call(url + "/v1/events", "POST", {"events": batch}, timeout=5)
            except OSError:
                return  # the gateway is gone: this batch was never acknowledged
            if status == 200:
                assert body == {"stored": 25, "duplicates": 0}
                with lock:
                    acknowledged.append(ids)
            n += 1

    with contextlib.ExitStack() as stack:
        env = stack.enter_context(fakes(store))
        env |= {"CHORUS_EVENTS_URL": store.url, "CHORUS_API_KEYS": KEY, "REDIS_URL": ""}
        url, proc = stack.enter_context(uvicorn_popen(APP, env))
        threads = [threading.Thread(target=writer, args=(url, f"writer{t}"), daemon=True) for t in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40:
            assert time.monotonic() < deadline, f"only {len(acknowledged)} batches acknowledged in 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # while the writers still post
        proc.wait(10)
        stop.set()
        for thread in threads:
            thread.join(10)

        with lock:
            done = [list(ids) for ids in acknowledged]
        reopened = EventStore(store.url)  # a fresh reader, as the next process would be
        try:
            kept = {e.event_id for t in range(4) for e in reopened.page(f"writer{t}", 100_000)}
        finally:
            reopened.close()
        missing = [e for ids in done for e in ids if e not in kept]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"

        again = stack.enter_context(uvicorn_process(APP, env))  # a new gateway on the same store
        served = {e for t in range(4) for e in read_all(again, f"writer{t}")}
        assert served == kept and len(kept) >= 25 * len(done)


def read_all(url: str, user: str) -> list[str]:
    """Every event id of ``user``, page by page."""
    ids: list[str] = []
    before = None
    while True:
        query = "limit=100" + ("" if before is None else f"&before={before}")
        status, _, page = call(f"{url}/v1/users/{user}/events?{query}")
        assert status == 200, page
        ids += [e["event_id"] for e in page["data"]]
        before = page["next"]
        if before is None:
            return ids
