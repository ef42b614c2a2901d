"""Ranker selection, the ranking component and the ranking evaluation: validation only, the best point and kind
win, refit on all rows, and figures that match a direct computation with ``chorus.training.ranking.metrics``."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from chorus.services.rating.rankers import REGISTRY, EaseIalsRanker, EaseRanker, IalsRanker, Ranker
from chorus.services.rating.rankers.base import top_items
from chorus.services.rating.rankers.persistence import load_live, load_rankers
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import load_ratings
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.data.splits import user_holdout_split, user_validation_split
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.ranking import fit as ranking_fit
from chorus.training.ranking.fit import item_counts
from chorus.training.ranking.metrics import evaluate_rankings, ndcg_at_k, top_k
from chorus.training.ranking.recency import DECAYS, LIVE_KINDS
from chorus.training.ranking.train import (
    evaluate,
    fit_points,
    parse_relevance,
    plan,
    recommend_lists,
    relevance_name,
    select,
    top_lists,
    train_component,
)


@dataclass(eq=False)
class SignedPopular(Ranker):
    """Test ranker: ``sign · item_count``, so sign +1 is most popular and sign -1 least popular first."""

    kind: ClassVar[str] = "signed"

    def score(self, history: sp.csr_array) -> np.ndarray:
        sign = float(self.params["sign"])
        return np.broadcast_to(sign * self.item_count.astype(np.float64), (history.shape[0], self.n_items))


def fit_signed(reviews: sp.csr_array, params: dict[str, Any]) -> SignedPopular:
    return SignedPopular(item_count=item_counts(reviews), params=dict(params))


def fit_refused(reviews: sp.csr_array, params: dict[str, Any]) -> Ranker:
    raise InvalidInput(f"catalogue of {reviews.shape[1]} items is over this ranker's limit")


@pytest.fixture
def test_kinds(monkeypatch):
    """Two extra kinds: ``signed`` (grid: least popular, then most popular) and ``refused`` (always refuses)."""
    monkeypatch.setitem(ranking_fit.FITTERS, "signed", fit_signed)
    monkeypatch.setitem(ranking_fit.GRIDS, "signed", [{"sign": -1}, {"sign": 1}])
    monkeypatch.setitem(ranking_fit.FITTERS, "refused", fit_refused)
    monkeypatch.setitem(ranking_fit.GRIDS, "refused", [{}])
    monkeypatch.setitem(REGISTRY, "signed", SignedPopular)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """4,000 generated reviews (about 660 users, 160 items), loaded."""
    path = generate_reviews(tmp_path_factory.mktemp("ranking") / "reviews.tsv", 4000, seed=3, progress=False)
    return path, load_ratings(path, progress=False)


def arrays(r):
    return r.user, r.item, r.rating.astype(np.float64), r.n_users, r.n_items


def direct_popular_lists(user, item, rows, n_users, n_items, users, k):
    """Most-popular lists straight from the protocol: candidates are items with a review among ``rows`` that
    the user has not reviewed there, by review count descending, ties to the lower index."""
    counts = np.bincount(item[rows], minlength=n_items)
    seen = np.zeros((n_users, n_items), dtype=bool)
    seen[user[rows], item[rows]] = True
    allowed = (counts > 0)[None, :] & ~seen[users]
    scores = np.broadcast_to(counts.astype(np.float64), allowed.shape)
    return top_k(scores, k, allowed), counts


def test_relevance_parsing():
    assert parse_relevance("any") is None and parse_relevance(None) is None
    assert parse_relevance("min_rating=4") == 4.0 and parse_relevance(3.5) == 3.5
    assert relevance_name(None) == "any" and relevance_name(4.0) == "min_rating=4"
    for bad in ("all", "min_rating=", "min_rating=four", "min_rating=nan", "4"):
        with pytest.raises(InvalidInput, match="relevance must be"):
            parse_relevance(bad)


def test_recommend_lists_in_blocks_equal_one_batch(generated, monkeypatch):
    _, r = generated
    history = user_item_matrix(r.user, r.item, r.n_users, r.n_items, values=r.rating)
    ranker = fit_signed(history, {"sign": 1})
    users = np.arange(0, r.n_users, 3)
    whole = ranker.recommend_batch(sp.csr_array(history[users]), 7)
    monkeypatch.setattr("chorus.training.ranking.train.SCORE_CELLS", 5 * r.n_items)  # 5 rows a block
    assert np.array_equal(recommend_lists(ranker, history, users, 7), whole)


def test_selection_scores_every_grid_point_and_picks_the_best(generated, test_kinds, caplog):
    _, r = generated
    user, item, rating, nu, ni = arrays(r)
    with caplog.at_level(logging.WARNING, logger="chorus.training.train"):
        sel = select(user, item, rating, nu, ni, k=5, seed=2, kinds=["popular", "signed", "refused"])
    assert "refused skipped" in caplog.text and "over this ranker's limit" in sel.skipped["refused"]
    assert set(sel.kinds) == {"popular", "signed"}
    signed = sel.kinds["signed"]
    # each point's NDCG, computed directly on the validation split
    fit, val = user_validation_split(user, np.arange(user.size), nu, seed=2)
    rel = user_item_matrix(user[val], item[val], nu, ni)
    users = np.flatnonzero(np.diff(rel.indptr))
    lists, _ = direct_popular_lists(user, item, fit, nu, ni, users, 5)
    best = float(np.nanmean(ndcg_at_k(lists, rel[users])))
    assert [p["params"] for p in signed.points] == [{"sign": -1}, {"sign": 1}]
    assert signed.points[1]["ndcg"] == pytest.approx(best) and signed.points[0]["ndcg"] < best
    assert signed.params == {"sign": 1} and signed.validation["ndcg"] == pytest.approx(best)
    assert sel.kinds["popular"].validation["ndcg"] == pytest.approx(best)
    # popular and signed(+1) tie exactly: the kind listed first in FITTERS wins
    assert sel.selected == "popular" and sel.ranked() == ["popular", "signed"]
    assert sel.validation_users == users.size
    json.dumps(sel.metrics())


def test_selection_never_reads_the_test_rows(generated, test_kinds):
    _, r = generated
    user, item, rating, nu, ni = arrays(r)
    train, test = user_holdout_split(user, nu, seed=1)
    assert test.size > 100
    before = select(user, item, rating, nu, ni, rows=train, seed=1, kinds=["popular", "signed"])
    item2, rating2 = item.copy(), rating.copy()
    item2[test] = -1  # any read of a test row would fail or change the figures
    rating2[test] = np.nan
    after = select(user, item2, rating2, nu, ni, rows=train, seed=1, kinds=["popular", "signed"])
    assert without_seconds(before) == without_seconds(after)


def without_seconds(selection):
    """The selection's record with its timings zeroed (the only clock-dependent figures)."""
    record = selection.metrics()
    record["seconds"] = 0.0
    for kind in record["kinds"].values():
        kind["seconds"] = 0.0
        for point in kind["grid"]:
            point["seconds"] = 0.0
    return record


