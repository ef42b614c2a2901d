"""The event routes against a real event store (SQLite and PostgreSQL): keys, validation, idempotency, pages,
forgetting, metrics and readiness; and read-your-writes through the real Redis cache, with fakes of the services
that fold the store's events into their answers as the real ones do."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from chorus.services.gateway.app import create_app
from chorus.services.gateway.events import Events
from chorus.services.gateway.keys import ApiKeys, MissingKey
from chorus.shared.contract.errors import EventsUnavailable, Forbidden
from chorus.shared.contract.events import EventIn
from chorus.shared.contract.names import MAX_ID_LENGTH
from chorus.shared.events.store import MAX_BATCH, EventStore
from tests.gateway.conftest import REDIS_TEST_URL, make_client, make_settings
from tests.gateway.fakes import FakeService

pytestmark = pytest.mark.timeout(120)

KEYS = "key-one-0123456789,key-two-abcdefghij"
AUTH = {"Authorization": "Bearer key-two-abcdefghij"}


@pytest.fixture
def store(store_url):
    """The store the gateway and the fakes share, opened by the test (the fakes read it as the services do)."""
    opened = EventStore(store_url)
    yield opened
    opened.close()


def events_client(sim, rat, store_url: str | None, **overrides) -> TestClient:
    # a mark read slower than CHORUS_EVENTS_TIMEOUT counts as an outage (the answer bypasses the cache): these
    # tests are about what the cache holds, so a loaded machine's slow read must not count as one
    settings = {"events_url": store_url, "api_keys": KEYS, "events_timeout": 10.0} | overrides
    return make_client(sim, rat, **settings)


@pytest.fixture
def live(store):
    """Fakes folding the store's events into their answers, and a gateway over them (in-process LRU cache)."""
    sim = FakeService("similarity", "s1", events=store)
    rat = FakeService("rating", "r1", events=store)
    with events_client(sim, rat, store.url) as client:
        yield client, store, sim, rat


def post(client: TestClient, *events: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    response: httpx.Response = client.post(
        "/v1/events", json={"events": list(events)}, headers=AUTH if headers is None else headers
    )
    return response


def rating(user: str, item: str, stars: float = 5.0, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "kind": "rating", "rating": stars, **extra}


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"type", "detail"}
    return cast(dict[str, Any], body)


# --- no store, no keys --------------------------------------------------------------------------------------


