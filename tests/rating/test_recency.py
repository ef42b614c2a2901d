"""Recency: a live history's items weighted by ``decay ** age``, the weighted scores of the rankers, the decay a
version records and serves, and its choice on a time-ordered replay (``chorus.training.ranking.recency``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from chorus.services.rating.live import merge_history
from chorus.services.rating.rankers import EaseIalsRanker, EaseRanker
from chorus.services.rating.rankers.base import history_row
from chorus.services.rating.rankers.persistence import load_live, write_rankers
from chorus.services.rating.service import load_service
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.data import load_ratings
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.data.synthetic import generate_reviews
from chorus.shared.events.store import Event, EventStore, Live, new_event
from chorus.training.ranking import recency
from chorus.training.ranking.fit import fit_ease, fit_ease_ials, fit_ials, fit_item_knn, fit_popular
from chorus.training.ranking.train import select
from tests.conftest import add_ranking
from tests.rating.ranker_contract import contract_reviews

ALS = {"factors": 4, "regularization": 0.1, "alpha": 2.0, "iterations": 5, "values": "binary"}


def test_weighted_scores_are_the_weighted_sums_of_the_history_items():
    reviews = contract_reviews()
    row = sp.csr_array(reviews[[0]])
    held = row.indices
    w = np.linspace(1.0, 0.3, held.shape[0])
    ease = fit_ease(reviews, {"lam": 5.0})
    np.testing.assert_allclose(ease.score_weighted(row, w)[0], w @ ease.weights[held], rtol=1e-5, atol=1e-6)
    knn = fit_item_knn(reviews, {"neighbours": 5, "shrink": 1.0, "values": "binary", "normalise": "none"})
    dense = knn.similarity.toarray()
    np.testing.assert_allclose(knn.score_weighted(row, w)[0], w @ dense[held], rtol=1e-5, atol=1e-6)
    # rankers that are no sum over the history ignore the weights; the blend weights its EASE part only
    for plain in (fit_popular(reviews, {}), fit_ials(reviews, ALS)):
        np.testing.assert_array_equal(plain.score_weighted(row, w), plain.score(row))
    blend = fit_ease_ials(reviews, {**ALS, "lam": 5.0, "dropout": 0.0, "w": 0.5})
    assert isinstance(blend, EaseIalsRanker)
    allowed = (blend.item_count > 0) & ~np.isin(np.arange(blend.n_items), held)
    parts = [np.asarray(ease.score_weighted(row, w), dtype=np.float64)[0], fit_ials(reviews, ALS).score(row)[0]]
    z = [(p - p[allowed].mean()) / p[allowed].std() for p in parts]
    np.testing.assert_allclose(blend.score_weighted(row, w)[0], 0.5 * z[0] + 0.5 * z[1], rtol=1e-6, atol=1e-9)
    # the lists and the reasons follow the weighted terms
    ranked = ease.recommend(row, 5, weights=w)
    scores = np.asarray(ease.score_weighted(row, w), dtype=np.float64)[0]
    np.testing.assert_allclose(ranked.scores, scores[ranked.items], rtol=1e-6)
    assert ranked.because is not None
    terms = w[None, :] * ease.weights[np.ix_(held, ranked.items)].T
    assert ranked.because[0, 0] == held[np.argmax(terms[0])]
    for bad in (w[:-1], -w, np.full_like(w, np.nan)):
        with pytest.raises(InvalidInput, match="history weights"):
            ease.recommend(row, 5, weights=bad)


def event(seq: int, item: str, kind: str, rating: float | None, timestamp: float) -> Event:
    return Event(
        seq=seq,
        event_id=f"e{seq}",
        user_id="u",
        item_id=item,
        kind=kind,
        rating=rating,
        text=None,
        timestamp=timestamp,
    )


def test_a_live_history_ages_by_event_time_and_the_version_rows_are_older():
    catalog = {f"i{n}": n for n in range(10)}
    index = lambda ids: np.array([catalog.get(i, -1) for i in ids], dtype=np.int64)  # noqa: E731
    live = Live(
        forgotten=False,
        events=[
            event(1, "i7", "rating", 4.0, 100.0),
            event(2, "i3", "rating", 2.0, 50.0),  # arrived later, happened earlier
            event(3, "i9", "view", None, 300.0),  # a view makes no row
            event(4, "i2", "purchase", None, 150.0),
            event(5, "nowhere", "rating", 5.0, 400.0),  # not in the catalog
        ],
    )
    h = merge_history(4, np.array([1, 3, 5]), np.array([5.0, 5.0, 1.0]), live, index, 3.0)
    assert h.items.tolist() == [1, 2, 3, 5, 7] and h.live_rows == 3
    assert dict(zip(h.items.tolist(), h.ages.tolist(), strict=True)) == {1: 3, 2: 0, 3: 2, 5: 3, 7: 1}
    weights = h.recency(0.5)
    assert weights is not None
    np.testing.assert_allclose(weights, [0.125, 1.0, 0.25, 0.125, 0.5])
    assert h.recency(1.0) is None
    plain = merge_history(4, np.array([1, 3]), np.array([5.0, 5.0]), None, index, 3.0)
    assert plain.ages.tolist() == [0, 0] and plain.recency(0.5) is None


def test_a_version_with_a_decay_weights_the_live_history(ranked_root, tmp_path, store_url):
    root = tmp_path / "root"
    shutil.copytree(ranked_root, root)
    add_ranking(root, default="popular", kinds=["popular", "ease"], recency=0.5, live_default="ease")
    svc = load_service(ArtifactStore(root).open())
    assert svc.recency == 0.5 and svc.live_default == "ease" and svc.default == "popular"
    store = EventStore(store_url)
    try:
        user = str(svc.catalog.user_ids[0])
        u = 0
        lo, hi = svc.reviews.indptr[u], svc.reviews.indptr[u + 1]
        version = dict(zip(svc.reviews.indices[lo:hi].tolist(), svc.reviews.data[lo:hi].tolist(), strict=True))
        fresh = [int(i) for i in np.argsort(-svc.model.item_count, kind="stable") if int(i) not in version][:2]
        first, second = (str(svc.catalog.item_ids[i]) for i in fresh)
        store.append([new_event(user, first, "rating", rating=5.0, timestamp=10.0)])
        store.append([new_event(user, second, "rating", rating=4.0, timestamp=20.0)])
        live = store.live(user, svc.cutoff)
        got = svc.recommend_user(user, 10, None, [], live)  # a user with live rows: the live default
        assert got.model == "ease"
        rows = version | {fresh[0]: 5.0, fresh[1]: 4.0}
        items = np.array(sorted(rows), dtype=np.int64)
        ages = {i: 2 for i in version} | {fresh[0]: 1, fresh[1]: 0}
        ranker = svc.rankers["ease"]
        assert isinstance(ranker, EaseRanker)
        want = ranker.recommend(
            history_row(items, np.array([rows[i] for i in items.tolist()]), svc.catalog.n_items),
            10,
            exclude=np.array(fresh),
            weights=np.array([0.5 ** ages[i] for i in items.tolist()]),
        )
        assert got.items.tolist() == want.items.tolist()
        np.testing.assert_allclose(got.scores, want.scores)
        # without live events nothing is weighted: the version's answer, its default when none is named
        assert svc.recommend_user(user, 10, None, [], None).model == "popular"
        plain = svc.recommend_user(user, 10, "ease", [], None)
        version_items = np.array(sorted(version), dtype=np.int64)
        unweighted = ranker.recommend(
            history_row(version_items, np.array([version[i] for i in version_items.tolist()]), svc.catalog.n_items), 10
        )
        assert plain.items.tolist() == unweighted.items.tolist()
    finally:
        store.close()


def test_a_decay_outside_0_1_is_refused(ranked_root, tmp_path):
    ranker = fit_popular(contract_reviews(), {})
    with VersionWriter(tmp_path) as writer:
        for bad in (0.0, 1.5, float("nan"), True):
            with pytest.raises(InvalidInput, match="recency decay"):
                write_rankers(writer, {"popular": ranker}, "popular", recency=bad)
        with pytest.raises(InvalidInput, match="'ease' is not among"):
            write_rankers(writer, {"popular": ranker}, "popular", live_default="ease")
    root = tmp_path / "root"
    shutil.copytree(ranked_root, root)
    name = add_ranking(root, kinds=["popular"])
    manifest = root / name / "manifest.json"
    import json

    data = json.loads(manifest.read_text())
    live = data["components"]["ranking"]["hyperparameters"]["live"]
    assert live == {"default": "popular", "recency": 1.0}
    for field, value, message in (("recency", 2.0, "recency decay"), ("default", "ease", "no ranker of it")):
        data["components"]["ranking"]["hyperparameters"]["live"] = live | {field: value}
        manifest.write_text(json.dumps(data))
        with pytest.raises(ArtifactError, match=message):
            load_live(ArtifactStore(root).open(name, components=["ranking"], verify=False))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = generate_reviews(tmp_path_factory.mktemp("recency") / "reviews.tsv", 4000, seed=5, progress=False)
    return load_ratings(path, progress=False)


def test_the_live_choice_is_the_best_of_a_direct_time_ordered_replay(generated):
    r = generated
    selection = select(r.user, r.item, r.rating.astype(np.float64), r.n_users, r.n_items, kinds=["popular", "ease"])
    got = recency.choose_live(r, selection, "ease", k=10)
    assert got == recency.choose_live(r, selection, "ease", k=10, workers=2) | {"seconds": got["seconds"]}
    # the replay written out: each streamed event (item known to the fit rows) in time order, scored with the
    # user's history just before it, every item of it as old as the streamed rows after it
    order = np.argsort(r.timestamp, kind="stable")
    cut = int(recency.FIT_SHARE * r.n)
    fit, stream = order[:cut], order[cut:]
    x = user_item_matrix(r.user[fit], r.item[fit], r.n_users, r.n_items, values=r.rating[fit])
    rankers = {"ease": fit_ease(x, selection.kinds["ease"].params), "popular": fit_popular(x, {})}
    known = np.bincount(r.item[fit], minlength=r.n_items) > 0
    before: dict[int, list[int]] = {}
    hits = {(kind, d): 0 for kind in rankers for d in recency.DECAYS}
    events = 0
    for row in stream:
        u, i = int(r.user[row]), int(r.item[row])
        if known[i]:
            later = before.get(u, [])
            age = {int(j): len(later) for j in x.indices[x.indptr[u] : x.indptr[u + 1]]}
            for n, j in enumerate(later):
                age[j] = len(later) - 1 - n
            items = np.array(sorted(age), dtype=np.int64)
            h = history_row(items, None, r.n_items)
            for kind, ranker in rankers.items():
                for d in recency.DECAYS:
                    weights = np.array([d ** age[j] for j in items.tolist()]) if age else None
                    hits[kind, d] += int(i in ranker.recommend(h, 10, weights=weights).items.tolist())
            events += 1
        before.setdefault(u, []).append(i)
    assert events == got["events"] and events <= recency.EVENTS
    for (kind, d), n in hits.items():
        assert got["hit_rate"][kind][str(d)] == pytest.approx(n / events, abs=1e-12), (kind, d)
    # the best pair, ties to the default kind and then to the earlier decay
    pairs = [(kind, d) for kind in ("ease", "popular") for d in recency.DECAYS]
    assert (got["method"], got["decay"]) == max(pairs, key=lambda p: (hits[p], -pairs.index(p)))


def test_without_a_stream_the_default_serves_live_users_unweighted(generated, monkeypatch):
    monkeypatch.setattr(recency, "FIT_SHARE", 1.0)
    selection = select(
        generated.user,
        generated.item,
        generated.rating.astype(np.float64),
        generated.n_users,
        generated.n_items,
        kinds=["popular", "ease"],
    )
    got = recency.choose_live(generated, selection, "ease")
    assert (got["method"], got["decay"], got["events"], got["hit_rate"]) == ("ease", 1.0, 0, {})
