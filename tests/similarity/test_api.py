"""Contract tests of the similarity service over a tiny artifact (TestClient, lifespan included)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from chorus.services.similarity.app import create_app
from chorus.services.similarity.settings import Settings
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component
from tests.conftest import busiest, train_tiny


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("similarity-artifacts"), 3000, 2, ["similarity"])


@pytest.fixture(scope="module")
def ratings(root):
    return load_data_component(ArtifactStore(root).open(components=["data"]))


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as c:
        yield c


def test_health_and_readiness(client, root):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["version"] == ArtifactStore(root).current()


def test_similar_items_shape_order_and_version(client, ratings, root):
    item = busiest(ratings.item_ids, ratings.item)
    for measure in ("jaccard", "cosine", "pearson"):
        r = client.get(f"/v1/items/{item}/similar", params={"k": 7, "measure": measure})
        assert r.status_code == 200
        assert r.headers["X-Model-Version"] == ArtifactStore(root).current()
        body = r.json()
        assert body["item_id"] == item and body["measure"] == measure and body["count"] == len(body["data"]) <= 7
        keys = [(-hit["score"], hit["item_id"]) for hit in body["data"]]
        assert keys == sorted(keys) and all(hit["item_id"] != item for hit in body["data"])
        assert all(hit["title"] for hit in body["data"])
    # a k beyond the table is computed online and agrees with the table's prefix
    small = client.get(f"/v1/items/{item}/similar", params={"k": 10}).json()["data"]
    large = client.get(f"/v1/items/{item}/similar", params={"k": 200}).json()["data"]
    assert large[:10] == small


def test_min_common_filters_candidates(client, ratings):
    item = busiest(ratings.item_ids, ratings.item)
    loose = client.get(f"/v1/items/{item}/similar", params={"k": 500, "min_common": 1}).json()["count"]
    strict = client.get(f"/v1/items/{item}/similar", params={"k": 500, "min_common": 3}).json()["count"]
    assert strict < loose


def test_similar_users_and_recommendations(client, ratings):
    user = busiest(ratings.user_ids, ratings.user)
    r = client.get(f"/v1/users/{user}/similar", params={"k": 5, "measure": "cosine"})
    assert r.status_code == 200 and r.json()["user_id"] == user
    assert all(hit["user_id"] != user for hit in r.json()["data"])
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": 8})
    assert r.status_code == 200
    recs = r.json()["data"]
    u = ratings.user_ids.tolist().index(user)
    reviewed = {str(ratings.item_ids[i]) for i in ratings.item[ratings.user == u]}
    assert recs and not {rec["item_id"] for rec in recs} & reviewed
    assert all(rec["because"][0]["item_id"] in reviewed for rec in recs)


def test_predict_batch_with_fallbacks(client, ratings):
    user = busiest(ratings.user_ids, ratings.user)
    item = busiest(ratings.item_ids, ratings.item)
    pairs = [
        {"user_id": user, "item_id": item},
        {"user_id": "ghost", "item_id": item},
        {"user_id": user, "item_id": "no-such-item"},
    ]
    r = client.post("/v1/predict", json={"pairs": pairs})
    assert r.status_code == 200
    data = r.json()["data"]
    assert [d["user_id"] for d in data] == [p["user_id"] for p in pairs]
    assert data[0]["fallback"] is None and 1 <= data[0]["prediction"] <= 5
    assert data[1]["fallback"] == data[2]["fallback"] == "global_mean"
    assert data[1]["prediction"] == pytest.approx(float(np.mean(ratings.rating)), abs=1e-3)


def test_item_search_and_stats(client, ratings):
    item = busiest(ratings.item_ids, ratings.item)
    i = ratings.item_ids.tolist().index(item)
    r = client.get(f"/v1/items/{item}")
    assert r.json()["reviews"] == int((ratings.item == i).sum())
    assert r.json()["mean_rating"] == pytest.approx(float(ratings.rating[ratings.item == i].mean()), abs=1e-4)
    word = str(ratings.titles[i]).split()[0]
    found = client.get("/v1/items", params={"q": word.upper()}).json()
    assert found["count"] > 0 and all(word.lower() in d["title"].lower() for d in found["data"])
    assert client.get("/v1/items", params={"q": item}).json()["data"][0]["item_id"] == item
    empty = client.get("/v1/items", params={"q": "zzzz-no-title-has-this"})
    assert empty.status_code == 200 and empty.json()["count"] == 0
    stats = client.get("/v1/stats").json()
    assert stats["stats"]["reviews"] == ratings.n


@pytest.mark.parametrize(
    "path,params,status,needle",
    [
        ("/v1/items/{item}/similar", {"k": 0}, 422, "k"),
        ("/v1/items/{item}/similar", {"k": 501}, 422, "less than or equal to 500"),
        ("/v1/items/{item}/similar", {"k": "ten"}, 422, "valid integer"),
        ("/v1/items/{item}/similar", {"measure": "euclid"}, 422, "'jaccard', 'cosine' or 'pearson'"),
        ("/v1/items/{item}/similar", {"min_common": 0}, 422, "min_common"),
        ("/v1/items/NO-SUCH/similar", {}, 404, "unknown item 'NO-SUCH'"),
        ("/v1/users/NO-SUCH/similar", {}, 404, "unknown user 'NO-SUCH'"),
        ("/v1/users/NO-SUCH/recommendations", {}, 404, "unknown user 'NO-SUCH'"),
        ("/v1/items/NO-SUCH", {}, 404, "unknown item 'NO-SUCH'"),
        ("/v1/items", {}, 422, "q"),
        ("/v1/items", {"q": "   "}, 422, "query.q: empty"),
    ],
)
def test_bad_input(client, ratings, path, params, status, needle):
    r = client.get(path.format(item=busiest(ratings.item_ids, ratings.item)), params=params)
    assert r.status_code == status
    assert set(r.json()) >= {"type", "detail"} and needle in r.json()["detail"]


def test_bad_predict_bodies(client):
    assert client.post("/v1/predict", json={"pairs": []}).status_code == 422
    too_many = {"pairs": [{"user_id": "u", "item_id": "i"}] * 10_001}
    r = client.post("/v1/predict", json=too_many)
    assert r.status_code == 422 and "10000" in r.json()["detail"]
    r = client.post("/v1/predict", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["type"] == "invalid_input"


def test_the_service_imports_nothing_offline():
    code = (
        "import sys, chorus.services.similarity.app; "
        "print(sorted({'tracemalloc', 'chorus.training.similarity.build', 'chorus.training.similarity.cooccur',"
        " 'chorus.training.similarity.spark_build', 'numba', 'pyspark', 'hypothesis'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