ROUTES = [("POST", "/v1/events"), ("GET", "/v1/users/U1/events"), ("DELETE", "/v1/users/U1")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_store_the_event_routes_answer_503_saying_so_after_the_key(sim, rat, method, path):
    with make_client(sim, rat, api_keys=KEYS) as client:
        body = error(client.request(method, path, json={"events": [rating("U1", "B001")]}, headers=AUTH), 503)
        assert body["type"] == "events_unavailable" and "no event store" in body["detail"]
        assert "CHORUS_" not in body["detail"]  # public answers name no setting
        error(client.request(method, path, json={"events": [rating("U1", "B001")]}), 401)  # the key comes first
        assert client.get("/v1/users/U1/recommendations").status_code == 200  # reads are unaffected


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_store_without_keys_refuses_every_request_rather_than_be_open(sim, rat, tmp_path, method, path):
    with make_client(sim, rat, events_url=f"sqlite:///{tmp_path / 'e.db'}") as client:
        for headers in ({}, AUTH):
            body = error(client.request(method, path, json={"events": [rating("U1", "B001")]}, headers=headers), 503)
            assert "no API keys" in body["detail"] and "CHORUS_" not in body["detail"]


# --- keys ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_keys_missing_401_wrong_403_right_2xx_for_each_configured_key(sim, rat, tmp_path, method, path):
    with events_client(sim, rat, f"sqlite:///{tmp_path / 'e.db'}") as client:
        payload = {"events": [rating("U1", "B001")]}
        for headers in ({}, {"Authorization": "Basic a2V5LW9uZQ=="}, {"Authorization": "Bearer"}):
            response = client.request(method, path, json=payload, headers=headers)
            assert error(response, 401)["type"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
        for wrong in ("key-one", "key-one-0123456789,key-two-abcdefghij", "KEY-ONE-0123456789", "key-one-01234567890"):
            response = client.request(method, path, json=payload, headers={"Authorization": f"Bearer {wrong}"})
            assert error(response, 403)["type"] == "forbidden"
        for key in KEYS.split(","):
            response = client.request(method, path, json=payload, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text


def test_every_key_is_compared_whichever_matches(monkeypatch):
    compared: list[bytes] = []
    import chorus.services.gateway.keys as keys_module

    real = keys_module.hmac.compare_digest

    def spy(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    keys = ApiKeys(["first", "second", "third"])
    keys.check("first")  # the first key matches: the other two are compared all the same
    assert len(compared) == 3 and len(set(compared)) == 3
    with pytest.raises(Forbidden):
        keys.check("fourth")
    with pytest.raises(MissingKey):
        keys.check(None)
    with pytest.raises(EventsUnavailable):
        ApiKeys([]).check("first")


def test_keys_with_an_empty_entry_are_refused_at_start():
    with pytest.raises(ValueError, match="empty key"):
        make_settings(api_keys="a,,b")
    assert make_settings(api_keys=" a , b ").keys() == ["a", "b"]
    assert make_settings(api_keys="").keys() == []


def test_reads_stay_public_with_a_store(live):
    client, *_ = live
    for path in ("/v1/users/U1/recommendations", "/v1/items/B001/similar", "/v1/predict?user_id=U1&item_id=B001"):
        assert client.get(path).status_code == 200


# --- validation ---------------------------------------------------------------------------------------------

LONG = "x" * (MAX_ID_LENGTH + 1)


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"user_id": "U1", "item_id": "B001", "kind": "like"}, "kind must be one of rating, purchase, view, review"),
        ({"user_id": "U1", "item_id": "B001", "kind": "forget"}, "kind must be one of"),
        ({"user_id": "U1", "item_id": "B001", "kind": "rating"}, "an event of kind 'rating' needs a rating"),
        ({"user_id": "U1", "item_id": "B001", "kind": "review", "text": "good"}, "'review' needs a rating"),
        ({"user_id": "U1", "item_id": "B001", "kind": "view", "rating": 3}, "'view' carries no rating"),
        ({**rating("U1", "B001"), "text": "so good"}, "only a review carries text"),
        ({**rating("U1", "B001"), "rating": 1e9}, "less than or equal to 1000"),
        ({**rating("U1", "B001"), "rating": "five"}, "rating"),
        ({"user_id": "U1", "kind": "purchase"}, "item_id: Field required"),
        ({"user_id": LONG, "item_id": "B001", "kind": "purchase"}, "user_id: String should have at most 256"),
        ({"user_id": "U1", "item_id": LONG, "kind": "purchase"}, "item_id: String should have at most 256"),
        ({"event_id": LONG, **rating("U1", "B001")}, "event_id: String should have at most 256"),
        ({"event_id": "", **rating("U1", "B001")}, "event_id: String should have at least 1"),
        ({"user_id": "", "item_id": "B001", "kind": "purchase"}, "user_id: String should have at least 1"),
        ({"user_id": "a/b", "item_id": "B001", "kind": "purchase"}, "user ids containing '/' are not supported"),
        ({**rating("U1", "B001"), "timestamp": "yesterday"}, "timestamp 'yesterday' is not ISO-8601"),
        ({**rating("U1", "B001"), "timestamp": "2024-13-01"}, "is not ISO-8601"),
        ({**rating("U1", "B001"), "timestamp": -1}, "outside 1970-01-01 to 9999-12-31"),
        ({**rating("U1", "B001"), "timestamp": 1e12}, "outside 1970-01-01 to 9999-12-31"),
        ({**rating("U1", "B001"), "timestamp": "1969-12-31T23:59:59Z"}, "outside 1970-01-01"),
        ({**rating("U1", "B001"), "timestamp": True}, "timestamp must be an ISO-8601 string or a number"),
        ({**rating("U1", "B001"), "timestamp": [2024]}, "timestamp must be an ISO-8601 string or a number"),
        ({**rating("U1", "B001"), "verified": True}, "verified: Extra inputs are not permitted"),
    ],
)
def test_invalid_events_are_a_422_naming_the_event_and_the_problem(sim, rat, tmp_path, event, words):
    with events_client(sim, rat, f"sqlite:///{tmp_path / 'e.db'}") as client:
        response = post(client, rating("U1", "B002"), event)
        body = error(response, 422)
        assert body["type"] == "invalid_input" and words in body["detail"], body["detail"]
        assert "events.1" in body["detail"]  # the second event of the batch
        assert client.get("/v1/users/U1/events", headers=AUTH).json()["count"] == 0  # nothing of the batch stored


