"""Contract tests of the rating service's ranked recommendations over a tiny artifact with a ``ranking`` component:
every method, ``exclude``, unknown users, the basket route and the 422s (TestClient, lifespan included)."""

from __future__ import annotations

import shutil
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient

from chorus.services.rating.app import create_app
from chorus.services.rating.settings import Settings
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.contract.names import MAX_ID_LENGTH, MAX_K, MAX_PAIRS, Method, Ranking
from chorus.shared.data.component import load_data_component
from tests.conftest import add_ranking


@pytest.fixture(scope="module")
def root(ranked_root):
    return ranked_root


@pytest.fixture(scope="module")
def ranking(root) -> dict[str, Any]:
    return cast(
        dict[str, Any], ArtifactStore(root).open(components=["ranking"]).component_meta("ranking")["hyperparameters"]
    )


@pytest.fixture(scope="module")
def kinds(ranking) -> list[str]:
    return list(ranking["rankers"])


@pytest.fixture(scope="module")
def data(root):
    return load_data_component(ArtifactStore(root).open(components=["data"]))


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as c:
        yield c


def users_by_activity(data) -> list[str]:
    counts = np.bincount(data.user, minlength=data.n_users)
    return [str(data.user_ids[u]) for u in np.argsort(-counts, kind="stable")]


def reviewed_by(data, user: str) -> set[str]:
    u = data.user_ids.tolist().index(user)
    return set(data.item_ids[data.item[data.user == u]].tolist())


def popular_items(data, n: int) -> list[str]:
    counts = np.bincount(data.item, minlength=data.n_items)
    return [str(data.item_ids[i]) for i in np.argsort(-counts, kind="stable")[:n]]


def recommend(client, user: str, **params):
    return client.get(f"/v1/users/{user}/recommendations", params=params)


def check_list(body: dict[str, Any], k: int, never: set[str], history: set[str]) -> None:
    """A well-formed ranked list: k items at most, best first, none of ``never``, reasons from ``history``."""
    data = body["data"]
    assert body["count"] == len(data) <= k
    ids = [d["item_id"] for d in data]
    assert len(set(ids)) == len(ids) and not set(ids) & never
    scores = [d["score"] for d in data]
    assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
    assert all(d["title"] for d in data)
    for d in data:
        if d["because"] is not None:
            assert len(d["because"]) <= 3  # empty where no history item contributed positively
            assert {b["item_id"] for b in d["because"]} <= history and all(b["title"] for b in d["because"])


def test_every_ranker_kind_is_a_method():
    from chorus.services.rating.rankers import REGISTRY

    assert set(REGISTRY) <= {r.value for r in Ranking} <= {m.value for m in Method}


