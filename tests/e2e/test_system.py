"""The real processes working together, seen only through the gateway over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import redis

from chorus.training.train import parse_components, train
from tests.conftest import busiest
from tests.e2e.conftest import get, start_topology
from tests.load import Load
from tests.redis_urls import E2E_REDIS_URL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def active_user(dataset) -> str:
    return busiest(dataset.user_ids, dataset.user)


def popular_item(dataset) -> str:
    return busiest(dataset.item_ids, dataset.item)


def test_the_users_story(system, dataset):
    item = popular_item(dataset)
    word = dataset.titles[dataset.item_ids.tolist().index(item)].split()[0]

    r = get(system, "/v1/items", q=word)
    assert r.status_code == 200, r.text
    assert any(hit["item_id"] == item for hit in r.json()["data"]) or r.json()["count"] > 0

    r = get(system, f"/v1/items/{item}/similar", k=5, measure="jaccard")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item_id"] == item and 0 < body["count"] <= 5
    assert all(hit["item_id"] != item and hit["title"] for hit in body["data"])
    assert r.headers["X-Cache"] == "miss" and r.headers["X-Model-Version"]

    user = active_user(dataset)
    reviewed = set(dataset.item_ids[dataset.item[dataset.user_ids[dataset.user] == user]].tolist())
    r = get(system, f"/v1/users/{user}/recommendations", k=5)  # the served version's default ranker
    assert r.status_code == 200, r.text
    ranked = r.json()
    recs = ranked["data"]
    assert ranked["model"] and ranked["fallback"] is None and len(recs) == 5
    assert not {rec["item_id"] for rec in recs} & reviewed
    assert all(rec["title"] and isinstance(rec["score"], float) for rec in recs)
    assert all({b["item_id"] for b in rec["because"] or []} <= reviewed for rec in recs)
    top = [rec["item_id"] for rec in recs[:2]]
    r = get(system, f"/v1/users/{user}/recommendations", k=5, exclude=[*top, "NO-SUCH-ITEM"])
    assert r.status_code == 200 and r.headers["X-Cache"] == "miss", r.text
    excluded = r.json()
    assert excluded["model"] == ranked["model"] and excluded["unknown_exclude"] == ["NO-SUCH-ITEM"]
    assert not {rec["item_id"] for rec in excluded["data"]} & (reviewed | set(top))
    again = get(system, f"/v1/users/{user}/recommendations", k=5, exclude=["NO-SUCH-ITEM", *reversed(top)])
    assert again.headers["X-Cache"] == "hit" and again.json() == excluded
    latent = get(system, f"/v1/users/{user}/recommendations", k=5, method="latent").json()
    assert latent["model"] == "latent" and all(1.0 <= rec["score"] <= 5.0 for rec in latent["data"])

    basket = sorted(reviewed)[:3]
    r = httpx.post(system.url() + "/v1/recommendations", json={"items": [*basket, "NO-SUCH-ITEM"], "k": 5}, timeout=15)
    assert r.status_code == 200 and r.headers["X-Cache"] == "bypass", r.text
    answer = r.json()
    assert answer["unknown_items"] == ["NO-SUCH-ITEM"] and answer["count"] == 5
    assert not {rec["item_id"] for rec in answer["data"]} & set(basket)
    r = get(system, f"/v1/users/{user}/recommendations", k=5, method="similar")
    assert r.status_code == 200, r.text
    assert all(rec["because"] for rec in r.json()["data"])

    r = get(system, "/v1/predict", user_id=user, item_id=recs[0]["item_id"])
    assert r.status_code == 200, r.text
    assert 1.0 <= r.json()["prediction"] <= 5.0

    again = get(system, f"/v1/items/{item}/similar", k=5, measure="jaccard")
    assert again.status_code == 200 and again.headers["X-Cache"] == "hit"
    assert again.json() == body
    client = redis.Redis.from_url(E2E_REDIS_URL)
    keys = [k for k in client.scan_iter("*") if item.encode() in k and b"similar" in k]
    assert keys, "the cached answer is not in Redis"
    assert all(0 < client.ttl(k) <= 3600 for k in keys)

    r = get(system, "/v1/items/NO-SUCH-ITEM/similar")
    assert r.status_code == 404 and "NO-SUCH-ITEM" in r.json()["detail"]


def test_retraining_under_load_swaps_versions_without_failures(system, artifacts, dataset, demo_data):
    item, user = popular_item(dataset), active_user(dataset)
    old = get(system, f"/v1/items/{item}/similar").headers["X-Model-Version"]
    requests: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/items/{item}/similar", {"k": 3}),
        ("/v1/predict", {"user_id": user, "item_id": item}),
    ]
    with Load(system.url(), requests) as load:
        new = train(demo_data, artifacts, parse_components(None), seed=1, progress=False, log=lambda _m: None)
        deadline = time.monotonic() + 30
        while True:
            a = get(system, f"/v1/items/{item}/similar", k=3).headers["X-Model-Version"]
            b = get(system, "/v1/predict", user_id=user, item_id=item).headers["X-Model-Version"]
            if a == b == new:
                break
            assert time.monotonic() < deadline, f"still serving {a}/{b}, expected {new}"
            time.sleep(0.2)
    assert new != old
    assert load.failures == []
    assert {old, new} <= set(load.versions)


def test_a_dead_rating_service_fails_only_its_routes(system, dataset):
    item, user = popular_item(dataset), active_user(dataset)
    system.stop("rating", kill=True)
    r = get(system, "/v1/predict", user_id=user, item_id=item)
    assert r.status_code == 503, r.text
    assert r.json()["type"] and "rating" in r.json()["detail"]
    r = get(system, f"/v1/users/{user}/recommendations")
    assert r.status_code == 503 and "rating" in r.json()["detail"]
    assert get(system, f"/v1/items/{item}/similar", k=4).status_code == 200
    assert get(system, f"/v1/users/{user}/recommendations", method="similar").status_code == 200

    system.start("rating")
    deadline = time.monotonic() + 60
    while get(system, "/v1/predict", user_id=user, item_id=item).status_code != 200:
        assert time.monotonic() < deadline, "the rating routes did not come back"
        time.sleep(0.3)


def test_answers_continue_uncached_when_redis_stops(artifacts, dataset, own_redis, tmp_path):
    proc, port = own_redis
    topo = start_topology(artifacts, f"redis://127.0.0.1:{port}/0", tmp_path / "logs")
    try:
        item = popular_item(dataset)
        assert get(topo, f"/v1/items/{item}/similar").headers["X-Cache"] == "miss"
        assert get(topo, f"/v1/items/{item}/similar").headers["X-Cache"] == "hit"
        proc.kill()
        proc.wait(5)
        for _ in range(3):
            r = get(topo, f"/v1/items/{item}/similar")
            assert r.status_code == 200 and r.headers["X-Cache"] == "bypass"
        assert get(topo, "/readyz").status_code in (200, 503)
    finally:
        topo.stop_all()