def test_selection_tries_every_grid_point_the_same_for_any_worker_count(generated, test_kinds):
    _, r = generated
    one = select(*arrays(r), kinds=["popular", "item_knn", "signed"], workers=1)
    two = select(*arrays(r), kinds=["popular", "item_knn", "signed"], workers=2)
    assert [p["params"] for p in one.kinds["item_knn"].points] == ranking_fit.GRIDS["item_knn"]
    assert without_seconds(one) == without_seconds(two)


def test_shared_knn_points_equal_fitting_each_point_alone(generated):
    _, r = generated
    history = user_item_matrix(r.user, r.item, r.n_users, r.n_items, values=r.rating)
    rating = [p | {"values": "rating"} for p in ranking_fit.GRIDS["item_knn"]]
    assert len({p["shrink"] for p in rating}) > 2 and len({p["neighbours"] for p in rating}) > 2
    # one weighting (the shared product), and two weightings (point by point)
    pairs = [*zip(rating, fit_points("item_knn", history, rating), strict=True)]
    both = ranking_fit.GRIDS["item_knn"][:3] + rating[:3]
    pairs += [*zip(both, fit_points("item_knn", history, both), strict=True)]
    for params, shared in pairs:
        alone = ranking_fit.fit_item_knn(history, dict(params))
        for name in ("sim_indptr", "sim_indices", "sim_data"):
            assert np.array_equal(getattr(shared, name), getattr(alone, name)), (params, name)