def test_non_finite_ratings_and_timestamps_are_refused(sim, rat, tmp_path):
    # Python's JSON reader accepts NaN and Infinity; the API does not
    with events_client(sim, rat, f"sqlite:///{tmp_path / 'e.db'}") as client:
        for field in ('"rating": NaN', '"rating": Infinity', '"rating": 5, "timestamp": NaN'):
            raw = '{"events": [{"user_id": "U1", "item_id": "B001", "kind": "rating", ' + field + "}]}"
            response = client.post("/v1/events", content=raw, headers={**AUTH, "content-type": "application/json"})
            assert error(response, 422)["type"] == "invalid_input", field


@pytest.mark.parametrize(("count", "words"), [(0, "at least 1"), (MAX_BATCH + 1, "at most 1000")])
def test_a_batch_holds_1_to_1000_events(sim, rat, tmp_path, count, words):
    with events_client(sim, rat, f"sqlite:///{tmp_path / 'e.db'}") as client:
        events = [{"user_id": "U1", "item_id": f"I{n}", "kind": "view"} for n in range(count)]
        body = error(post(client, *events), 422)
        assert "events" in body["detail"] and words in body["detail"]
        assert error(client.post("/v1/events", json={}, headers=AUTH), 422)["detail"] == "events: Field required"


def test_page_parameters_are_bounded(live):
    client, *_ = live
    for query in ("limit=0", "limit=1001", "before=0", "limit=x"):
        assert error(client.get(f"/v1/users/U1/events?{query}", headers=AUTH), 422)["type"] == "invalid_input"
    assert error(client.get(f"/v1/users/{LONG}/events", headers=AUTH), 422)["type"] == "invalid_input"
    assert error(client.delete(f"/v1/users/{LONG}", headers=AUTH), 422)["type"] == "invalid_input"
    assert error(client.delete("/v1/users/a%2Fb", headers=AUTH), 404)["type"] == "not_found"


# --- the routes on both backends ----------------------------------------------------------------------------


def test_a_batch_is_stored_once_whatever_the_retries(live):
    client, store, *_ = live
    batch = [rating("U1", "B003", 4, event_id="e-1"), {"user_id": "U1", "item_id": "NEW-ITEM", "kind": "purchase"}]
    before = _counter("stored"), _counter("duplicate")
    assert post(client, *batch).json() == {"stored": 2, "duplicates": 0}
    assert post(client, batch[0]).json() == {"stored": 0, "duplicates": 1}  # a retry
    # an id repeated within one batch, beside one seen before
    again = post(client, rating("U2", "B001", event_id="e-2"), rating("U2", "B001", event_id="e-2"), batch[0])
    assert again.json() == {"stored": 1, "duplicates": 2}
    assert (_counter("stored") - before[0], _counter("duplicate") - before[1]) == (3, 3)
    assert [e.event_id for e in store.page("U1", 10)][1] == "e-1"  # what the store holds, from its own reader
    assert len(store.page("U1", 10)) == 2 and len(store.page("U2", 10)) == 1


