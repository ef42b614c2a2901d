"""Exact fits without factors: the bias-only optimum against the normal equations, the global mean; and the
popular-items rule every fit stores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chorus.training.rating.als import fit_als
from chorus.training.rating.baseline import fit_bias, fit_mean
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset, popular_items
from chorus.training.rating.lbfgs import fit_lbfgs
from chorus.training.rating.objective import Params, ridges
from tests.rating.data import random_ratings
from tests.rating.test_objective import WEIGHTINGS


def normal_equations_biases(user, item, rating, n_users, n_items, config: LatentConfig) -> Params:
    """Bias-only optimum from the dense normal equations (AᵀA + D) θ = Aᵀr, A = [1, one-hot user, one-hot
    item] (N × (1 + n_users + n_items)), D = diag(0, ρᵇ_u, ρᵇ_i): written straight from the objective."""
    n = rating.shape[0]
    a = np.zeros((n, 1 + n_users + n_items))
    a[:, 0] = 1.0
    a[np.arange(n), 1 + user] = 1.0
    a[np.arange(n), 1 + n_users + item] = 1.0
    rb_u, _ = ridges(np.bincount(user, minlength=n_users), n, config)
    rb_i, _ = ridges(np.bincount(item, minlength=n_items), n, config)
    d = np.diag(np.concatenate([[0.0], rb_u, rb_i]))
    theta = np.linalg.lstsq(a.T @ a + d, a.T @ rating, rcond=None)[0]
    return Params(
        theta[0], theta[1 : 1 + n_users], theta[1 + n_users :], np.zeros((n_users, 0)), np.zeros((n_items, 0))
    )


def test_bias_only_matches_the_hand_derived_optimum():
    # Two users, one item, ratings 5 and 3, uniform weighting with λ_b = 0.5 (ρ = N·λ = 1). α is free, so
    # β_item = 0; ∂/∂β_u: (α + β_u − R_u) + ρβ_u = 0 gives β_u = (R_u − α)/(1 + ρ); ∂/∂α: Σ(α + β_u − R_u) = 0
    # gives α = mean(R) = 4, so β = ±1/(1 + ρ) = ±0.5.
    user, item, rating = np.array([0, 1]), np.array([0, 0]), np.array([5.0, 3.0])
    cfg = LatentConfig(n_factors=0, weighting="uniform", reg_bias=0.5)
    m = fit_bias(Trainset(user, item, rating, 2, 1, 1, 5), cfg)
    assert m.kind == "bias"
    assert m.global_mean == pytest.approx(4.0, abs=1e-9)
    np.testing.assert_allclose(m.user_bias, [0.5, -0.5], atol=1e-7)
    np.testing.assert_allclose(m.item_bias, [0.0], atol=1e-7)
    np.testing.assert_allclose(m.predict(user, item).rating, [4.5, 3.5], atol=1e-6)


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
def test_bias_only_solves_the_normal_equations(config):
    user, item, rating, nu, ni = random_ratings()
    cfg = replace(config, n_factors=0)
    ref = normal_equations_biases(user, item, rating, nu, ni, cfg)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    m = fit_bias(data, cfg)
    assert m.global_mean == pytest.approx(ref.alpha, abs=1e-7)
    np.testing.assert_allclose(m.user_bias, ref.bu, atol=1e-6)
    np.testing.assert_allclose(m.item_bias, ref.bi, atol=1e-6)
    # the other two trainers reach the same optimum with K = 0
    lb, _ = fit_lbfgs(data, cfg)
    np.testing.assert_allclose(lb.user_bias, ref.bu, atol=1e-4)
    als, _ = fit_als(data, cfg, n_sweeps=3000)
    np.testing.assert_allclose(als.item_bias, ref.bi, atol=1e-4)


def test_bias_model_recommends_by_item_bias():
    user, item, rating, nu, ni = random_ratings()
    m = fit_bias(Trainset(user, item, rating, nu, ni, 1, 5), LatentConfig(n_factors=0, reg_bias=0.05))
    rec = m.recommend(0, k=3, exclude=item[user == 0])
    candidates = np.setdiff1d(np.flatnonzero(m.item_count > 0), item[user == 0])
    expected = candidates[np.lexsort((candidates, -m.item_bias[candidates]))][:3]
    np.testing.assert_array_equal(rec.items, expected)


def test_mean_model_is_the_mean():
    user, item, rating, nu, ni = random_ratings()
    m = fit_mean(Trainset(user, item, rating, nu, ni, 1, 5))
    assert m.kind == "mean"
    np.testing.assert_allclose(m.predict(user, item).rating, np.full(user.size, rating.mean()), rtol=1e-6)


def test_popular_items_rule():
    # item 0: 3 ratings, mean 4.33 (well rated); item 1: 4 ratings, mean 3 (not); item 2: 2 ratings, mean 5;
    # item 3: 1 rating of 4; item 4: none
    item = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])
    rating = np.array([5, 4, 4, 3, 3, 3, 3, 5, 5, 4], dtype=float)
    order = popular_items(item, rating, 5, 1, 5)
    assert order.tolist() == [0, 2, 3, 1]
    assert popular_items(item, rating, 5, 1, 5, threshold=4.5).tolist() == [2, 1, 0, 3]