def test_shared_rp3beta_points_equal_fitting_each_point_alone(generated):
    _, r = generated
    history = user_item_matrix(r.user, r.item, r.n_users, r.n_items, values=r.rating)
    grid = ranking_fit.GRIDS["rp3beta"]
    alpha = [p for p in grid if p["alpha"] == grid[0]["alpha"]]
    assert len({p["beta"] for p in alpha}) > 2 and len({p["neighbours"] for p in alpha}) > 1
    # one alpha (the shared product), and the whole grid (several: point by point)
    pairs = [*zip(alpha, fit_points("rp3beta", history, alpha), strict=True)]
    pairs += [*zip(grid, fit_points("rp3beta", history, grid), strict=True)]
    for params, shared in pairs:
        alone = ranking_fit.fit_rp3beta(history, dict(params))
        assert shared.kind == "rp3beta"
        for name in ("sim_indptr", "sim_indices", "sim_data"):
            assert np.array_equal(getattr(shared, name), getattr(alone, name)), (params, name)


def test_plan_groups_knn_points_that_share_a_product():
    tasks = plan(["popular", "item_knn", "ease"])
    knn = [t for t in tasks if t.kind == "item_knn"]
    assert sorted(i for t in knn for i in t.points) == list(range(len(ranking_fit.GRIDS["item_knn"])))
    grid = ranking_fit.GRIDS["item_knn"]
    assert len(knn) == len({p["values"] for p in grid})  # one task per weighting: one product each
    for t in knn:
        assert len({grid[i]["values"] for i in t.points}) == 1
    assert [t.points for t in tasks if t.kind == "ease"] == [(i,) for i in range(len(ranking_fit.GRIDS["ease"]))]
    assert [t.points for t in plan(["item_knn"], first_only=True)] == [(0,)]
    # longest first: the shared item-kNN task, then iALS from the most factors down
    every = plan(list(ranking_fit.FITTERS))
    kinds = [t.kind for t in every]
    assert kinds[0] == "item_knn" and kinds.index("rp3beta") < kinds.index("ease")
    factors = [ranking_fit.GRIDS["ials"][t.points[0]]["factors"] for t in every if t.kind == "ials"]
    assert factors == sorted(factors, reverse=True)


def test_fast_lists_equal_top_items_row_by_row():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, (60, 25)).astype(np.float64)  # many ties at every boundary
    scores[3] = -np.inf
    banned = rng.random((60, 25)) < 0.3
    banned[5, :23] = True  # fewer allowed items than k
    banned[6] = True
    scores[4, ::2] = -np.inf  # allowed items of score -inf still fill a list
    for values in (scores, (scores + rng.random(scores.shape) * 1e-3).astype(np.float32)):
        for k in (1, 5, 24, 40):
            got = top_lists(values, banned, k)
            for row in range(60):
                want = top_items(values[row], banned[row], k)
                assert np.array_equal(got[row, : want.shape[0]], want) and np.all(got[row, want.shape[0] :] == -1)
    scores[0, 0] = np.nan
    banned[0, 0] = False
    with pytest.raises(InvalidInput, match="NaN"):
        top_lists(scores, banned, 5)


def test_selection_refuses_bad_arguments(generated, test_kinds):
    _, r = generated
    with pytest.raises(InvalidInput, match="k must be at least 1"):
        select(*arrays(r), k=0)
    with pytest.raises(InvalidInput, match="unknown ranker 'nope'"):
        select(*arrays(r), kinds=["nope"])
    with pytest.raises(InvalidInput, match="no ranker could be fitted"):
        select(*arrays(r), kinds=["refused"])


