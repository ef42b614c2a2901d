"""Rating core: objective and gradient, both trainers, closed forms, predictions, fallbacks, top-N."""

from __future__ import annotations

import numpy as np
import pytest
from chorus.services.rating import core
from chorus.services.rating.core import (
    FALLBACKS,
    POPULAR,
    LatentConfig,
    Params,
    RatingModel,
    als_sweeps,
    fit_als,
    fit_bias,
    fit_lbfgs,
    fit_mean,
    init_params,
    objective,
    objective_and_gradient,
    popular_items,
    reviewed_matrix,
)
from chorus.shared.errors import InvalidInput, NotFound

WEIGHTINGS = [
    LatentConfig(weighting="uniform", reg_bias=0.03, reg_factors=0.05, dtype="float64"),
    LatentConfig(
        weighting="count", reg_bias=0.2, reg_factors=0.3, smoothing_bias=2.0, smoothing_factors=3.0, dtype="float64"
    ),
]


def random_ratings(n_users=12, n_items=9, n=60, seed=0):
    """Distinct (user, item) pairs with ratings 1..5; one user (the last) and one item (the last) unrated."""
    rng = np.random.default_rng(seed)
    cells = rng.choice((n_users - 1) * (n_items - 1), size=n, replace=False)
    user, item = cells // (n_items - 1), cells % (n_items - 1)
    rating = rng.integers(1, 6, size=n).astype(np.float64)
    return user, item, rating, n_users, n_items


