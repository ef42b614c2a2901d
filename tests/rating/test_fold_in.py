"""Folding a new user into a fitted rating model (items fixed), and laying live events over a user's rows: against a
brute-force least-squares solve, the training objective's gradient, and hand-made cases."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from chorus.services.rating.live import merge_history
from chorus.services.rating.models import BiasModel, LatentModel, MeanModel, RatingModel, TextAwareModel
from chorus.services.rating.models.base import NO_FALLBACK, USER_BIAS
from chorus.services.rating.models.fold_in import UserRidge, solve_user
from chorus.shared.events.store import Event, Live
from chorus.training.rating.als import fit_als
from chorus.training.rating.baseline import fit_bias, fit_mean
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params, objective_and_gradient
from tests.rating.data import planted
from tests.rating.test_objective import WEIGHTINGS


def hyperparameters(config: LatentConfig) -> dict[str, Any]:
    """What a version's ``rating`` component records of ``config`` (as ``Selection.hyperparameters``)."""
    return {
        "weighting": config.weighting,
        "reg_bias": config.reg_bias,
        "reg_factors": config.reg_factors if config.n_factors else None,
        "smoothing_bias": config.smoothing_bias,
        "smoothing_factors": config.smoothing_factors,
    }


def brute_force(model, items: np.ndarray, ratings: np.ndarray, config: LatentConfig, n_train: int) -> np.ndarray:
    """(β_u, γ_u) minimising Σ (α + β_u + β_i + γ_u·γ_i − r)² + ρᵇ β_u² + ρᶠ ‖γ_u‖², written from the objective: the
    ridge terms as extra rows of a least-squares problem, solved by ``numpy.linalg.lstsq``."""
    n = items.shape[0]
    if config.weighting == "uniform":
        rb, rf = n_train * config.reg_bias, n_train * config.reg_factors
    else:
        rb, rf = config.reg_bias * (n + config.smoothing_bias), config.reg_factors * (n + config.smoothing_factors)
    q = model.item_factors[items].astype(np.float64) if isinstance(model, LatentModel) else np.zeros((n, 0))
    k = q.shape[1]
    design = np.vstack([np.hstack([np.ones((n, 1)), q]), np.diag(np.sqrt([rb] + [rf] * k))])
    target = np.concatenate([ratings - model.global_mean - model.item_bias[items].astype(np.float64), np.zeros(1 + k)])
    solution: np.ndarray = np.linalg.lstsq(design, target, rcond=None)[0]
    return solution