def test_events_are_read_back_newest_first_page_by_page(live):
    client, *_ = live
    stamps = [1_700_000_000 + n for n in range(7)]
    for n, stamp in enumerate(stamps):
        assert post(client, rating("U9", f"I{n}", 1 + n % 5, timestamp=stamp)).status_code == 200
    post(client, rating("someone-else", "I0"))
    seen, before, pages = [], None, 0
    while True:
        query = "limit=3" + ("" if before is None else f"&before={before}")
        page = client.get(f"/v1/users/U9/events?{query}", headers=AUTH)
        assert page.headers["cache-control"] == "no-store"
        body = page.json()
        assert body["user_id"] == "U9" and body["count"] == len(body["data"]) <= 3
        seen += body["data"]
        pages += 1
        before = body["next"]
        if before is None:
            break
    assert pages == 3 and [e["item_id"] for e in seen] == [f"I{n}" for n in reversed(range(7))]
    assert [e["timestamp"] for e in seen] == [float(s) for s in reversed(stamps)]
    assert all(a["seq"] > b["seq"] for a, b in zip(seen, seen[1:], strict=False))
    assert seen[0] == {
        "seq": seen[0]["seq"],
        "event_id": seen[0]["event_id"],
        "user_id": "U9",
        "item_id": "I6",
        "kind": "rating",
        "rating": 2.0,
        "text": None,
        "timestamp": float(stamps[6]),
    }
    exact = client.get("/v1/users/U9/events?limit=7", headers=AUTH).json()  # a full last page: no next
    assert exact["count"] == 7 and exact["next"] is None
    assert client.get("/v1/users/nobody/events", headers=AUTH).json() == {
        "user_id": "nobody",
        "data": [],
        "count": 0,
        "next": None,
    }


def test_timestamps_iso_or_epoch_default_now(live):
    client, *_ = live
    start = time.time()
    post(
        client,
        {"user_id": "U5", "item_id": "A", "kind": "view", "timestamp": "2024-05-01T12:30:00Z"},
        {"user_id": "U5", "item_id": "B", "kind": "view", "timestamp": "2024-05-01T14:30:00+02:00"},
        {"user_id": "U5", "item_id": "C", "kind": "view", "timestamp": "2024-05-01T12:30:00"},  # UTC
        {"user_id": "U5", "item_id": "D", "kind": "view", "timestamp": 1714566600.5},
        {"user_id": "U5", "item_id": "E", "kind": "view"},
        {"user_id": "U5", "item_id": "F", "kind": "review", "rating": 4, "text": "Bright and warm."},
    )
    end = time.time()
    events = {e["item_id"]: e for e in client.get("/v1/users/U5/events", headers=AUTH).json()["data"]}
    assert events["A"]["timestamp"] == events["B"]["timestamp"] == events["C"]["timestamp"] == 1714566600.0
    assert events["D"]["timestamp"] == 1714566600.5
    assert start <= events["E"]["timestamp"] <= end and math.isclose(events["E"]["timestamp"], events["F"]["timestamp"])
    assert events["F"]["text"] == "Bright and warm." and events["F"]["rating"] == 4.0


def test_forget_deletes_the_events_and_makes_the_user_unknown_at_once(live):
    client, store, _, _ = live
    post(client, rating("NEWCOMER", "B001"), rating("NEWCOMER", "B002"), rating("U2", "B003"))
    known = client.get("/v1/users/NEWCOMER/recommendations")
    assert known.status_code == 200 and known.json()["fallback"] is None
    assert client.get("/v1/users/NEWCOMER/recommendations").headers["x-cache"] == "hit"
    forgotten_before = REGISTRY.get_sample_value("chorus_users_forgotten_total") or 0
    response = client.delete("/v1/users/NEWCOMER", headers=AUTH)
    assert response.json() == {"user_id": "NEWCOMER", "deleted": 2}
    assert REGISTRY.get_sample_value("chorus_users_forgotten_total") == forgotten_before + 1
    assert client.get("/v1/users/NEWCOMER/events", headers=AUTH).json()["data"] == []
    after = client.get("/v1/users/NEWCOMER/recommendations")  # no stale cached list: unknown now
    assert after.headers["x-cache"] == "miss" and after.json()["fallback"] == "popular"
    assert store.tombstones() == {"NEWCOMER": store.user_seq("NEWCOMER")}
    assert client.delete("/v1/users/NEWCOMER", headers=AUTH).json() == {"user_id": "NEWCOMER", "deleted": 0}
    assert len(client.get("/v1/users/U2/events", headers=AUTH).json()["data"]) == 1  # others keep theirs