def planted(n_users=150, n_items=120, k=3, density=0.5, noise=0.1, seed=0):
    """Ratings from a known low-rank-plus-biases model, observed on a random subset with Gaussian noise."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.6, (n_users, k))
    q = rng.normal(0, 0.6, (n_items, k))
    full = 3.0 + rng.normal(0, 0.3, n_users)[:, None] + rng.normal(0, 0.3, n_items)[None, :] + p @ q.T
    cells = rng.choice(n_users * n_items, size=int(density * n_users * n_items), replace=False)
    user, item = cells // n_items, cells % n_items
    rating = full[user, item] + rng.normal(0, noise, cells.size)
    return user, item, rating, full


def normal_equations_biases(user, item, rating, n_users, n_items, config: LatentConfig) -> Params:
    """Bias-only optimum from the dense normal equations (AᵀA + D) θ = Aᵀr, A = [1, one-hot user, one-hot
    item] (N × (1 + n_users + n_items)), D = diag(0, ρᵇ_u, ρᵇ_i): written straight from the objective."""
    n = rating.shape[0]
    a = np.zeros((n, 1 + n_users + n_items))
    a[:, 0] = 1.0
    a[np.arange(n), 1 + user] = 1.0
    a[np.arange(n), 1 + n_users + item] = 1.0
    rb_u, _ = core.ridges(np.bincount(user, minlength=n_users), n, config)
    rb_i, _ = core.ridges(np.bincount(item, minlength=n_items), n, config)
    d = np.diag(np.concatenate([[0.0], rb_u, rb_i]))
    theta = np.linalg.lstsq(a.T @ a + d, a.T @ rating, rcond=None)[0]
    return Params(
        theta[0], theta[1 : 1 + n_users], theta[1 + n_users :], np.zeros((n_users, 0)), np.zeros((n_items, 0))
    )


# --- objective and gradient ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
def test_gradient_matches_finite_differences(config):
    user, item, rating, nu, ni = random_ratings()
    cfg = LatentConfig(**{**config.to_dict(), "n_factors": 3})
    p = init_params(nu, ni, 3, rating.mean(), 0.5, np.random.default_rng(1))
    p.bu[:] = np.random.default_rng(2).normal(0, 0.3, nu)
    p.bi[:] = np.random.default_rng(3).normal(0, 0.3, ni)
    _, grad = objective_and_gradient(p, user, item, rating, nu, ni, cfg)
    theta, g = p.pack(), grad.pack()
    numeric = np.empty_like(theta)
    h = 1e-6
    for j in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numeric[j] = (
            objective(Params.unpack(up, nu, ni, 3), user, item, rating, nu, ni, cfg)
            - objective(Params.unpack(down, nu, ni, 3), user, item, rating, nu, ni, cfg)
        ) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_objective_is_the_course_formula_with_uniform_weighting():
    user, item, rating, nu, ni = random_ratings()
    lam = 0.07
    cfg = LatentConfig(n_factors=2, weighting="uniform", reg_bias=lam, reg_factors=lam)
    p = init_params(nu, ni, 2, 3.0, 0.4, np.random.default_rng(0))
    p.bu[:] = 0.1
    f = p.alpha + p.bu[user] + p.bi[item] + np.sum(p.pu[user] * p.qi[item], axis=1)
    expected = np.mean((f - rating) ** 2) + lam * (
        np.sum(p.bu**2) + np.sum(p.bi**2) + np.sum(p.pu**2) + np.sum(p.qi**2)
    )
    assert objective(p, user, item, rating, nu, ni, cfg) == pytest.approx(expected, rel=1e-12)


# --- ALS ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
def test_als_never_increases_the_objective_and_each_block_is_an_exact_minimiser(config):
    user, item, rating, nu, ni = random_ratings(n=70)
    k = 5  # K + 1 = 6: users with more ratings use the primal solve, the others the dual one
    cfg = LatentConfig(**{**config.to_dict(), "n_factors": k, "init_scale": 0.5})
    prob = core._Problem(user, item, rating, nu, ni, cfg)
    sides = (core._Side(user, item, nu, ni, k), core._Side(item, user, ni, nu, k))
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

    als_sweeps(prob, p, sides, cfg, 8, callback=check)
    steps = np.diff(values)
    assert len(values) == 1 + 8 * 4
    assert np.all(steps <= 1e-12 * values[0]), steps.max()
    assert values[-1] < 0.8 * values[0]


def test_chunked_gram_products_give_the_same_solution(monkeypatch):
    user, item, rating, nu, ni = random_ratings(n=70)
    cfg = LatentConfig(n_factors=2, dtype="float64", init_scale=0.3, max_sweeps=5)
    m1, _ = fit_als(user, item, rating, nu, ni, 1, 5, cfg)
    monkeypatch.setattr(core, "gram_chunk", lambda k: 2)  # sums XᵀX over several 2-row chunks
    m2, _ = fit_als(user, item, rating, nu, ni, 1, 5, cfg)
    np.testing.assert_allclose(m1.user_factors, m2.user_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m1.item_bias, m2.item_bias, rtol=1e-5, atol=1e-6)


def test_als_converges_to_a_stationary_point_that_lbfgs_cannot_improve():
    user, item, rating, nu, ni = random_ratings(n=70)
    cfg = LatentConfig(n_factors=2, weighting="count", reg_bias=0.2, reg_factors=0.3, dtype="float64", init_scale=0.3)
    model, info = fit_als(user, item, rating, nu, ni, 1, 5, cfg, n_sweeps=400, track_objective=True)
    p = Params.from_model(model)
    value, grad = objective_and_gradient(p, user, item, rating, nu, ni, cfg)
    assert np.abs(grad.pack()).max() < 1e-5
    _, lb = fit_lbfgs(user, item, rating, nu, ni, 1, 5, cfg, init=p)
    # the stored model is float32; L-BFGS may only recover that rounding, nothing more
    assert lb.final_objective >= value - 1e-6


def test_lbfgs_and_als_reach_the_same_objective_from_the_same_start():
    user, item, rating, _ = planted(n_users=40, n_items=30, k=2, density=0.6, seed=3)
    cfg = LatentConfig(
        n_factors=2, weighting="uniform", reg_bias=5e-3, reg_factors=1e-2, init_scale=0.3, dtype="float64"
    )
    als, ai = fit_als(user, item, rating, 40, 30, -10, 10, cfg, n_sweeps=100, track_objective=True)
    lb, li = fit_lbfgs(user, item, rating, 40, 30, -10, 10, cfg, maxiter=1000)
    assert li.final_objective == pytest.approx(ai.objective[-1], rel=1e-6)
    pa = als.predict(user, item).rating
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
    model, info = fit_als(user[tr], item[tr], rating[tr], 150, 120, -100, 100, cfg, validation=val)
    pred = model.predict(user[held], item[held]).rating
    truth = full[user[held], item[held]]
    assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.1  # the noise is 0.1 per rating
    bias = fit_bias(user[tr], item[tr], rating[tr], 150, 120, -100, 100, cfg)
    assert np.sqrt(np.mean((bias.predict(user[held], item[held]).rating - truth) ** 2)) > 0.5
    # L-BFGS on the same objective recovers it too
    lb, _ = fit_lbfgs(user[tr], item[tr], rating[tr], 150, 120, -100, 100, cfg, maxiter=400)
    assert np.sqrt(np.mean((lb.predict(user[held], item[held]).rating - truth) ** 2)) < 0.1


def test_same_seed_same_model_other_seed_other_model():
    user, item, rating, nu, ni = random_ratings()
    cfg = LatentConfig(n_factors=3, init_scale=0.2, max_sweeps=4)
    a, _ = fit_als(user, item, rating, nu, ni, 1, 5, cfg)
    b, _ = fit_als(user, item, rating, nu, ni, 1, 5, cfg)
    c, _ = fit_als(user, item, rating, nu, ni, 1, 5, LatentConfig(**{**cfg.to_dict(), "seed": 1}))
    for name in ("user_bias", "item_bias", "user_factors", "item_factors"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.user_factors, c.user_factors)
    la, _ = fit_lbfgs(user, item, rating, nu, ni, 1, 5, cfg, maxiter=20)
    lb, _ = fit_lbfgs(user, item, rating, nu, ni, 1, 5, cfg, maxiter=20)
    np.testing.assert_array_equal(la.item_factors, lb.item_factors)


def test_restarts_keep_the_best_validation_run():
    user, item, rating, nu, ni = random_ratings(n=70)
    val = (user[:10], item[:10], rating[:10])
    cfg = LatentConfig(n_factors=2, init_scale=0.3, max_sweeps=5, restarts=3)
    _, info = fit_als(user[10:], item[10:], rating[10:], nu, ni, 1, 5, cfg, validation=val)
    singles = []
    rng = np.random.default_rng(cfg.seed)
    prob = core._Problem(user[10:], item[10:], rating[10:], nu, ni, cfg)
    sides = (core._Side(user[10:], item[10:], nu, ni, 2), core._Side(item[10:], user[10:], ni, nu, 2))
    for _ in range(3):
        p0 = init_params(nu, ni, 2, rating[10:].mean(), 0.3, rng)
        _, i = als_sweeps(prob, p0, sides, cfg, 5, tuple(np.asarray(v) for v in val), 1, 5)
        singles.append(i.best_validation_rmse)
    assert info.best_validation_rmse == pytest.approx(min(singles))
    assert info.restart == int(np.argmin(singles))


def test_early_stopping_returns_the_best_sweep():
    user, item, rating, full = planted(n_users=60, n_items=50, density=0.3, noise=0.8, seed=2)
    val = (user[:200], item[:200], rating[:200])
    cfg = LatentConfig(
        n_factors=8, weighting="uniform", reg_bias=3e-3, reg_factors=3e-3, init_scale=0.1, max_sweeps=25, patience=2
    )
    model, info = fit_als(user[200:], item[200:], rating[200:], 60, 50, -100, 100, cfg, validation=val)
    assert info.best_validation_rmse == pytest.approx(min(info.validation_rmse))
    assert info.validation_rmse[info.best_sweep - 1] == info.best_validation_rmse
    assert 0 < info.best_sweep < info.sweeps < cfg.max_sweeps  # it improved, then overfitted and stopped
    assert info.sweeps - info.best_sweep == cfg.patience
    got = np.sqrt(np.mean((model.predict(*val[:2]).rating - val[2]) ** 2))
    assert got == pytest.approx(info.best_validation_rmse, rel=1e-5)


# --- bias-only closed form ----------------------------------------------------------------------------------


def test_bias_only_matches_the_hand_derived_optimum():
    # Two users, one item, ratings 5 and 3, course objective with λ_b = 0.5 (ρ = N·λ = 1). α is free, so
    # β_item = 0; ∂/∂β_u: (α + β_u − R_u) + ρβ_u = 0 gives β_u = (R_u − α)/(1 + ρ); ∂/∂α: Σ(α + β_u − R_u) = 0
    # gives α = mean(R) = 4, so β = ±1/(1 + ρ) = ±0.5.
    user, item, rating = np.array([0, 1]), np.array([0, 0]), np.array([5.0, 3.0])
    cfg = LatentConfig(n_factors=0, weighting="uniform", reg_bias=0.5)
    m = fit_bias(user, item, rating, 2, 1, 1, 5, cfg)
    assert m.global_mean == pytest.approx(4.0, abs=1e-9)
    np.testing.assert_allclose(m.user_bias, [0.5, -0.5], atol=1e-7)
    np.testing.assert_allclose(m.item_bias, [0.0], atol=1e-7)
    np.testing.assert_allclose(m.predict(user, item).rating, [4.5, 3.5], atol=1e-6)


@pytest.mark.parametrize("config", WEIGHTINGS, ids=["uniform", "count"])
def test_bias_only_solves_the_normal_equations(config):
    user, item, rating, nu, ni = random_ratings()
    cfg = LatentConfig(**{**config.to_dict(), "n_factors": 0})
    ref = normal_equations_biases(user, item, rating, nu, ni, cfg)
    m = fit_bias(user, item, rating, nu, ni, 1, 5, cfg)
    assert m.global_mean == pytest.approx(ref.alpha, abs=1e-7)
    np.testing.assert_allclose(m.user_bias, ref.bu, atol=1e-6)
    np.testing.assert_allclose(m.item_bias, ref.bi, atol=1e-6)
    # the other two trainers reach the same optimum with K = 0
    lb, _ = fit_lbfgs(user, item, rating, nu, ni, 1, 5, cfg)
    np.testing.assert_allclose(lb.user_bias, ref.bu, atol=1e-4)
    als, _ = fit_als(user, item, rating, nu, ni, 1, 5, cfg, n_sweeps=3000)
    np.testing.assert_allclose(als.item_bias, ref.bi, atol=1e-4)


def test_bias_model_recommends_by_item_bias():
    user, item, rating, nu, ni = random_ratings()
    m = fit_bias(user, item, rating, nu, ni, 1, 5, LatentConfig(n_factors=0, reg_bias=0.05))
    rec = m.recommend(0, k=3, exclude=item[user == 0])
    candidates = np.setdiff1d(np.flatnonzero(m.item_count > 0), item[user == 0])
    expected = candidates[np.lexsort((candidates, -m.item_bias[candidates]))][:3]
    np.testing.assert_array_equal(rec.items, expected)


def test_mean_model_is_the_mean():
    user, item, rating, nu, ni = random_ratings()
    m = fit_mean(user, item, rating, nu, ni, 1, 5)
    assert m.kind == "mean"
    np.testing.assert_allclose(m.predict(user, item).rating, np.full(user.size, rating.mean()), rtol=1e-6)


# --- predictions and fallbacks ------------------------------------------------------------------------------


def tiny_model(k=2) -> RatingModel:
    rng = np.random.default_rng(0)
    return RatingModel(
        global_mean=3.5,
        user_bias=np.array([0.5, -0.5, 0.2, 9.0], np.float32),
        item_bias=np.array([0.3, -0.3, 0.0, 0.1, 7.0], np.float32),
        user_factors=rng.normal(0, 1, (4, k)).astype(np.float32),
        item_factors=rng.normal(0, 1, (5, k)).astype(np.float32),
        user_count=np.array([3, 2, 4, 0], np.int32),
        item_count=np.array([2, 3, 1, 3, 0], np.int32),
        popular_items=np.array([1, 3, 0, 2], np.int32),
        low=1.0,
        high=5.0,
    )


def test_predictions_are_clipped_and_match_the_formula():
    m = tiny_model()
    users, items = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 2, 3, 1])
    raw = 3.5 + m.user_bias[users] + m.item_bias[items] + np.sum(m.user_factors[users] * m.item_factors[items], axis=1)
    p = m.predict(users, items)
    np.testing.assert_allclose(p.rating, np.clip(raw, 1, 5), rtol=1e-6)
    assert np.all(p.fallback == 0)
    assert np.all((p.rating >= 1) & (p.rating <= 5))
    # batch equals one by one
    for u, i, r in zip(users, items, p.rating, strict=True):
        assert m.predict_one(int(u), int(i)) == (pytest.approx(r), None)


def test_every_fallback():
    m = tiny_model()
    # unknown user (-1, or index 3 which had no training rating) → α + β_i
    assert m.predict_one(-1, 1) == (pytest.approx(3.2), "item_bias")
    assert m.predict_one(3, 1) == (pytest.approx(3.2), "item_bias")
    # unknown item (-1, or index 4 without training ratings) → α + β_u
    assert m.predict_one(0, -1) == (pytest.approx(4.0), "user_bias")
    assert m.predict_one(1, 4) == (pytest.approx(3.0), "user_bias")
    # neither → α
    assert m.predict_one(-1, -1) == (pytest.approx(3.5), "global_mean")
    assert m.predict_one(3, 4) == (pytest.approx(3.5), "global_mean")
    p = m.predict(np.array([0, -1, 0, -1]), np.array([0, 0, -1, -1]))
    assert [FALLBACKS[c] for c in p.fallback] == [None, "item_bias", "user_bias", "global_mean"]


def test_bad_indices_are_refused():
    m = tiny_model()
    with pytest.raises(NotFound):
        m.predict(np.array([4]), np.array([0]))
    with pytest.raises(NotFound):
        m.predict(np.array([0]), np.array([-2]))
    with pytest.raises(InvalidInput):
        m.predict(np.array([0.5]), np.array([0]))
    with pytest.raises(InvalidInput):
        m.predict(np.array([0, 1]), np.array([0]))
    with pytest.raises(InvalidInput):
        m.recommend(0, k=0)


# --- top-N --------------------------------------------------------------------------------------------------


def test_recommendations_exclude_reviewed_items_and_match_brute_force():
    user, item, rating, full = planted(n_users=30, n_items=40, density=0.3, seed=5)
    model, _ = fit_als(user, item, rating, 30, 40, 1, 5, LatentConfig(n_factors=3, init_scale=0.1, max_sweeps=5))
    csr = reviewed_matrix(user, item, 30, 40)
    for u in range(30):
        reviewed = csr.indices[csr.indptr[u] : csr.indptr[u + 1]]
        assert sorted(reviewed) == sorted(item[user == u])
        rec = model.recommend(u, k=7, exclude=reviewed)
        assert rec.fallback is None
        assert not np.isin(rec.items, reviewed).any()
        candidates = np.setdiff1d(np.flatnonzero(model.item_count > 0), reviewed)
        scores = model.raw_scores(np.full(candidates.size, u), candidates)
        order = candidates[np.lexsort((candidates, -scores))][:7]
        np.testing.assert_array_equal(rec.items, order)
        np.testing.assert_allclose(rec.ratings, model.predict(np.full(7, u), rec.items).rating, rtol=1e-6)
        assert np.all(np.diff(model.raw_scores(np.full(7, u), rec.items)) <= 1e-6)


def test_recommend_more_than_there_are():
    m = tiny_model()
    rec = m.recommend(0, k=50, exclude=np.array([0, 1]))
    # items 2 and 3 are left: 4 has no training ratings
    assert sorted(rec.items.tolist()) == [2, 3]


def test_unknown_user_gets_popular_well_rated_items():
    m = tiny_model()
    rec = m.recommend(-1, k=3)
    assert rec.fallback == POPULAR
    np.testing.assert_array_equal(rec.items, [1, 3, 0])
    np.testing.assert_allclose(rec.ratings, np.clip(3.5 + m.item_bias[[1, 3, 0]], 1, 5), rtol=1e-6)
    assert m.recommend(3, k=2, exclude=np.array([3])).items.tolist() == [1, 0]  # a user without training data


def test_popular_items_rule():
    # item 0: 3 ratings, mean 4.33 (well rated); item 1: 4 ratings, mean 3 (not); item 2: 2 ratings, mean 5;
    # item 3: 1 rating of 4; item 4: none
    item = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])
    rating = np.array([5, 4, 4, 3, 3, 3, 3, 5, 5, 4], dtype=float)
    order = popular_items(item, rating, 5, 1, 5)
    assert order.tolist() == [0, 2, 3, 1]
    assert popular_items(item, rating, 5, 1, 5, threshold=4.5).tolist() == [2, 1, 0, 3]


def test_bad_configuration_is_refused():
    with pytest.raises(InvalidInput):
        LatentConfig(n_factors=-1)
    with pytest.raises(InvalidInput):
        LatentConfig(weighting="log")
    user, item, rating, nu, ni = random_ratings()
    with pytest.raises(InvalidInput):
        fit_als(user, item, rating, nu, ni, 1, 5, LatentConfig(n_factors=2, reg_factors=0.0))
    with pytest.raises(InvalidInput):
        fit_als(user, item, rating, nu - 5, ni, 1, 5)
    with pytest.raises(InvalidInput):
        fit_mean(user[:0], item[:0], rating[:0], nu, ni, 1, 5)
