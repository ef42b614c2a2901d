"""The objective and its analytic gradient, against finite differences and the formula written out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params, init_params, objective, objective_and_gradient
from tests.rating.data import random_ratings

WEIGHTINGS = [
    LatentConfig(weighting="uniform", reg_bias=0.03, reg_factors=0.05, dtype="float64"),
    LatentConfig(
        weighting="count", reg_bias=0.2, reg_factors=0.3, smoothing_bias=2.0, smoothing_factors=3.0, dtype="float64"
    ),
]


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
def test_gradient_matches_finite_differences(config):
    user, item, rating, nu, ni = random_ratings()
    cfg = replace(config, n_factors=3)
    p = init_params(nu, ni, 3, rating.mean(), 0.5, np.random.default_rng(1))
    p.bu[:] = np.random.default_rng(2).normal(0, 0.3, nu)
    p.bi[:] = np.random.default_rng(3).normal(0, 0.3, ni)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    _, grad = objective_and_gradient(p, data, cfg)
    theta, g = p.pack(), grad.pack()
    numeric = np.empty_like(theta)
    h = 1e-6
    for j in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numeric[j] = (
            objective(Params.unpack(up, nu, ni, 3), data, cfg) - objective(Params.unpack(down, nu, ni, 3), data, cfg)
        ) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_uniform_weighting_is_the_plain_ridge_objective():
    # Koren, Bell & Volinsky 2009 with biases, divided by N: mean squared error + λ Σ of squared parameters
    user, item, rating, nu, ni = random_ratings()
    lam = 0.07
    cfg = LatentConfig(n_factors=2, weighting="uniform", reg_bias=lam, reg_factors=lam)
    p = init_params(nu, ni, 2, 3.0, 0.4, np.random.default_rng(0))
    p.bu[:] = 0.1
    f = p.alpha + p.bu[user] + p.bi[item] + np.sum(p.pu[user] * p.qi[item], axis=1)
    expected = np.mean((f - rating) ** 2) + lam * (
        np.sum(p.bu**2) + np.sum(p.bi**2) + np.sum(p.pu**2) + np.sum(p.qi**2)
    )
    assert objective(p, Trainset(user, item, rating, nu, ni, 1, 5), cfg) == pytest.approx(expected, rel=1e-12)


def test_pack_and_unpack_are_inverse():
    p = init_params(5, 4, 3, 3.2, 0.5, np.random.default_rng(0))
    q = Params.unpack(p.pack(), 5, 4, 3)
    assert q.alpha == p.alpha
    for name in ("bu", "bi", "pu", "qi"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