def _counter(result: str) -> float:
    return REGISTRY.get_sample_value("chorus_events_total", {"result": result}) or 0.0


# --- read-your-writes ---------------------------------------------------------------------------------------


def _items(response: httpx.Response) -> list[str]:
    return [d["item_id"] for d in response.json()["data"]]


def test_the_next_request_reflects_the_users_events_through_the_redis_cache(store, redis_db):
    sim = FakeService("similarity", "s1", events=store)
    rat = FakeService("rating", "r1", events=store)
    with events_client(sim, rat, store.url, redis_url=REDIS_TEST_URL, near_cache_ttl=5) as client:
        urls = {
            "ranked": "/v1/users/U1/recommendations?k=5",
            "because": "/v1/users/U1/recommendations?k=5&method=similar",
            "predict": "/v1/predict?user_id=NEW&item_id=B001",
        }
        first = {name: client.get(url) for name, url in urls.items()}
        assert {r.headers["x-cache"] for r in first.values()} == {"miss"}
        assert {client.get(url).headers["x-cache"] for url in urls.values()} == {"hit"}
        assert "B003" in _items(first["ranked"]) and first["predict"].json()["fallback"] is True
        calls = rat.api_calls() + sim.api_calls()

        assert post(client, rating("U1", "B003"), rating("NEW", "B002")).status_code == 200
        after = {name: client.get(url) for name, url in urls.items()}  # no client header
        assert {r.headers["x-cache"] for r in after.values()} == {"miss"}
        assert rat.api_calls() + sim.api_calls() == calls + 3
        assert "B003" not in _items(after["ranked"]) and "B003" not in _items(after["because"])
        assert after["predict"].json()["fallback"] is False  # a new user, known by their first event
        assert {client.get(url).headers["x-cache"] for url in urls.values()} == {"hit"}  # cached again
        assert json.loads(redis_db.get(_only_key(redis_db, "users/U1/recommendations:k=5"))) == after["ranked"].json()

        other = client.get("/v1/users/U2/recommendations?k=5")
        post(client, rating("U1", "B 004"))
        assert client.get("/v1/users/U2/recommendations?k=5").headers["x-cache"] == "hit"  # not about U2
        assert client.get("/v1/users/U2/recommendations?k=5").content == other.content


def _only_key(redis_db, tail: str) -> bytes:
    """The one key ending in ``tail`` whose mark is the highest."""
    keys = sorted(k for k in redis_db.keys("*") if k.decode().endswith(tail))
    assert keys, tail
    newest: bytes = max(keys, key=lambda k: int(k.decode().split(":")[4][1:]))
    return newest


def test_answers_about_everyone_follow_every_write(live):
    client, store, sim, _ = live
    first = client.get("/v1/items/B001/similar")
    assert client.get("/v1/items/B001/similar").headers["x-cache"] == "hit"
    assert client.get("/v1/items/B001").headers["x-cache"] == "miss"
    assert client.get("/v1/stats").headers["x-cache"] == "miss"
    post(client, {"user_id": "someone", "item_id": "B002", "kind": "purchase"})
    after = client.get("/v1/items/B001/similar")
    assert after.headers["x-cache"] == "miss"
    assert after.json()["events_seen"] == store.last_seq() > first.json()["events_seen"]
    assert client.get("/v1/items/B001").headers["x-cache"] == "miss"
    assert client.get("/v1/stats").headers["x-cache"] == "hit"  # the served dataset's statistics: no events