def test_train_component_serves_the_best_kind_refitted_on_every_row(generated, tmp_path, test_kinds, monkeypatch):
    _, r = generated
    for kind, grid in list(ranking_fit.GRIDS.items()):  # every kind, but only two points of its grid (time)
        monkeypatch.setitem(ranking_fit.GRIDS, kind, grid[:2])
    with VersionWriter(tmp_path) as writer:
        summary = train_component(r, writer, seed=0, progress=False)
        writer.commit()
    version = ArtifactStore(tmp_path).open(components=["ranking"])
    rankers, default = load_rankers(version)
    metrics = version.component_meta("ranking")["metrics"]
    kinds = metrics["kinds"]
    assert "refused" not in rankers and "refused" in summary["skipped"] and "refused" in metrics["skipped"]
    assert set(rankers) == set(kinds) >= {"popular", "signed"}
    # the default is the best validation NDCG, ties to FITTERS order
    order = [k for k in ranking_fit.FITTERS if k in kinds]
    assert default == max(order, key=lambda k: (kinds[k]["validation"]["ndcg"], -order.index(k)))
    assert summary["default"] == default == metrics["default"]
    assert rankers["signed"].params == {"sign": 1} == kinds["signed"]["params"]
    full = np.bincount(r.item, minlength=r.n_items)
    for ranker in rankers.values():
        assert np.array_equal(ranker.item_count, full)  # refitted on all rows, not the fit rows
    assert sum(full) == r.n


def test_evaluate_matches_a_direct_computation_for_popular(ml100k):
    r = load_ratings(ml100k, progress=False)
    result = evaluate(r, k=10, seed=0, kinds=["popular"])
    assert set(result) >= {"task", "k", "models", "selected", "seconds"}
    assert (result["task"], result["k"], result["selected"], result["relevance"]) == ("ranking", 10, "popular", "any")
    model = result["models"]["popular"]
    assert set(model) == {"precision", "recall", "ndcg", "map", "coverage", "novelty", "fit_seconds"}
    user, item = r.user.astype(np.int64), r.item.astype(np.int64)
    train, test = user_holdout_split(user, r.n_users, seed=0)
    rel = user_item_matrix(user[test], item[test], r.n_users, r.n_items)
    users = np.flatnonzero(np.diff(rel.indptr))
    lists, counts = direct_popular_lists(user, item, train, r.n_users, r.n_items, users, 10)
    want = evaluate_rankings(lists, rel[users], counts, np.unique(user[train]).size, int((counts > 0).sum()))
    for name, value in want.items():
        assert model[name] == pytest.approx(value, rel=1e-12), name
    assert model["ndcg"] == pytest.approx(0.2199, abs=5e-5)  # the most-popular figure on this split
    json.dumps(result)


def test_evaluate_with_min_rating_keeps_only_users_with_a_liked_test_item(generated):
    _, r = generated
    result = evaluate(r, k=5, seed=4, relevance="min_rating=4", kinds=["popular"])
    user, item, rating = r.user.astype(np.int64), r.item.astype(np.int64), r.rating
    train, test = user_holdout_split(user, r.n_users, seed=4)
    liked = test[rating[test] >= 4]
    rel = user_item_matrix(user[liked], item[liked], r.n_users, r.n_items)
    users = np.flatnonzero(np.diff(rel.indptr))
    assert 0 < users.size < np.unique(user[test]).size
    lists, counts = direct_popular_lists(user, item, train, r.n_users, r.n_items, users, 5)
    want = evaluate_rankings(lists, rel[users], counts, np.unique(user[train]).size, int((counts > 0).sum()))
    got = result["models"]["popular"]
    assert all(got[m] == pytest.approx(v, rel=1e-12) for m, v in want.items())
    assert result["relevance"] == "min_rating=4" and result["split"]["test_users"] == users.size


