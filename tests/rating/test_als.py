"""Alternating least squares: exact block minimisation, agreement with L-BFGS on the same objective, recovery of a
planted model, seeds, restarts and early stopping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chorus.services.rating.models import LatentModel
from chorus.shared.contract.errors import InvalidInput
from chorus.training.rating import als
from chorus.training.rating.als import BiasSide, Side, Sweeper, als_sweeps, fit_als, make_sides
from chorus.training.rating.baseline import fit_bias
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.lbfgs import fit_lbfgs
from chorus.training.rating.objective import Params, Problem, init_params, objective_and_gradient
from tests.rating.data import planted, random_ratings
from tests.rating.test_objective import WEIGHTINGS


def params_of(model: LatentModel) -> Params:
    """The float64 parameters of a fitted latent model."""
    f = np.float64
    return Params(
        model.global_mean,
        model.user_bias.astype(f),
        model.item_bias.astype(f),
        model.user_factors.astype(f),
        model.item_factors.astype(f),
    )


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
def test_als_never_increases_the_objective_and_each_block_is_an_exact_minimiser(config):
    user, item, rating, nu, ni = random_ratings(n=70)
    k = 5  # K + 1 = 6: users with more ratings use the primal solve, the others the dual one
    cfg = replace(config, n_factors=k, init_scale=0.5)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    prob = Problem(data, cfg)
    sweeper = Sweeper(data, k, cfg.dtype)
    assert isinstance(sweeper.sides[0], Side) and isinstance(sweeper.sides[1], Side)
    counts = np.bincount(user, minlength=nu)
    assert (counts > k + 1).any() and ((counts > 0) & (counts <= k + 1)).any()
    values = [prob.value(p := init_params(nu, ni, k, rating.mean(), 0.5, np.random.default_rng(0)))]

    def check(step, params):
        values.append(prob.value(params))
        _, g = prob.value_and_grad(params)
        if step == "users":
            assert np.abs(g.bu).max() < 1e-9 and np.abs(g.pu).max() < 1e-9
        elif step == "items":
            assert np.abs(g.bi).max() < 1e-9 and np.abs(g.qi).max() < 1e-9
        else:
            assert abs(g.alpha) < 1e-9

    with sweeper:
        als_sweeps(prob, p, sweeper, cfg, 8, callback=check)
    steps = np.diff(values)
    assert len(values) == 1 + 8 * 4
    assert np.all(steps <= 1e-12 * values[0]), steps.max()
    assert values[-1] < 0.8 * values[0]


def test_chunked_gram_products_give_the_same_solution(monkeypatch):
    user, item, rating, nu, ni = random_ratings(n=70)
    cfg = LatentConfig(n_factors=2, dtype="float64", init_scale=0.3, max_sweeps=5)
    m1, _ = fit_als(Trainset(user, item, rating, nu, ni, 1, 5), cfg)
    monkeypatch.setattr(als, "gram_chunk", lambda k: 2)  # sums XᵀX over several 2-row chunks
    m2, _ = fit_als(Trainset(user, item, rating, nu, ni, 1, 5), cfg)
    assert isinstance(m1, LatentModel) and isinstance(m2, LatentModel)
    np.testing.assert_allclose(m1.user_factors, m2.user_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m1.item_bias, m2.item_bias, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_solving_a_batch_a_piece_of_owners_at_a_time_changes_no_bit(monkeypatch, dtype):
    user, item, rating, _ = planted(n_users=300, n_items=60, density=0.3)
    nu, ni = 300, 60
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    cfg = LatentConfig(n_factors=20, dtype=dtype, init_scale=0.3, max_sweeps=4)
    users, items = make_sides(data, 20)
    assert isinstance(users, Side) and isinstance(items, Side)
    widths = [b[1].shape[1] for side in (users, items) for b in side.batches]
    assert min(widths) <= 21 < max(widths)  # both the dual systems (L <= K + 1) and the primal ones
    whole, _ = als.fit_als_params(data, cfg)
    monkeypatch.setattr(als, "SOLVE_BYTES", 1)  # one owner per piece
    pieces, _ = als.fit_als_params(data, cfg)
    assert whole.alpha == pieces.alpha
    for name in ("bu", "bi", "pu", "qi"):
        assert np.array_equal(getattr(whole, name), getattr(pieces, name)), name


def test_als_converges_to_a_stationary_point_that_lbfgs_cannot_improve():
    user, item, rating, nu, ni = random_ratings(n=70)
    cfg = LatentConfig(n_factors=2, weighting="count", reg_bias=0.2, reg_factors=0.3, dtype="float64", init_scale=0.3)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    model, info = fit_als(data, cfg, n_sweeps=400, track_objective=True)
    assert isinstance(model, LatentModel)
    p = params_of(model)
    value, grad = objective_and_gradient(p, data, cfg)
    assert np.abs(grad.pack()).max() < 1e-5
    _, lb = fit_lbfgs(data, cfg, init=p)
    # the stored model is float32; L-BFGS may only recover that rounding, nothing more
    assert lb.final_objective is not None and lb.final_objective >= value - 1e-6


def test_lbfgs_and_als_reach_the_same_objective_from_the_same_start():
    user, item, rating, _ = planted(n_users=40, n_items=30, k=2, density=0.6, seed=3)
    cfg = LatentConfig(
        n_factors=2, weighting="uniform", reg_bias=5e-3, reg_factors=1e-2, init_scale=0.3, dtype="float64"
    )
    data = Trainset(user, item, rating, 40, 30, -10, 10)
    als_model, ai = fit_als(data, cfg, n_sweeps=100, track_objective=True)
    lb, li = fit_lbfgs(data, cfg, maxiter=1000)
    assert li.final_objective == pytest.approx(ai.objective[-1], rel=1e-6)
    pa = als_model.predict(user, item).rating
    pl = lb.predict(user, item).rating
    assert np.abs(pa - pl).max() < 1e-3


def test_planted_low_rank_matrix_is_recovered_on_held_out_entries():
    user, item, rating, full = planted()
    rng = np.random.default_rng(1)
    held = rng.random(user.size) < 0.1
    cfg = LatentConfig(
        n_factors=3, weighting="uniform", reg_bias=1e-4, reg_factors=1e-4, init_scale=0.1, max_sweeps=40, patience=3
    )
    tr = ~held
    val = (user[held], item[held], rating[held])
    data = Trainset(user[tr], item[tr], rating[tr], 150, 120, -100, 100)
    model, info = fit_als(data, cfg, validation=val)
    pred = model.predict(user[held], item[held]).rating
    truth = full[user[held], item[held]]
    assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.1  # the noise is 0.1 per rating
    bias = fit_bias(data, cfg)
    assert np.sqrt(np.mean((bias.predict(user[held], item[held]).rating - truth) ** 2)) > 0.5
    # L-BFGS on the same objective recovers it too
    lb, _ = fit_lbfgs(data, cfg, maxiter=400)
    assert np.sqrt(np.mean((lb.predict(user[held], item[held]).rating - truth) ** 2)) < 0.1


def test_same_seed_same_model_other_seed_other_model():
    user, item, rating, nu, ni = random_ratings()
    cfg = LatentConfig(n_factors=3, init_scale=0.2, max_sweeps=4)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    a, _ = fit_als(data, cfg)
    b, _ = fit_als(data, cfg)
    c, _ = fit_als(data, replace(cfg, seed=1))
    assert isinstance(a, LatentModel) and isinstance(c, LatentModel)
    for name, array in a.to_arrays().items():
        np.testing.assert_array_equal(array, b.to_arrays()[name])
    assert not np.array_equal(a.user_factors, c.user_factors)
    la, _ = fit_lbfgs(data, cfg, maxiter=20)
    lb, _ = fit_lbfgs(data, cfg, maxiter=20)
    np.testing.assert_array_equal(la.to_arrays()["item_factors"], lb.to_arrays()["item_factors"])


def test_restarts_keep_the_best_validation_run():
    user, item, rating, nu, ni = random_ratings(n=70)
    val = (user[:10], item[:10], rating[:10])
    cfg = LatentConfig(n_factors=2, init_scale=0.3, max_sweeps=5, restarts=3)
    data = Trainset(user[10:], item[10:], rating[10:], nu, ni, 1, 5)
    _, info = fit_als(data, cfg, validation=val)
    singles: list[float] = []
    rng = np.random.default_rng(cfg.seed)
    prob = Problem(data, cfg)
    with Sweeper(data, 2, cfg.dtype, validation=val) as sweeper:
        for _ in range(3):
            p0 = init_params(nu, ni, 2, rating[10:].mean(), 0.3, rng)
            _, i = als_sweeps(prob, p0, sweeper, cfg, 5, 1, 5)
            assert i.best_validation_rmse is not None
            singles.append(i.best_validation_rmse)
    assert info.best_validation_rmse == pytest.approx(min(singles))
    assert info.restart == int(np.argmin(singles))


def test_early_stopping_returns_the_best_sweep():
    user, item, rating, full = planted(n_users=60, n_items=50, density=0.3, noise=0.8, seed=2)
    val = (user[:200], item[:200], rating[:200])
    cfg = LatentConfig(
        n_factors=8, weighting="uniform", reg_bias=3e-3, reg_factors=3e-3, init_scale=0.1, max_sweeps=25, patience=2
    )
    model, info = fit_als(Trainset(user[200:], item[200:], rating[200:], 60, 50, -100, 100), cfg, validation=val)
    assert info.best_validation_rmse == pytest.approx(min(info.validation_rmse))
    assert info.validation_rmse[info.best_sweep - 1] == info.best_validation_rmse
    assert 0 < info.best_sweep < info.sweeps < cfg.max_sweeps  # it improved, then overfitted and stopped
    assert info.sweeps - info.best_sweep == cfg.patience
    got = np.sqrt(np.mean((model.predict(*val[:2]).rating - val[2]) ** 2))
    assert got == pytest.approx(info.best_validation_rmse, rel=1e-5)


def test_als_without_factors_fits_the_bias_model():
    user, item, rating, nu, ni = random_ratings()
    model, _ = fit_als(Trainset(user, item, rating, nu, ni, 1, 5), LatentConfig(n_factors=0, max_sweeps=3))
    assert model.kind == "bias"
    assert all(isinstance(side, BiasSide) for side in make_sides(Trainset(user, item, rating, nu, ni, 1, 5), 0))


def test_bad_configuration_is_refused():
    with pytest.raises(InvalidInput):
        LatentConfig(n_factors=-1)
    with pytest.raises(InvalidInput):
        LatentConfig(weighting="log")  # type: ignore[arg-type]  # not a Weighting: the check at run time is tested
    user, item, rating, nu, ni = random_ratings()
    with pytest.raises(InvalidInput):
        fit_als(Trainset(user, item, rating, nu, ni, 1, 5), LatentConfig(n_factors=2, reg_factors=0.0))
    with pytest.raises(InvalidInput):
        Trainset(user, item, rating, nu - 5, ni, 1, 5)
    with pytest.raises(InvalidInput):
        Trainset(user[:0], item[:0], rating[:0], nu, ni, 1, 5)
    with pytest.raises(InvalidInput):
        Trainset(user, item[:-1], rating, nu, ni, 1, 5)