def test_a_no_cache_answer_is_stored_under_the_users_mark_too(live):
    client, *_ = live
    url = "/v1/users/U1/recommendations"
    fresh = client.get(url, headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-cache"] == "miss" and client.get(url).headers["x-cache"] == "hit"
    post(client, rating("U1", "B003"))
    after = client.get(url)
    assert after.headers["x-cache"] == "miss"  # the no-cache answer was stored under the old mark
    assert "B003" not in _items(after)


def test_the_web_page_reflects_the_users_events_too(live):
    client, *_ = live

    def recommended() -> str:  # the "recommended for you" part of the page, up to the next heading
        html: str = client.get("/?user=U1").text
        return html.split('id="model-title"')[1].split("<h3")[0]

    assert 'data-item-id="B003"' in recommended()
    post(client, rating("U1", "B003"), rating("U1", "B 004"))
    assert 'data-item-id="B003"' not in recommended()
    recent = client.get("/?user=U1").text.split('id="recent"')[1].split("</ol>")[0]
    assert 'data-item-id="B 004"' in recent  # the newest review, first


# --- readiness when the store is down -----------------------------------------------------------------------


@contextmanager
def gateway_over(
    sim: FakeService, rat: FakeService, store_class: type[EventStore], url: str, **overrides: Any
) -> Iterator[tuple[TestClient, Events]]:
    """A gateway whose event store, once started, is a ``store_class`` at ``url``; the client and its events."""
    settings = make_settings(events_url=url, api_keys=KEYS, **overrides)
    transports = {"similarity": httpx.MockTransport(sim), "rating": httpx.MockTransport(rat)}
    app = create_app(settings, transports=transports)
    with TestClient(app) as client:
        app_events = app.state.gateway.events
        opened, app_events.store = app_events.store, store_class(url)
        opened.close()
        yield client, app_events


class FlakyStore(EventStore):
    """The real store, but every read fails while ``down`` is set (as when PostgreSQL is stopped)."""

    down = False

    def _check(self) -> None:
        if FlakyStore.down:
            raise ConnectionRefusedError("connection refused (the test stopped the store)")

    def user_seq(self, user_id: str) -> int:
        self._check()
        return super().user_seq(user_id)

    def last_seq(self) -> int:
        self._check()
        return super().last_seq()

    def submit_async(self, batch):
        self._check()
        return super().submit_async(batch)


def test_a_store_that_goes_down_fails_only_the_event_routes(sim, rat, tmp_path):
    FlakyStore.down = False
    url = f"sqlite:///{tmp_path / 'e.db'}"
    try:
        with gateway_over(sim, rat, FlakyStore, url, status_token="t") as (client, _):
            assert client.get("/readyz").json()["events"] == {"status": "ok"}
            detail = client.get("/readyz", headers={"Authorization": "Bearer t"}).json()["events"]
            assert detail == {"status": "ok", "backend": "sqlite", "detail": url}
            assert client.get("/v1/users/U1/recommendations").headers["x-cache"] == "miss"
            assert client.get("/v1/users/U1/recommendations").headers["x-cache"] == "hit"

            FlakyStore.down = True
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["events"] == {"status": "down"}
            shown = client.get("/readyz", headers={"Authorization": "Bearer t"}).json()["events"]
            assert shown["status"] == "down" and "connection refused" in shown["detail"]
            for _ in range(2):  # reads keep working, uncached where the answer depends on events
                response = client.get("/v1/users/U1/recommendations")
                assert response.status_code == 200 and response.headers["x-cache"] == "bypass"
            assert client.get("/v1/stats").status_code == 200
            assert client.get("/v1/stats").headers["x-cache"] == "hit"  # no events: cached as ever
            body = error(post(client, rating("U1", "B003")), 503)
            assert body["type"] == "events_unavailable" and "retry" in body["detail"]
            assert url not in body["detail"]  # no internal detail in a public error

            FlakyStore.down = False
            deadline = time.monotonic() + 5
            while client.get("/v1/users/U1/recommendations").headers["x-cache"] != "hit":
                assert time.monotonic() < deadline, "the store came back but answers stayed uncached"
                time.sleep(0.05)
            assert post(client, rating("U1", "B003")).status_code == 200
    finally:
        FlakyStore.down = False


class FailingCommits(EventStore):
    """The real store, but while ``failing`` is set every transaction of the writer is rolled back and fails
    instead of committing (as a full disk would make it)."""

    failing = False
    groups: list[int] = []

    def _insert_rows(self, rows):
        FailingCommits.groups.append(len(rows))
        if not FailingCommits.failing:
            return super()._insert_rows(rows)
        time.sleep(0.05)  # long enough for the other posts to queue behind this one
        raise sa.exc.OperationalError("COMMIT", None, OSError("could not write to the log: no space left"))


def test_posts_waiting_on_a_failed_commit_all_get_503_and_none_is_acknowledged(sim, rat, store_url):
    FailingCommits.failing, FailingCommits.groups = True, []
    try:
        with gateway_over(sim, rat, FailingCommits, store_url) as (client, app_events):
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda k: post(client, rating("U1", f"B{k}", event_id=f"e{k}")), range(16)))
            assert [a.status_code for a in answers] == [503] * 16
            assert all("not known whether the events were stored" in a.json()["detail"] for a in answers)
            assert len(FailingCommits.groups) < 16  # posts waited together on one commit
            assert app_events.require().last_seq() == 0  # nothing stored, nothing acknowledged

            FailingCommits.failing = False
            deadline = time.monotonic() + 5
            while (answer := post(client, rating("U1", "B0", event_id="e0"))).status_code == 503:
                assert time.monotonic() < deadline, "the store works again, but posts still fail"
                time.sleep(0.05)
            assert answer.json() == {"stored": 1, "duplicates": 0}
    finally:
        FailingCommits.failing = False


