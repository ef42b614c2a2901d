"""Contract tests of live events in the rating service: a real event store on both backends (``store_url``), a tiny
version with every ranker, and the app through ``TestClient(create_app(settings))``.

Each answer about a user is checked against a reference computed here from the merged history (the version's rows
with the rows of the events laid over them): each ranker scoring that row directly, EASE from ``x_u B``, iALS from
implicit's own ``recalculate_user`` on the same item factors, and the rating model's fold-in from a least-squares
solve of its objective written out below."""

from __future__ import annotations

import shutil
from typing import Any, cast

import numpy as np
import pytest
import scipy.sparse as sp
import sqlalchemy as sa
from fastapi.testclient import TestClient
from implicit.cpu.als import AlternatingLeastSquares

from chorus.services.rating.app import create_app
from chorus.services.rating.models import LatentModel
from chorus.services.rating.rankers import EaseRanker, IalsRanker
from chorus.services.rating.rankers.base import history_row
from chorus.services.rating.service import RatingService, load_service
from chorus.services.rating.settings import Settings
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.events.rows import CUTOFF_KEY
from chorus.shared.events.store import EventStore, new_event

K = 30
GHOST = "never-seen-user"
TOKEN = "live-token"


@pytest.fixture(scope="module")
def root(ranked_root):
    return ranked_root


@pytest.fixture(scope="module")
def served(root) -> RatingService:
    """The served version's own objects, for the references."""
    return load_service(ArtifactStore(root).open())


@pytest.fixture(scope="module")
def hyper(root) -> dict[str, Any]:
    """What the served version records of its rating model's hyperparameters."""
    meta: dict[str, Any] = ArtifactStore(root).open(components=["rating"]).component_meta("rating")
    return cast(dict[str, Any], meta["hyperparameters"])


@pytest.fixture
def store(store_url):
    store = EventStore(store_url)
    yield store
    store.close()


def app_for(root, events_url: str | None) -> TestClient:
    return TestClient(
        create_app(Settings(artifacts=root, reload_interval=3600, events_url=events_url, status_token=TOKEN))
    )


@pytest.fixture
def client(root, store_url):
    with app_for(root, store_url) as c:
        yield c


# -- helpers --------------------------------------------------------------------------------------------------


def append(store: EventStore, user: str, *events: tuple[Any, ...]) -> None:
    """Store ``(item, kind[, rating])`` events of ``user``, in order."""
    store.append([new_event(user, e[0], e[1], rating=e[2] if len(e) > 2 else None, timestamp=1.0) for e in events])


def known_user(svc: RatingService, rank: int = 0) -> str:
    """A user the rating model was trained on, by activity (``rank`` 0: the busiest)."""
    counts = np.diff(svc.reviews.indptr) * (svc.model.user_count > 0)
    return str(svc.catalog.user_ids[np.argsort(-counts, kind="stable")[rank]])


def version_rows(svc: RatingService, user: str) -> dict[int, float]:
    u = int(svc.catalog.user_indices([user])[0])
    if u < 0:
        return {}
    m = svc.reviews
    lo, hi = m.indptr[u], m.indptr[u + 1]
    return dict(zip(m.indices[lo:hi].tolist(), m.data[lo:hi].astype(float).tolist(), strict=True))


def unreviewed(svc: RatingService, user: str, n: int) -> list[int]:
    """``n`` items with training reviews that ``user`` never reviewed, most reviewed first."""
    seen = version_rows(svc, user)
    order = np.argsort(-svc.model.item_count, kind="stable")
    return [int(i) for i in order if int(i) not in seen][:n]


def ids(svc: RatingService, items) -> list[str]:
    return [str(svc.catalog.item_ids[i]) for i in items]