def test_evaluate_reports_every_kind_and_the_validation_winner(generated, test_kinds):
    _, r = generated
    result = evaluate(r, k=10, seed=0, kinds=["popular", "signed", "refused"])
    assert set(result["models"]) == {"popular", "signed"} and "refused" in result["skipped"]
    assert result["selected"] == "popular"  # an exact tie with signed(+1): FITTERS order
    assert result["models"]["signed"]["ndcg"] == result["models"]["popular"]["ndcg"]
    assert result["params"]["signed"] == {"sign": 1}
    assert all(math.isfinite(result["validation"][k]["ndcg"]) for k in result["models"])
    with pytest.raises(InvalidInput, match="relevance must be"):
        evaluate(r, relevance="every")


def test_without_validation_users_every_kind_keeps_its_first_point(tmp_path, test_kinds, caplog):
    r = load_ratings(generate_reviews(tmp_path / "few.tsv", 40, seed=1, progress=False), progress=False)
    assert np.bincount(r.user).max() < 5  # nobody is eligible for a validation share
    with caplog.at_level(logging.WARNING, logger="chorus.training.train"):
        sel = select(*arrays(r), kinds=["popular", "signed"])
    assert "no validation user" in caplog.text and sel.validation_users == 0
    assert sel.kinds["signed"].params == {"sign": -1} and len(sel.kinds["signed"].points) == 1
    assert sel.selected == "popular"
    with VersionWriter(tmp_path / "art") as writer:  # chorus train still publishes a component, ties to FITTERS order
        assert train_component(r, writer, progress=False)["default"] == "popular"
        writer.commit()
    assert load_rankers(ArtifactStore(tmp_path / "art").open(components=["ranking"]))[1] == "popular"