def test_a_wrong_store_url_stops_the_start(sim, rat):
    app = create_app(make_settings(events_url="mysql://db/events", api_keys=KEYS))
    with pytest.raises(Exception, match="SQLite or PostgreSQL"):
        with TestClient(app):
            pass


# --- marks: one read per turn, never one begun before the request -------------------------------------------


def test_marks_of_one_turn_share_a_read_and_a_later_request_never_joins_one_under_way(store):
    import asyncio
    import threading

    from chorus.services.gateway.events import EVERYONE, Events, of_user

    reads: list[str] = []
    release = threading.Event()
    real = store.user_seq

    def user_seq(user_id: str) -> int:
        reads.append(user_id)
        if user_id == "SLOW":
            release.wait(5)
        return int(real(user_id))

    async def scenario():
        events = Events(store.url, timeout=10, opener=lambda url: store)
        await events.open(wait=5)
        store.user_seq = user_seq
        marks = await asyncio.gather(*(events.mark(of_user("U1")) for _ in range(20)), events.mark(of_user("U2")))
        assert marks == ["u0"] * 21 and sorted(reads) == ["U1", "U2"]
        assert await events.mark(EVERYONE) == "a0" and await events.mark(of_user("U1")) == "u0"
        assert len(reads) == 3  # a new turn, a new read

        reads.clear()
        first = asyncio.create_task(events.mark(of_user("SLOW")))
        while not reads:  # the first read is under way, blocked before it reads
            await asyncio.sleep(0.01)
        stored = store.append([EventIn(user_id="SLOW", item_id="B001", kind="view").to_new(1.0)])
        assert stored.stored == 1
        second = asyncio.create_task(events.mark(of_user("SLOW")))  # arrives after the write was acknowledged
        await asyncio.sleep(0.05)
        release.set()
        assert await second == f"u{real('SLOW')}" != "u0"
        assert await first in ("u0", f"u{real('SLOW')}")
        assert reads == ["SLOW", "SLOW"]
        store.user_seq = real
        events.store = None  # the test's store: closed by its fixture
        await events.aclose()

    asyncio.run(scenario())


