"""Contract tests of the similarity service with an event store (``CHORUS_EVENTS_URL``), on both backends: answers
reflect events at once, forgotten users are unknown, a store that cannot be read is a 503 naming it (and
``/readyz`` says so), and a new version starts its overlay at its own cutoff."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from chorus.services.similarity.app import create_app
from chorus.services.similarity.settings import Settings
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.data.component import load_data_component
from chorus.shared.events.rows import CUTOFF_KEY
from chorus.shared.events.store import EventStore, new_event
from tests.conftest import busiest, train_tiny

TOKEN = "status-secret"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("similarity-live-artifacts"), 3000, 3, ["similarity"])


@pytest.fixture(scope="module")
def ratings(root):
    return load_data_component(ArtifactStore(root).open(components=["data"]))


@pytest.fixture
def store(store_url):
    store = EventStore(store_url)
    yield store
    store.close()


def client_for(root, url: str) -> TestClient:
    return TestClient(create_app(Settings(artifacts=root, reload_interval=3600, events_url=url, status_token=TOKEN)))


def rating(user: str, item: str, stars: float = 5.0):
    return new_event(user, item, "rating", rating=stars, timestamp=2e9)


def test_answers_reflect_events_at_once(root, ratings, store, store_url):
    with client_for(root, store_url) as client:
        r = client.get("/v1/items/brand-new")
        assert r.status_code == 404 and "named by no event since" in r.json()["detail"]
        users = [str(u) for u in ratings.user_ids[:4]]
        store.append([rating(u, "brand-new", 4.0) for u in users])
        r = client.get("/v1/items/brand-new")
        assert r.status_code == 200
        assert r.json() == {"item_id": "brand-new", "title": None, "reviews": 4, "mean_rating": 4.0}
        similar = client.get("/v1/items/brand-new/similar", params={"k": 5}).json()
        assert similar["count"] == 5
        # it is now among the items similar to one its first rater reviewed, titled None
        u = ratings.user_ids.tolist().index(users[0])
        reviewed = str(ratings.item_ids[ratings.item[ratings.user == u][0]])
        data = client.get(f"/v1/items/{reviewed}/similar", params={"k": 500}).json()["data"]
        assert {"item_id": "brand-new", "title": None} in [{k: d[k] for k in ("item_id", "title")} for d in data]


def test_forget_makes_a_user_unknown_at_once(root, ratings, store, store_url):
    user = busiest(ratings.user_ids, ratings.user)
    with client_for(root, store_url) as client:
        assert client.get(f"/v1/users/{user}/similar").status_code == 200
        store.forget(user, 2e9)
        for path in (f"/v1/users/{user}/similar", f"/v1/users/{user}/recommendations"):
            r = client.get(path)
            assert r.status_code == 404 and f"unknown user '{user}'" in r.json()["detail"]
        pair = {"user_id": user, "item_id": busiest(ratings.item_ids, ratings.item)}
        assert client.post("/v1/predict", json={"pairs": [pair]}).json()["data"][0]["fallback"] == "global_mean"
        other = str(ratings.user_ids[0]) if str(ratings.user_ids[0]) != user else str(ratings.user_ids[1])
        similar = client.get(f"/v1/users/{other}/similar", params={"k": 500}).json()["data"]
        assert user not in [d["user_id"] for d in similar]


def test_a_new_user_gets_recommendations_without_what_they_viewed(root, ratings, store, store_url):
    liked = [str(ratings.item_ids[i]) for i in (0, 1, 2)]
    with client_for(root, store_url) as client:
        assert client.get("/v1/users/newcomer/recommendations").status_code == 404
        store.append([rating("newcomer", i) for i in liked])
        recs = client.get("/v1/users/newcomer/recommendations", params={"k": 5}).json()["data"]
        assert len(recs) == 5 and all(rec["because"][0]["item_id"] in liked for rec in recs)
        top = recs[0]["item_id"]
        store.append([new_event("newcomer", top, "view", timestamp=2e9)])
        again = client.get("/v1/users/newcomer/recommendations", params={"k": 5}).json()["data"]
        assert top not in [rec["item_id"] for rec in again] and len(again) == 5


def test_a_store_that_cannot_be_reached_is_a_503_naming_it(root, ratings):
    url = "postgresql://postgres@127.0.0.1:1/chorus"
    item = busiest(ratings.item_ids, ratings.item)
    with client_for(root, url) as client:
        for r in (
            client.get(f"/v1/items/{item}/similar"),
            client.get(f"/v1/users/{ratings.user_ids[0]}/recommendations"),
            client.post("/v1/predict", json={"pairs": [{"user_id": "u", "item_id": item}]}),
        ):
            assert r.status_code == 503
            assert r.json()["type"] == "events_unavailable"
            assert "the event store postgresql://***@127.0.0.1:1/chorus cannot be read" in r.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        detailed = client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert "event store" in detailed["detail"] and detailed["version"]
        assert client.get("/v1/stats").status_code == 200  # the version's own statistics need no store
        assert client.get("/healthz").status_code == 200


def test_a_store_that_goes_away_and_comes_back(root, ratings, store, store_url):
    item = busiest(ratings.item_ids, ratings.item)
    with client_for(root, store_url) as client:
        assert client.get(f"/v1/items/{item}/similar").status_code == 200
        assert client.get("/readyz").status_code == 200
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE chorus_events RENAME TO chorus_events_away"))
        r = client.get(f"/v1/items/{item}/similar")
        assert r.status_code == 503 and "event store" in r.json()["detail"]
        assert client.get("/readyz").status_code == 503
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE chorus_events_away RENAME TO chorus_events"))
        assert client.get(f"/v1/items/{item}/similar").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_a_new_version_starts_at_its_own_cutoff(tmp_path, store, store_url):
    root = train_tiny(tmp_path / "artifacts", 1500, 4, ["similarity"])
    user = str(load_data_component(ArtifactStore(root).open(components=["data"])).user_ids[0])
    app = create_app(Settings(artifacts=root, reload_interval=3600, events_url=store_url))
    with TestClient(app) as client:
        store.append([rating(user, "only-in-events")])
        assert client.get("/v1/items/only-in-events").status_code == 200
        # a version that says it holds every event so far (its rows are the old ones: the item is not in them)
        previous = ArtifactStore(root).open()
        with VersionWriter(root) as writer:
            writer.set_dataset(previous.manifest["dataset"]["fingerprint"], previous.manifest["dataset"]["stats"])
            for component in ("data", "similarity"):
                writer.adopt_component(previous, component)
            writer.manifest[CUTOFF_KEY] = store.last_seq()
            name = writer.commit()
        assert app.state.holder.refresh()
        r = client.get("/v1/items/only-in-events")
        assert r.status_code == 404 and r.headers["X-Model-Version"] == name
        store.append([rating(user, "after-the-cutoff")])
        assert client.get("/v1/items/after-the-cutoff").status_code == 200