def test_evaluate_marks_the_kind_train_serves_with_the_same_params(generated, tmp_path, monkeypatch):
    _, r = generated
    for kind, grid in list(ranking_fit.GRIDS.items()):  # three points of each grid, for time
        monkeypatch.setitem(ranking_fit.GRIDS, kind, grid[:3])
    result = evaluate(r, seed=1)
    with VersionWriter(tmp_path) as writer:
        summary = train_component(r, writer, seed=1, progress=False)
        writer.commit()
    assert summary["default"] == result["selected"]
    assert summary["params"] == result["params"]
    assert {k: v["ndcg"] for k, v in result["validation"].items()} == pytest.approx(
        summary["validation_ndcg"], abs=1e-4
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_counts_every_point_once_in_order(generated, workers):
    _, r = generated
    seen: list[int] = []
    sel = select(*arrays(r), kinds=["popular", "item_knn", "ease"], workers=workers, progress=seen.append)
    total = sum(len(ranking_fit.GRIDS[k]) for k in ("popular", "item_knn", "ease"))
    assert seen[0] == 0 and seen[-1] == total and seen == sorted(seen)
    assert sum(len(s.points) for s in sel.kinds.values()) == total


SMALL_ALS = {"factors": 4, "regularization": 1.0, "iterations": 5, "values": "binary"}


@pytest.fixture
def small_blend_grids(monkeypatch):
    """Two points each for EASE and iALS (the second better on validation or not: the data decides), two weights."""
    monkeypatch.setitem(ranking_fit.GRIDS, "ease", [{"lam": 50.0, "dropout": 0.0}, {"lam": 5.0, "dropout": 0.5}])
    monkeypatch.setitem(ranking_fit.GRIDS, "ials", [{**SMALL_ALS, "alpha": 2.0}, {**SMALL_ALS, "alpha": 0.5}])
    monkeypatch.setitem(ranking_fit.GRIDS, "ease_ials", [{"w": 0.5}, {"w": 0.25}])


def test_a_blend_is_chosen_over_its_parts_chosen_params(generated, small_blend_grids):
    _, r = generated
    user, item, rating, n_users, n_items = arrays(r)
    selection = select(user, item, rating, n_users, n_items, k=5, kinds=["ials", "ease_ials", "ease"])
    assert list(selection.kinds) == ["ease", "ials", "ease_ials"]  # the table's order
    # the parts' rankers come back from the workers to be mixed: the same figures as in one process
    two = select(user, item, rating, n_users, n_items, k=5, kinds=["ials", "ease_ials", "ease"], workers=2)
    assert without_seconds(two) == without_seconds(selection)
    ease, ials, blend = (selection.kinds[k] for k in ("ease", "ials", "ease_ials"))
    base = ease.params | ials.params
    assert [p["params"] for p in blend.points] == [base | {"w": 0.5}, base | {"w": 0.25}]
    # each point scores what its blend of the parts, fitted directly on the fit rows, scores
    fit, val = user_validation_split(user, np.arange(r.n), n_users, 0)
    history = user_item_matrix(user[fit], item[fit], n_users, n_items, values=rating[fit])
    parts = [ranking_fit.fit_ease(history, ease.params), ranking_fit.fit_ials(history, ials.params)]
    users = np.unique(user[val])
    relevant = user_item_matrix(user[val], item[val], n_users, n_items)[users]
    for point in blend.points:
        ranker = ranking_fit.compose("ease_ials", parts, point["params"])
        lists = recommend_lists(ranker, history, users, 5)
        assert point["ndcg"] == pytest.approx(np.nanmean(ndcg_at_k(lists, sp.csr_array(relevant))), abs=1e-12)


def test_a_blend_whose_part_is_refused_is_skipped(generated, small_blend_grids, monkeypatch, caplog):
    _, r = generated
    monkeypatch.setitem(ranking_fit.FITTERS, "ease", fit_refused)
    seen: list[int] = []
    with caplog.at_level(logging.WARNING):
        selection = select(*arrays(r), k=5, kinds=["ease", "ials", "ease_ials"], progress=seen.append)
    assert list(selection.kinds) == ["ials"]
    assert selection.skipped["ease_ials"] == "its part ease was skipped" and "ease" in selection.skipped
    assert "ease_ials skipped: its part ease was skipped" in caplog.text
    assert seen[-1] == 6  # the blend's points count as done


def test_train_puts_the_blend_together_from_its_refitted_parts(generated, tmp_path, small_blend_grids, monkeypatch):
    _, r = generated
    monkeypatch.setitem(ranking_fit.GRIDS, "item_knn", ranking_fit.GRIDS["item_knn"][:1])
    with VersionWriter(tmp_path) as writer:
        train_component(r, writer, seed=0, progress=False)
        writer.commit()
    version = ArtifactStore(tmp_path).open(components=["ranking"])
    rankers, default = load_rankers(version)
    # the live default and decay chosen on the time-ordered replay of the default and the next best validated
    # kinds (LIVE_KINDS in all) are what the version serves
    meta = version.component_meta("ranking")
    live = meta["metrics"]["live"]
    assert load_live(version) == (live["method"], live["decay"]) and live["method"] in rankers
    ndcg = {kind: record["validation"]["ndcg"] for kind, record in meta["metrics"]["kinds"].items()}
    order = sorted(ndcg, key=lambda kind: -ndcg[kind])  # stable: ties in the table's order
    assert len(rankers) > LIVE_KINDS and set(live["hit_rate"]) == {default, *[k for k in order if k != default][:2]}
    assert all(set(h) == {str(d) for d in DECAYS} for h in live["hit_rate"].values())
    ease, ials, blend = rankers["ease"], rankers["ials"], rankers["ease_ials"]
    assert isinstance(ease, EaseRanker) and isinstance(ials, IalsRanker) and isinstance(blend, EaseIalsRanker)
    assert np.array_equal(blend.weights, ease.weights) and np.array_equal(blend.items, ease.items)
    assert np.array_equal(blend.item_factors, ials.item_factors)
    assert blend.params == ease.params | ials.params | {"w": blend.params["w"]}
    # the same arrays as the blend's own fitter on every row
    everything = user_item_matrix(r.user, r.item, r.n_users, r.n_items, values=r.rating)
    direct = ranking_fit.fit_ease_ials(everything, dict(blend.params))
    assert np.array_equal(direct.weights, blend.weights) and np.array_equal(direct.item_factors, blend.item_factors)