def test_openapi_documents_the_event_routes_their_key_and_their_errors(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the gateway's CHORUS_API_KEYS, as Authorization: Bearer <key>",
    }
    expected = {
        ("post", "/v1/events"): "StoredPublic",
        ("get", "/v1/users/{user_id}/events"): "EventsPublic",
        ("delete", "/v1/users/{user_id}"): "ForgottenPublic",
    }
    for (method, path), answer in expected.items():
        route = schema["paths"][path][method]
        assert route["security"] == [{"ApiKey": []}] and route["tags"] == ["events"]
        # and the HTTP layer's refusals, as on every route
        assert set(route["responses"]) == {"200", "401", "403", "422", "503", "408", "413", "414", "431"}
        assert answer in json.dumps(route["responses"]["200"])
        types = {
            status: {
                schema["components"]["schemas"][ref["$ref"].split("/")[-1]]["properties"]["type"]["const"]
                for ref in body["content"]["application/json"]["schema"].get("anyOf")
                or [body["content"]["application/json"]["schema"]]
            }
            for status, body in route["responses"].items()
            if status in ("401", "403", "503")
        }
        assert types == {"401": {"unauthorized"}, "403": {"forbidden"}, "503": {"events_unavailable", "overloaded"}}
    event = schema["components"]["schemas"]["EventIn"]["properties"]
    assert event["kind"]["enum"] == ["rating", "purchase", "view", "review"]
    number = next(t for t in event["rating"]["anyOf"] if t.get("type") == "number")
    assert number["maximum"] == 1000 and number["minimum"] == -1000
    page = {p["name"]: p for p in schema["paths"]["/v1/users/{user_id}/events"]["get"]["parameters"]}
    assert page["limit"]["schema"]["maximum"] == 1000 and page["limit"]["schema"]["default"] == 100
    assert "ApiKey" not in json.dumps(schema["paths"]["/v1/users/{user_id}/recommendations"])  # reads are public


def test_a_store_unreachable_at_start_is_opened_in_the_background_while_reads_go_on(sim, rat, tmp_path):
    import asyncio

    from chorus.services.gateway.events import Events, of_user

    closed = "postgresql://chorus:secret@127.0.0.1:1/events?connect_timeout=1"  # port 1: refused at once
    with make_client(sim, rat, events_url=closed, api_keys=KEYS, status_token="t") as client:
        response = client.get("/v1/users/U1/recommendations")
        assert response.status_code == 200 and response.headers["x-cache"] == "bypass"
        body = error(post(client, rating("U1", "B001")), 503)
        assert body["type"] == "events_unavailable" and "cannot be reached" in body["detail"]
        assert client.get("/readyz").status_code == 200
        shown = client.get("/readyz", headers={"Authorization": "Bearer t"}).json()["events"]
        assert shown["status"] == "down" and shown["backend"] == "postgresql"
        assert "secret" not in shown["detail"] and "chorus:***@127.0.0.1:1" in shown["detail"]

    attempts: list[str] = []
    url = f"sqlite:///{tmp_path / 'late.db'}"

    def opener(address: str) -> EventStore:
        attempts.append(address)
        if len(attempts) < 3:
            raise ConnectionRefusedError("not yet")
        return EventStore(address)

    async def scenario():
        events = Events(url, timeout=1, first_backoff=0.01, opener=opener)
        await events.open(wait=0.0)  # not waited for: opened in the background
        assert await events.mark(of_user("U1")) is None  # meanwhile: bypass the cache
        for _ in range(200):
            if events.store is not None:
                break
            await asyncio.sleep(0.01)
        assert len(attempts) == 3 and await events.mark(of_user("U1")) == "u0"
        await events.aclose()

    asyncio.run(scenario())