def recommend(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": K, **params})
    assert r.status_code == 200, r.text
    return cast(dict[str, Any], r.json())


def row_of(svc: RatingService, rows: dict[int, float]):
    items = np.array(sorted(rows), dtype=np.int64)
    return history_row(items, np.array([rows[i] for i in items.tolist()]), svc.catalog.n_items)


def check_ranked(svc: RatingService, kind: str, body: dict[str, Any], rows: dict[int, float], acted: set[int]) -> None:
    """The answer of ranker ``kind`` is the ranker's own list for the merged history ``rows``, acted-on items
    excluded: the same items, scores and reasons."""
    ranker = svc.rankers[kind]
    ranked = ranker.recommend(row_of(svc, rows), K, exclude=np.array(sorted(acted), dtype=np.int64))
    assert body["model"] == kind and body["fallback"] is None
    assert [d["item_id"] for d in body["data"]] == ids(svc, ranked.items)
    np.testing.assert_allclose([d["score"] for d in body["data"]], ranked.scores, rtol=1e-5, atol=1e-9)
    because = ranked.because.tolist() if ranked.because is not None else [None] * len(ranked.items)
    for d, why in zip(body["data"], because, strict=True):
        assert (d["because"] is None) == (why is None)
        if why is not None:
            assert [b["item_id"] for b in d["because"]] == ids(svc, [j for j in why if j >= 0])


def top(scores: np.ndarray, banned: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best allowed items, ties to the lower index, written out."""
    allowed = np.flatnonzero(~banned)
    return allowed[np.lexsort((allowed, -scores[allowed]))][:k]


def ease_reference(svc: RatingService, rows: dict[int, float], acted: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """EASE from its formula: ``x_u B`` with ``x_u`` the binary merged history."""
    ranker = svc.rankers["ease"]
    assert isinstance(ranker, EaseRanker)
    x = np.zeros(svc.catalog.n_items)
    x[list(rows)] = 1.0
    scores = x @ ranker.weights.astype(np.float64)
    banned = ranker.item_count == 0
    banned[list(rows)] = True
    banned[list(acted)] = True
    best = top(scores, banned, K)
    return best, scores[best]


def implicit_factors(svc: RatingService, rows: dict[int, float]) -> np.ndarray:
    """The user's factors refitted by implicit's own solver on the served item factors: ``recalculate_user`` on
    the confidences ``c = 1 + α·v`` of the merged history."""
    ranker = svc.rankers["ials"]
    assert isinstance(ranker, IalsRanker)
    params = ranker.params
    model = AlternatingLeastSquares(
        factors=ranker.item_factors.shape[1], regularization=float(params["regularization"]), alpha=1.0
    )
    model.item_factors = np.array(
        ranker.item_factors, dtype=np.float32
    )  # a writable copy: implicit's solver asks for one
    row = row_of(svc, rows)
    values = row.data if params.get("values") == "rating" else np.ones_like(row.data)
    conf = row.copy()
    conf.data = 1.0 + float(params["alpha"]) * values
    return np.asarray(model.recalculate_user(0, sp.csr_matrix(conf, dtype=np.float32)), dtype=np.float64)


#: Tolerance of iALS against implicit: implicit solves in float32 (the fold-in in float64), so factors agree to
#: about three significant digits, as tests/rating/test_rankers.py measures on training users.
IALS_RTOL, IALS_ATOL = 2e-3, 2e-4


def check_ials(svc: RatingService, body: dict[str, Any], rows: dict[int, float]) -> None:
    ranker = svc.rankers["ials"]
    assert isinstance(ranker, IalsRanker)
    theirs = implicit_factors(svc, rows)
    np.testing.assert_allclose(ranker.fold_in(row_of(svc, rows))[0], theirs, rtol=IALS_RTOL, atol=IALS_ATOL)
    items = svc.catalog.item_indices([d["item_id"] for d in body["data"]])
    expected = ranker.item_factors.astype(np.float64)[items] @ theirs
    np.testing.assert_allclose([d["score"] for d in body["data"]], expected, rtol=IALS_RTOL, atol=IALS_ATOL)


def fold_reference(svc: RatingService, hyper: dict[str, Any], rows: dict[int, float]) -> np.ndarray:
    """Every item's unclipped f(u, i) for a new user folded in from ``rows``, written from the objective: the
    ridge regression of ``r − α − β_i`` on ``[1, γ_i]`` with the penalties ``λ(n + c)`` the version records,
    solved as one least-squares problem."""
    model = svc.model
    assert isinstance(model, LatentModel)
    assert hyper["kind"] == "latent" and hyper["weighting"] == "count"
    items = np.array([i for i in sorted(rows) if model.item_count[i] > 0])
    n = items.shape[0]
    rb = hyper["reg_bias"] * (n + hyper["smoothing_bias"])
    rf = hyper["reg_factors"] * (n + hyper["smoothing_factors"])
    q = model.item_factors.astype(np.float64)
    k = q.shape[1]
    design = np.vstack([np.hstack([np.ones((n, 1)), q[items]]), np.diag(np.sqrt([rb] + [rf] * k))])
    y = np.array([rows[i] for i in items.tolist()]) - model.global_mean - model.item_bias[items].astype(np.float64)
    z = np.linalg.lstsq(design, np.concatenate([y, np.zeros(1 + k)]), rcond=None)[0]
    scores: np.ndarray = model.global_mean + z[0] + model.item_bias.astype(np.float64) + q @ z[1:]
    return scores


# -- folding the events in ------------------------------------------------------------------------------------


def test_every_ranker_scores_the_versions_rows_with_the_events_laid_over_them(root, client, store, served):
    user = known_user(served, 3)
    rows = version_rows(served, user)
    rerated = min(rows)
    new, bought, viewed = unreviewed(served, user, 3)
    append(
        store,
        user,
        (ids(served, [new])[0], "rating", 5.0),
        (ids(served, [rerated])[0], "rating", 1.0),
        (ids(served, [bought])[0], "purchase"),
        (ids(served, [viewed])[0], "view"),
        ("not-in-the-catalog", "rating", 4.0),
    )
    merged = rows | {new: 5.0, rerated: 1.0, bought: 3.0}  # a purchase is the middle of the 1..5 scale
    acted = {new, rerated, bought, viewed}
    assert set(served.rankers) == {"popular", "item_knn", "rp3beta", "ease", "ials", "ease_ials"}
    for kind in served.rankers:
        body = recommend(client, user, method=kind)
        check_ranked(served, kind, body, merged, acted)
        assert not {d["item_id"] for d in body["data"]} & set(ids(served, acted | set(rows)))
        if kind == "ease":
            items, scores = ease_reference(served, merged, acted)
            assert [d["item_id"] for d in body["data"]] == ids(served, items)
            np.testing.assert_allclose([d["score"] for d in body["data"]], scores, rtol=1e-5, atol=1e-7)
        if kind == "ials":
            check_ials(served, body, merged)
    # the events did change the answer
    with app_for(root, None) as plain:
        assert recommend(client, user, method="ease") != recommend(plain, user, method="ease")


def test_items_acted_on_are_never_recommended_views_included(client, store, served):
    user = known_user(served, 10)
    for method in [*served.rankers, "latent"]:
        before = [d["item_id"] for d in recommend(client, user, method=method)["data"]][:2]
        append(store, user, *[(item, "view") for item in before])
        after = [d["item_id"] for d in recommend(client, user, method=method)["data"]]
        assert before and not set(before) & set(after), method
    # a user with views only has no history: the popular list, without the viewed items
    append(store, "only-views", (ids(served, [0])[0], "view"))
    body = recommend(client, "only-views")
    assert body["fallback"] == "popular" and ids(served, [0])[0] not in {d["item_id"] for d in body["data"]}


def test_forgetting_a_user_makes_them_unknown_at_once(client, store, served):
    user = known_user(served, 1)
    item = ids(served, [0])[0]
    assert recommend(client, user)["fallback"] is None
    store.forget(user, timestamp=2.0)
    for method in [*served.rankers, "latent"]:
        body, ghost = recommend(client, user, method=method), recommend(client, GHOST, method=method)
        assert body["fallback"] == "popular" and body["data"] == ghost["data"], method
    prediction = client.get("/v1/predict", params={"user_id": user, "item_id": item}).json()
    ghost = client.get("/v1/predict", params={"user_id": GHOST, "item_id": item}).json()
    assert prediction["fallback"] == "item_bias" and prediction["prediction"] == ghost["prediction"]
    # what they do after the tombstone is their whole history
    liked = unreviewed(served, GHOST, 1)[0]
    append(store, user, (ids(served, [liked])[0], "rating", 5.0))
    check_ranked(served, "item_knn", recommend(client, user, method="item_knn"), {liked: 5.0}, {liked})


def test_a_new_user_with_live_ratings_gets_personal_lists_and_folded_in_predictions(client, store, served, hyper):
    user = "newcomer"
    picks = unreviewed(served, GHOST, 8)
    rated = dict(zip(picks[:6], [5.0, 4.0, 1.0, 2.0, 5.0, 3.0], strict=True))
    viewed = picks[6]
    append(
        store, user, *[(ids(served, [i])[0], "rating", r) for i, r in rated.items()], (ids(served, [viewed])[0], "view")
    )
    acted = set(rated) | {viewed}
    for kind in served.rankers:
        check_ranked(served, kind, recommend(client, user, method=kind), rated, acted)
    check_ials(served, recommend(client, user, method="ials"), rated)

    f = fold_reference(served, hyper, rated)
    low, high = served.model.low, served.model.high
    latent = recommend(client, user, method="latent")
    banned = served.model.item_count == 0
    banned[list(acted)] = True
    best = top(f, banned, K)
    assert latent["fallback"] is None and [d["item_id"] for d in latent["data"]] == ids(served, best)
    np.testing.assert_allclose([d["score"] for d in latent["data"]], np.clip(f[best], low, high), atol=6e-5)
    other = picks[7]
    single = client.get("/v1/predict", params={"user_id": user, "item_id": ids(served, [other])[0]}).json()
    assert single["fallback"] is None and single["prediction"] == pytest.approx(np.clip(f[other], low, high), abs=6e-5)
    unknown_item = client.get("/v1/predict", params={"user_id": user, "item_id": "no-such-item"}).json()
    assert unknown_item["fallback"] == "user_bias"
    # the batch route folds in the same way, pair by pair
    pairs = [(user, ids(served, [other])[0]), (known_user(served), ids(served, [other])[0]), (GHOST, "no-such-item")]
    pairs += [(user, "no-such-item")]
    r = client.post("/v1/predict", json={"pairs": [{"user_id": u, "item_id": i} for u, i in pairs]})
    assert r.status_code == 200, r.text
    for d in r.json()["data"]:
        assert client.get("/v1/predict", params={"user_id": d["user_id"], "item_id": d["item_id"]}).json() == d


def test_replicas_answer_from_the_same_store(root, store_url, store, served):
    with app_for(root, store_url) as a, app_for(root, store_url) as b:
        item = ids(served, unreviewed(served, GHOST, 1))[0]
        assert recommend(a, "shared-user")["fallback"] == recommend(b, "shared-user")["fallback"] == "popular"
        append(store, "shared-user", (item, "rating", 5.0))
        first, second = recommend(a, "shared-user"), recommend(b, "shared-user")
        assert first == second and first["fallback"] is None


# -- the version's cutoff -------------------------------------------------------------------------------------


def publish(root, cutoff: int) -> str:
    """A new current version of ``root``: the current one's components, trained (as its manifest says) on the
    events up to ``cutoff``."""
    previous = ArtifactStore(root).open()
    with VersionWriter(root) as writer:
        dataset = previous.manifest.get("dataset", {})
        writer.set_dataset(dataset.get("fingerprint", {}), dataset.get("stats", {}))
        for component in previous.components:
            writer.adopt_component(previous, component)
        writer.manifest[CUTOFF_KEY] = cutoff
        return writer.commit()


def test_events_up_to_the_versions_cutoff_are_not_counted_again(root, tmp_path, store_url, store, served):
    own = tmp_path / "artifacts"
    shutil.copytree(root, own)
    first, second = unreviewed(served, GHOST, 2)
    append(store, "cut-user", (ids(served, [first])[0], "rating", 5.0))
    publish(own, store.last_seq())  # the first event is in this version's arrays
    append(store, "cut-user", (ids(served, [second])[0], "rating", 4.0))
    with app_for(own, store_url) as c:
        check_ranked(served, "item_knn", recommend(c, "cut-user", method="item_knn"), {second: 4.0}, {second})
        # a hot swap to a version trained on both events: neither is live any more
        newer = publish(own, store.last_seq())
        assert app_state(c).holder.refresh()
        r = c.get("/v1/users/cut-user/recommendations", params={"method": "item_knn"})
        assert r.headers["X-Model-Version"] == newer and r.json()["fallback"] == "popular"


# -- the store down -------------------------------------------------------------------------------------------


def assert_personal_routes_fail(c: TestClient, served: RatingService) -> None:
    item = ids(served, [0])[0]
    answers = [
        c.get(f"/v1/users/{known_user(served)}/recommendations"),
        c.get("/v1/predict", params={"user_id": GHOST, "item_id": item}),
        c.post("/v1/predict", json={"pairs": [{"user_id": GHOST, "item_id": item}]}),
    ]
    for r in answers:
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["type"] == "events_unavailable" and "event store" in body["detail"]
    basket = c.post("/v1/recommendations", json={"items": [item], "k": 5})
    assert basket.status_code == 200 and basket.json()["count"] == 5
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["events"] == {"status": "unavailable"}
    detailed = c.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).json()["events"]
    assert detailed["status"] == "unavailable" and "cannot be used" in detailed["detail"]


def test_a_store_that_goes_away_fails_personal_answers_with_503_and_recovers(root, store_url, store, served):
    with app_for(root, store_url) as c:
        assert c.get("/readyz").json()["events"] == {"status": "ok"}
        assert recommend(c, known_user(served))["fallback"] is None
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE chorus_events RENAME TO chorus_events_away"))
        try:
            assert_personal_routes_fail(c, served)
        finally:
            with store.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE chorus_events_away RENAME TO chorus_events"))
        assert recommend(c, known_user(served))["fallback"] is None
        assert c.get("/readyz").json()["events"] == {"status": "ok"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_unreachable_at_start_keeps_the_other_routes_up(root, tmp_path, served, backend):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    url = {
        "sqlite": f"sqlite:///{blocker}/events.db",
        "postgresql": "postgresql://chorus:secret@127.0.0.1:1/none?connect_timeout=2",
    }[backend]
    with app_for(root, url) as c:
        assert_personal_routes_fail(c, served)
        detail = c.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).json()["events"]
        assert "secret" not in detail["url"] and "secret" not in detail["detail"]


def test_a_url_that_names_no_event_store_stops_the_start(root):
    with pytest.raises(InvalidInput, match="SQLite or PostgreSQL"), app_for(root, "mysql://db/events"):
        pass


def test_without_a_store_readiness_says_so_and_answers_are_the_versions(root, served):
    with app_for(root, None) as c:
        assert c.get("/readyz").json()["events"] == {"status": "off"}
        user = known_user(served)
        rows = version_rows(served, user)
        check_ranked(served, "ease", recommend(c, user, method="ease"), rows, set())


def app_state(client: TestClient) -> Any:
    """The state of the app a test client drives (Starlette types ``client.app`` as a bare ASGI callable)."""
    return cast(Any, client.app).state