def test_the_default_is_the_versions_default_ranker(client, ranking, data):
    user = users_by_activity(data)[0]
    r = recommend(client, user, k=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == user and body["model"] == ranking["default"] and body["fallback"] is None
    assert body["count"] == 10 and body["unknown_exclude"] == []
    assert recommend(client, user, k=10, method=ranking["default"]).json() == body


@pytest.mark.parametrize("rank", [0, 5, 40])
def test_every_method_ranks_unreviewed_items(client, kinds, data, rank):
    user = users_by_activity(data)[rank]
    seen = reviewed_by(data, user)
    for method in [*kinds, "latent"]:
        r = recommend(client, user, k=20, method=method)
        assert r.status_code == 200, (method, r.text)
        body = r.json()
        assert body["model"] == method and body["fallback"] is None, method
        assert body["count"] == 20
        check_list(body, 20, seen, seen)
    popular = recommend(client, user, k=5, method="popular").json()
    assert all(d["because"] is None for d in popular["data"])
    expected = [i for i in popular_items(data, 5 + len(seen)) if i not in seen][:5]
    assert [d["item_id"] for d in popular["data"]] == expected


def test_latent_scores_are_predicted_ratings(client, data):
    user = users_by_activity(data)[0]
    body = recommend(client, user, k=3, method="latent").json()
    for d in body["data"]:
        single = client.get("/v1/predict", params={"user_id": user, "item_id": d["item_id"]}).json()
        assert single["prediction"] == d["score"] and d["because"] is None


def test_excluded_items_are_never_returned_and_unknown_ones_listed(client, kinds, data):
    user = users_by_activity(data)[1]
    seen = reviewed_by(data, user)
    for method in [*kinds, "latent"]:
        first = recommend(client, user, k=5, method=method).json()
        top = [d["item_id"] for d in first["data"]]
        r = recommend(client, user, k=5, method=method, exclude=[*top, "NO-SUCH-ITEM", top[0], "ALSO-NOT"])
        assert r.status_code == 200, r.text
        body = r.json()
        check_list(body, 5, seen | set(top), seen)
        assert body["count"] == 5 and body["unknown_exclude"] == ["NO-SUCH-ITEM", "ALSO-NOT"]
        shuffled = recommend(client, user, k=5, method=method, exclude=["ALSO-NOT", *reversed(top), "NO-SUCH-ITEM"])
        assert [d["item_id"] for d in shuffled.json()["data"]] == [d["item_id"] for d in body["data"]]


def test_an_unknown_user_gets_popular_items_whatever_the_method(client, kinds, data):
    expected = popular_items(data, 6)
    for method in [None, *kinds, "latent"]:
        params = {"k": 5, "exclude": [expected[0]]} | ({"method": method} if method else {})
        r = recommend(client, "nobody-at-all", **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["fallback"] == "popular" and body["count"] == 5
        assert expected[0] not in {d["item_id"] for d in body["data"]}
        if "popular" in kinds:
            assert body["model"] == "popular" and [d["item_id"] for d in body["data"]] == expected[1:]


def test_basket_of_known_and_unknown_items(client, kinds, ranking, data):
    user = users_by_activity(data)[2]
    basket = sorted(reviewed_by(data, user))[:4]
    r = client.post("/v1/recommendations", json={"items": [*basket, "NOPE", basket[0], "NOPE"], "k": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == ranking["default"] and body["fallback"] is None
    assert body["unknown_items"] == ["NOPE"] and body["unknown_exclude"] == []
    check_list(body, 8, set(basket), set(basket))
    assert body["count"] == 8
    for method in kinds:
        r = client.post("/v1/recommendations", json={"items": basket, "k": 8, "method": method, "exclude": ["X"]})
        assert r.status_code == 200, (method, r.text)
        got = r.json()
        assert got["model"] == method and got["unknown_exclude"] == ["X"]
        check_list(got, 8, set(basket), set(basket))
        top = [d["item_id"] for d in got["data"]][:3]
        again = client.post("/v1/recommendations", json={"items": basket, "k": 8, "method": method, "exclude": top})
        check_list(again.json(), 8, set(basket) | set(top), set(basket))


@pytest.mark.parametrize("items", [[], ["NOPE-1", "NOPE-2"]])
def test_a_basket_with_no_known_item_gets_popular_items(client, data, items):
    top = popular_items(data, 4)
    r = client.post("/v1/recommendations", json={"items": items, "k": 3, "exclude": [top[0]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] == "popular" and body["unknown_items"] == items and body["count"] == 3
    assert top[0] not in [d["item_id"] for d in body["data"]]


def test_a_version_serves_only_its_own_rankers(tmp_path, root, data):
    only = tmp_path / "popular-only"
    shutil.copytree(root, only)
    add_ranking(only, kinds=["popular"])
    with TestClient(create_app(Settings(artifacts=only, reload_interval=3600))) as c:
        user = users_by_activity(data)[0]
        assert recommend(c, user).json()["model"] == "popular"
        for method in [r.value for r in Ranking if r != "popular"]:
            r = recommend(c, user, method=method)
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == (
                f"method {method!r} is not served by version {ArtifactStore(only).current()}: "
                "choose one of popular, latent"
            )
            r = c.post("/v1/recommendations", json={"items": ["x"], "method": method})
            assert r.status_code == 422 and "choose one of popular" in r.json()["detail"]


def test_an_altered_ranking_file_is_refused(tmp_path, root):
    bad = tmp_path / "altered"
    shutil.copytree(root, bad)
    version = ArtifactStore(bad).current()
    files = ArtifactStore(bad).open(components=[]).component_meta("ranking")["files"]
    path = bad / version / next(iter(files.values()))["path"]
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    older = [v for v in ArtifactStore(bad).versions() if v != version]
    with TestClient(create_app(Settings(artifacts=bad, reload_interval=3600, status_token="t"))) as c:
        r = c.get("/readyz", headers={"Authorization": "Bearer t"})
        assert "ranking" in r.json()["detail"] and f"version {version} refused" in r.json()["detail"]
        if older:  # a start on a refused CURRENT serves the newest version that passes, and says so
            assert r.status_code == 200 and r.json()["fallback"] and r.json()["version"] == older[-1]
        else:
            assert r.status_code == 503


@pytest.mark.parametrize(
    "method,path,kwargs,needle",
    [
        ("get", "/v1/users/u/recommendations", {"params": {"method": "magic"}}, "method"),
        ("get", "/v1/users/u/recommendations", {"params": {"method": "similar"}}, "Input should be 'ease'"),
        ("get", "/v1/users/u/recommendations", {"params": {"exclude": ""}}, "exclude"),
        ("get", "/v1/users/u/recommendations", {"params": {"exclude": ["x" * (MAX_ID_LENGTH + 1)]}}, "exclude"),
        ("get", "/v1/users/u/recommendations", {"params": {"exclude": ["x"] * (MAX_K + 1)}}, "exclude"),
        ("post", "/v1/recommendations", {"json": {"items": ["a"], "method": "latent"}}, "or 'rp3beta'"),
        ("post", "/v1/recommendations", {"json": {"items": ["a"], "method": "similar"}}, "Input should be 'ease'"),
        ("post", "/v1/recommendations", {"json": {"items": ["a"], "k": 0}}, "k"),
        ("post", "/v1/recommendations", {"json": {"items": ["a"], "k": MAX_K + 1}}, "k"),
        ("post", "/v1/recommendations", {"json": {"items": [""]}}, "items"),
        ("post", "/v1/recommendations", {"json": {"items": ["a"] * (MAX_PAIRS + 1)}}, "items"),
        ("post", "/v1/recommendations", {"json": {"items": ["a"], "exclude": ["b"] * (MAX_K + 1)}}, "exclude"),
        ("post", "/v1/recommendations", {"json": {"item": ["a"]}}, "item"),
        ("post", "/v1/recommendations", {"json": {"items": "a"}}, "items"),
    ],
)
def test_bad_input_is_422_with_a_clear_message(client, method, path, kwargs, needle):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "invalid_input" and needle in r.json()["detail"]
