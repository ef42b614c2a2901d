"""The feature prior of the biases (:mod:`chorus.training.text.prior`): profiles against hand-computed
values, the ridge against a brute-force least-squares reference, the out-of-fold design (no row's own rating in its
own design), the fold-in of the ridge into the biases, and a gain over bias-only on planted data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from chorus.shared.data import holdout_split
from chorus.training.rating.baseline import fit_bias
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params
from chorus.training.text.aware import TextAwareConfig, fit_from_features, text_features
from chorus.training.text.prior import (
    ITEM_COLUMNS,
    PAIR_COLUMNS,
    USER_COLUMNS,
    PriorConfig,
    ReviewColumns,
    StandardRidge,
    choose_ridge,
    fit_biases,
    fit_prior,
    pair_design,
    profiles,
    stacked_rows,
)
from tests.rating.test_text_aware import planted_data, planted_texts


def tiny() -> tuple[Trainset, ReviewColumns]:
    # user 0: 5, 5, 1 (items 0, 1, 2); user 1: 4 (item 0)
    data = Trainset(np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0]), np.array([5.0, 5.0, 1.0, 4.0]), 2, 3, 1, 5)
    sentiment = np.array([4.0, 5.0, 2.0, 4.0])
    tfidf = sp.csr_matrix(np.eye(4))
    return data, ReviewColumns(sentiment, tfidf, np.log1p(np.array([10.0, 20.0, 30.0, 40.0])))


def test_profiles_are_shrunk_means_computed_by_hand():
    data, reviews = tiny()
    params = Params(3.75, np.zeros(2), np.zeros(3), np.zeros((2, 0)), np.zeros((3, 0)))
    config = PriorConfig(pseudo_count=1.0)
    user, item = profiles(data, params, reviews, config)
    assert user.shape == (2, len(USER_COLUMNS)) and item.shape == (3, len(ITEM_COLUMNS))
    col = {name: k for k, name in enumerate(ITEM_COLUMNS)}
    ucol = {name: k for k, name in enumerate(USER_COLUMNS)}
    # user 0: three ratings and one pseudo-rating at the global mean 3.75
    assert user[0, col["log_count"]] == pytest.approx(np.log(4))
    assert user[0, col["mean"]] == pytest.approx((5 + 5 + 1 + 3.75) / 4)
    assert user[0, col["five"]] == pytest.approx((2 + 0.5) / 4)  # global share of fives: 2/4
    assert user[0, col["low"]] == pytest.approx((1 + 0.25) / 4)
    square = (25 + 25 + 1 + (25 + 25 + 1 + 16) / 4) / 4
    assert user[0, col["sd"]] == pytest.approx(np.sqrt(square - ((5 + 5 + 1 + 3.75) / 4) ** 2))
    gap = reviews.sentiment - data.rating  # -1, 0, 1, 0
    assert user[0, col["text_gap"]] == pytest.approx((-1 + 0 + 1 + gap.mean()) / 4)
    assert user[0, col["residual"]] == pytest.approx((1.25 + 1.25 - 2.75 + 0) / 4)  # residual mean is 0
    # item 0: ratings 5 and 4, sentiments 4 and 4; global sentiment mean 3.75
    assert item[0, col["mean"]] == pytest.approx((5 + 4 + 3.75) / 3)
    assert item[0, col["sentiment"]] == pytest.approx((4 + 4 + 3.75) / 3)
    assert item[1, col["log_count"]] == pytest.approx(np.log(2))
    # user 1 rated item 0 only: its items' mean star is item 0's; item 0's reviewers are users 0 and 1
    assert user[1, ucol["items_mean"]] == pytest.approx(item[0, col["mean"]])
    assert user[0, ucol["items_sentiment"]] == pytest.approx(item[:, col["sentiment"]].mean())
    assert item[0, col["users_five"]] == pytest.approx((user[0, ucol["five"]] + user[1, ucol["five"]]) / 2)
    assert item[2, col["users_bias"]] == 0.0  # user 0's bias, zero in these params


def test_pair_design_puts_the_baseline_first():
    data, reviews = tiny()
    params = fit_biases(data, 0.1)
    user, item = profiles(data, params, reviews, PriorConfig())
    x = pair_design(params, user, item, np.array([1, 0]), np.array([2, 0]))
    assert x.shape == (2, len(PAIR_COLUMNS) + len(USER_COLUMNS) + len(ITEM_COLUMNS))
    assert x[0, 0] == pytest.approx(params.alpha + params.bu[1] + params.bi[2])
    assert np.array_equal(x[1, 3 : 3 + len(USER_COLUMNS)], user[0])
    assert np.array_equal(x[1, 3 + len(USER_COLUMNS) :], item[0])


def test_standard_ridge_matches_a_brute_force_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -2.0, 1.0]
    y = x @ [1.0, -0.2, 4.0, 0.5] + rng.normal(size=50)
    alpha = 7.0
    model = StandardRidge.fit(x, y, alpha)
    # reference: least squares on [1, z] with sqrt(alpha)·I rows appended for the slopes only
    z = (x - x.mean(0)) / x.std(0)
    a = np.vstack([np.column_stack([np.ones(50), z]), np.column_stack([np.zeros(4), np.sqrt(alpha) * np.eye(4)])])
    coef = np.linalg.lstsq(a, np.concatenate([y, np.zeros(4)]), rcond=None)[0]
    assert model.intercept == pytest.approx(coef[0]) and np.allclose(model.weights, coef[1:])
    assert np.allclose(model.predict(x), model.offset + x @ model.slopes)


def test_no_row_sees_its_own_rating_in_its_design():
    user, item, rating, nu, ni = planted_data(n=300)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    reviews = ReviewColumns(np.asarray(rating, float), sp.csr_matrix(np.eye(300)), np.zeros(300))
    design, target = stacked_rows(data, reviews, 0.1, PriorConfig(), seed=0)
    changed = rating.copy()
    changed[7] = 1.0 if rating[7] != 1 else 5.0  # another star, same sentiment column: only row 7's rating moves
    design2, target2 = stacked_rows(Trainset(user, item, changed, nu, ni, 1, 5), reviews, 0.1, PriorConfig(), seed=0)
    assert np.array_equal(design[7], design2[7]) and target[7] != target2[7]
    assert not np.array_equal(design, design2)  # the other parts' rows do see it


def test_the_prior_folds_into_the_biases_exactly():
    user, item, rating, nu, ni = planted_data(n=400)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    reviews = ReviewColumns(
        rating + np.random.default_rng(1).normal(0, 0.5, 400), sp.csr_matrix(np.eye(400)), np.zeros(400)
    )
    config = PriorConfig()
    prior = fit_prior(data, reviews, 0.1, config, seed=2)
    design, target = stacked_rows(data, reviews, 0.1, config, seed=2)
    ridge, errors = choose_ridge(design, target, config, seed=2)
    assert ridge == prior.ridge and ridge in config.ridges and set(errors) == set(config.ridges)
    model = StandardRidge.fit(design, target, ridge * data.n / 10_000)
    params = fit_biases(data, 0.1)
    up, ip = profiles(data, params, reviews, config, seed=2)
    users, items = np.repeat(np.arange(nu), ni), np.tile(np.arange(ni), nu)
    expected = params.scores(users, items) + model.predict(pair_design(params, up, ip, users, items))
    assert np.allclose(prior.apply(params).scores(users, items), expected)


def test_on_planted_text_the_prior_beats_bias_only_on_held_out_rows():
    # items whose words tell their quality: the text-predicted item bias and the item's verdict carry it
    rng = np.random.default_rng(5)
    n_users, n_items, n = 150, 60, 1500
    cells = rng.choice(n_users * n_items, size=n, replace=False)
    user, item = cells // n_items, cells % n_items
    quality = rng.normal(0, 0.8, n_items)
    rating = np.clip(np.rint(4.0 + quality[item] + rng.normal(0, 0.9, n)), 1, 5)
    words = np.where(quality > 0.5, "superb", np.where(quality < -0.5, "junk", "okay"))
    texts = [f"{words[i]} {WORD}" for i, WORD in zip(item, rng.choice(["tone", "case", "strap"], n), strict=True)]
    tr, _, te = holdout_split(n, 0, (0.8, 0.0, 0.2))
    data = Trainset(user, item, rating, n_users, n_items, 1, 5)
    fit_on = data.subset(tr)
    bias = fit_bias(fit_on, LatentConfig(n_factors=0, reg_bias=0.1))
    features = text_features(fit_on, [texts[k] for k in tr.tolist()], 0, 0, reg_bias=0.1)
    model = fit_from_features(fit_on, features, TextAwareConfig(0.1, prior=True))

    def mse(m):
        return float(np.mean((m.predict(user[te], item[te]).rating - rating[te]) ** 2))

    assert mse(model) < mse(bias)


def test_a_prior_point_needs_its_prior_and_the_config_is_checked():
    user, item, rating, nu, ni = planted_data(n=300)
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    features = text_features(data, planted_texts(rating), 0)
    with pytest.raises(Exception, match="reg_bias"):
        fit_from_features(data, features, TextAwareConfig(0.1, prior=True))
    with pytest.raises(Exception, match="folds"):
        PriorConfig(folds=1)
    with pytest.raises(Exception, match="profile_ridge"):
        PriorConfig(profile_ridge=0.0)


def test_a_user_or_item_without_reviews_gets_no_offset_so_the_fallbacks_are_the_priors_prediction():
    user, item, rating, nu, ni = planted_data(n=400)
    data = Trainset(user, item, rating, nu + 1, ni + 1, 1, 5)  # the last user and item have no rating
    reviews = ReviewColumns(rating + 0.3, sp.csr_matrix(np.eye(400)), np.zeros(400))
    config = PriorConfig()
    prior = fit_prior(data, reviews, 0.1, config, seed=0)
    assert prior.user_offset[-1] == pytest.approx(0.0, abs=1e-12)
    assert prior.item_offset[-1] == pytest.approx(0.0, abs=1e-12)
    # the prior's prediction for the empty user with item 0, from the ridge on the design, is α' + β'_0
    design, target = stacked_rows(data, reviews, 0.1, config, seed=0)
    model = StandardRidge.fit(design, target, prior.ridge * data.n / 10_000)
    params = fit_biases(data, 0.1)
    up, ip = profiles(data, params, reviews, config, seed=0)
    x = pair_design(params, up, ip, np.array([nu]), np.array([0]))
    moved = prior.apply(params)
    assert moved.alpha + moved.bi[0] == pytest.approx(
        params.scores(np.array([nu]), np.array([0]))[0] + model.predict(x)[0]
    )