def held_out_fit(config: LatentConfig, held: int, unseen: int = -1):
    """A model fitted on planted ratings without user ``held``'s (nor item ``unseen``'s), and all the ratings."""
    user, item, rating, _ = planted(n_users=80, n_items=60, density=0.4)
    data = Trainset(user, item, np.clip(rating, 1, 5), 80, 60, 1.0, 5.0)
    keep = (user != held) & (item != unseen)
    fit_on = data.subset(np.flatnonzero(keep))
    if config.n_factors:
        model, _ = fit_als(fit_on, config, n_sweeps=6)
    else:
        model = fit_bias(fit_on, config)
    return model, data, int(keep.sum())


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
@pytest.mark.parametrize("k", [0, 4])
def test_fold_in_is_the_least_squares_minimiser_of_the_objective(config, k):
    config = replace(config, n_factors=k, init_scale=0.3)
    held = 7
    model, data, n_train = held_out_fit(config, held)
    assert isinstance(model, LatentModel if k else BiasModel) and model.user_count[held] == 0
    ridge = model.user_ridge(hyperparameters(config))
    assert ridge is not None
    rows = data.user == held
    items, ratings = data.item[rows], data.rating[rows]
    folded = model.fold_in(items, ratings, ridge)
    assert folded is not None and folded.n_ratings == items.shape[0] and folded.factors.shape == (k,)
    want = brute_force(model, items, ratings, config, n_train)
    np.testing.assert_allclose(np.concatenate([[folded.bias], folded.factors]), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("k", [0, 4])
def test_fold_in_zeroes_the_training_objectives_gradient_in_the_users_parameters(k):
    """With count weighting a user's ridge depends on their own count only, so the training objective on every
    rating, the held-out user's included, has zero gradient in (β_u, γ_u) at the fold-in, the items fixed."""
    config = replace(WEIGHTINGS[1], n_factors=k, init_scale=0.3)
    held = 11
    model, data, _ = held_out_fit(config, held)
    ridge = model.user_ridge(hyperparameters(config))
    rows = data.user == held
    folded = model.fold_in(data.item[rows], data.rating[rows], ridge)
    f = np.float64
    pu = model.user_factors.astype(f).copy() if k else np.zeros((data.n_users, 0))
    qi = model.item_factors.astype(f) if k else np.zeros((data.n_items, 0))
    bu = model.user_bias.astype(f).copy()
    bu[held] = folded.bias
    pu[held] = folded.factors
    _, grad = objective_and_gradient(Params(model.global_mean, bu, model.item_bias.astype(f), pu, qi), data, config)
    scale = np.abs(grad.bu).max()
    assert abs(grad.bu[held]) < 1e-10 * max(scale, 1.0)
    if k:
        assert np.abs(grad.pu[held]).max() < 1e-10 * max(np.abs(grad.pu).max(), 1.0)


def test_a_folded_user_is_predicted_and_ranked_from_their_parameters():
    config = replace(WEIGHTINGS[1], n_factors=3, init_scale=0.3)
    model, data, _ = held_out_fit(config, 3)
    rows = data.user == 3
    folded = model.fold_in(data.item[rows], data.rating[rows], model.user_ridge(hyperparameters(config)))
    f = np.float64
    want = model.global_mean + folded.bias + model.item_bias.astype(f) + model.item_factors.astype(f) @ folded.factors
    np.testing.assert_allclose(model.score_folded(folded), want, rtol=1e-12)
    items = np.array([0, 5, -1])
    pred = model.predict_folded(folded, items)
    np.testing.assert_allclose(pred.rating[:2], np.clip(want[[0, 5]], 1, 5))
    assert pred.rating[2] == pytest.approx(np.clip(model.global_mean + folded.bias, 1, 5))
    assert pred.fallback.tolist() == [NO_FALLBACK, NO_FALLBACK, USER_BIAS]
    seen = data.item[rows]
    rec = model.recommend_folded(folded, 10, exclude=seen)
    assert rec.fallback is None and not set(rec.items.tolist()) & set(seen.tolist())
    allowed = np.setdiff1d(np.flatnonzero(model.item_count > 0), seen)
    best = allowed[np.lexsort((allowed, -want[allowed]))][:10]
    np.testing.assert_array_equal(rec.items, best)
    np.testing.assert_allclose(rec.ratings, np.clip(want[best], 1, 5))


def test_items_the_model_never_saw_are_left_out_of_a_fold_in():
    config = replace(WEIGHTINGS[1], n_factors=0)
    model, data, n_train = held_out_fit(config, 2, unseen=59)
    assert model.item_count[59] == 0
    ridge = model.user_ridge(hyperparameters(config))
    items, ratings = np.array([0, 1]), np.array([5.0, 4.0])
    base = model.fold_in(items, ratings, ridge)
    with_unseen = model.fold_in(np.array([0, 1, 59]), np.array([5.0, 4.0, 1.0]), ridge)
    assert (with_unseen.bias, with_unseen.n_ratings) == (base.bias, 2)
    assert model.fold_in(np.array([59]), np.array([1.0]), ridge) is None
    assert model.fold_in(np.zeros(0, np.int64), np.zeros(0), ridge) is None
    np.testing.assert_allclose(base.bias, brute_force(model, items, ratings, config, n_train)[0])


def test_ridges_come_from_the_versions_hyperparameters():
    count = {"weighting": "count", "reg_bias": 0.1, "reg_factors": 0.2, "smoothing_bias": 5.0, "smoothing_factors": 7.0}
    ridge = UserRidge.from_hyperparameters(count, 1000, factors=True)
    assert ridge is not None
    assert ridge.penalties(3) == pytest.approx((0.1 * 8, 0.2 * 10))
    uniform = UserRidge.from_hyperparameters({**count, "weighting": "uniform"}, 1000, factors=True)
    assert uniform is not None
    assert uniform.penalties(3) == pytest.approx((100.0, 200.0)) == uniform.penalties(50)
    # the bias model records no factor ridge, and needs none
    assert UserRidge.from_hyperparameters({**count, "reg_factors": None}, 1000, factors=False) is not None
    assert UserRidge.from_hyperparameters({**count, "reg_factors": None}, 1000, factors=True) is None
    assert UserRidge.from_hyperparameters({}, 1000, factors=False) is None
    assert UserRidge.from_hyperparameters({**count, "weighting": "other"}, 1000, factors=False) is None
    # models whose users are not fitted by this objective fold no one in
    latent, data, _ = held_out_fit(replace(WEIGHTINGS[1], n_factors=2), 0)
    text_aware = TextAwareModel.from_arrays(latent.to_arrays(), latent.to_meta())
    assert latent.user_ridge(count) is not None and text_aware.user_ridge(count) is None
    mean = fit_mean(data)
    as_any_model: RatingModel = mean  # the base type says fold_factors may give None
    assert isinstance(mean, MeanModel) and mean.user_ridge(count) is None and as_any_model.fold_factors() is None


def test_a_zero_ridge_with_fewer_ratings_than_parameters_gives_the_minimum_norm_solution():
    ridge = UserRidge(0.0, 0.0, 0.0, 0.0)
    q = np.array([[1.0, 0.0, 0.0]])
    folded = solve_user(np.array([2.0]), q, ridge)
    assert np.isfinite(folded.bias) and folded.bias + folded.factors[0] == pytest.approx(2.0)
    np.testing.assert_allclose([folded.bias, *folded.factors], [1.0, 1.0, 0.0, 0.0])


# -- live rows over the version's -------------------------------------------------------------------------------


def event(seq: int, item: str | None, kind: str, rating: float | None = None) -> Event:
    return Event(seq, f"e{seq}", "u", item, kind, rating, None, float(seq))


CATALOG = {"a": 0, "b": 1, "c": 2, "d": 3}


def index(ids):
    return np.array([CATALOG.get(i, -1) for i in ids], dtype=np.int64)


def test_live_rows_replace_the_versions_add_new_items_and_skip_unknown_ones():
    live = Live(
        False,
        [
            event(5, "b", "rating", 1.0),  # re-rates a version row
            event(6, "c", "purchase"),  # a purchase counts as the scale's middle
            event(7, "zz", "rating", 5.0),  # not in the catalog: cannot be scored
            event(8, "d", "view"),  # no row, but acted on
            event(9, "c", "review", 4.0),  # the latest row of c wins
        ],
    )
    h = merge_history(4, np.array([0, 1]), np.array([5.0, 3.0]), live, index, 3.0)
    assert h.user == 4 and h.items.tolist() == [0, 1, 2] and h.ratings.tolist() == [5.0, 1.0, 4.0]
    assert h.acted.tolist() == [1, 2, 3] and h.live_rows == 2
    only_purchase = merge_history(
        -1, np.zeros(0, np.int64), np.zeros(0), Live(False, [event(1, "a", "purchase")]), index, 3.0
    )
    assert only_purchase.items.tolist() == [0] and only_purchase.ratings.tolist() == [3.0]


def test_a_forgotten_user_keeps_only_what_came_after_the_tombstone():
    h = merge_history(4, np.array([0, 1]), np.array([5.0, 3.0]), Live(True, [event(9, "c", "rating", 2.0)]), index, 3.0)
    assert h.user == -1 and h.items.tolist() == [2] and h.ratings.tolist() == [2.0] and h.acted.tolist() == [2]
    gone = merge_history(4, np.array([0, 1]), np.array([5.0, 3.0]), Live(True, []), index, 3.0)
    assert gone.user == -1 and gone.items.size == 0 and gone.acted.size == 0


def test_without_a_store_the_history_is_the_versions():
    h = merge_history(4, np.array([0, 1], np.int32), np.array([5.0, 3.0], np.float32), None, index, 3.0)
    assert h.user == 4 and h.items.tolist() == [0, 1] and h.ratings.tolist() == [5.0, 3.0] and h.acted.size == 0
