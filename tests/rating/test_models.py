"""The served rating models: the contract for each, and hand-built cases of the formulas, fallbacks and top-N."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.services.rating.models import REGISTRY, BiasModel, LatentModel, MeanModel, RatingModel, TextAwareModel
from chorus.services.rating.models.base import FALLBACKS, POPULAR
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.kinds import RATING_MODELS, resolve
from chorus.shared.data.matrix import user_item_matrix
from chorus.training.rating.als import fit_als
from chorus.training.rating.baseline import fit_bias, fit_mean
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.lbfgs import fit_lbfgs
from tests.rating.data import planted
from tests.rating.model_contract import Fit, RatingModelContract, every_rating_model
from tests.rating.test_text_aware import fit_with_planted_text

SMALL = LatentConfig(n_factors=3, init_scale=0.1, max_sweeps=5)

#: Contract fits beside the spec's ``fitter``, for the kinds the rating selection fits with a configuration (small
#: ones here) or with review text.
FITS: dict[str, list[Fit]] = {
    "latent": [lambda data: fit_als(data, SMALL)[0], lambda data: fit_lbfgs(data, SMALL, maxiter=50)[0]],
    "text_aware": [fit_with_planted_text],
}


@pytest.mark.parametrize("model", every_rating_model(FITS), indirect=True, scope="class")
class TestEveryRatingModel(RatingModelContract):
    pass


def test_the_registry_is_the_spec_table():
    assert list(REGISTRY) == [spec.name for spec in RATING_MODELS]
    assert all(RatingModel.class_of(spec) is REGISTRY[spec.name] for spec in RATING_MODELS)
    assert {REGISTRY[k] for k in ("mean", "bias", "latent", "text_aware")} == {
        MeanModel,
        BiasModel,
        LatentModel,
        TextAwareModel,
    }
    fitters = {spec.name: resolve(spec.fitter) for spec in RATING_MODELS if spec.fitter}
    assert fitters["mean"] is fit_mean and fitters["bias"] is fit_bias


# --- hand-built models --------------------------------------------------------------------------------------


def baseline(**extra):
    """The arrays of a tiny model: 4 users (the last without training ratings), 5 items (the last alike)."""
    return {
        "global_mean": 3.5,
        "user_bias": np.array([0.5, -0.5, 0.2, 9.0], np.float32),
        "item_bias": np.array([0.3, -0.3, 0.0, 0.1, 7.0], np.float32),
        "user_count": np.array([3, 2, 4, 0], np.int32),
        "item_count": np.array([2, 3, 1, 3, 0], np.int32),
        "popular_items": np.array([1, 3, 0, 2], np.int32),
        "low": 1.0,
        "high": 5.0,
    } | extra


def tiny_model(k=2) -> LatentModel:
    rng = np.random.default_rng(0)
    factors = {
        "user_factors": rng.normal(0, 1, (4, k)).astype(np.float32),
        "item_factors": rng.normal(0, 1, (5, k)).astype(np.float32),
    }
    return LatentModel(**baseline(**factors))


def one(model, user: int, item: int) -> tuple[object, object]:
    p = model.predict(np.array([user]), np.array([item]))
    return float(p.rating[0]), FALLBACKS[int(p.fallback[0])]


def test_predictions_are_clipped_and_match_the_formula():
    m = tiny_model()
    users, items = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 2, 3, 1])
    raw = 3.5 + m.user_bias[users] + m.item_bias[items] + np.sum(m.user_factors[users] * m.item_factors[items], axis=1)
    p = m.predict(users, items)
    np.testing.assert_allclose(p.rating, np.clip(raw, 1, 5), rtol=1e-6)
    assert np.all(p.fallback == 0)
    assert np.all((p.rating >= 1) & (p.rating <= 5))


def test_bias_and_mean_models_score_their_formulas():
    users, items = np.array([0, 1, 2, 2]), np.array([0, 1, 2, 3])
    bias = BiasModel(**baseline())
    np.testing.assert_allclose(bias.predict(users, items).rating, 3.5 + bias.user_bias[users] + bias.item_bias[items])
    assert bias.predict(np.array([0]), np.array([0])).rating[0] == pytest.approx(4.3)
    mean = MeanModel(**baseline(user_bias=np.zeros(4, np.float32), item_bias=np.zeros(5, np.float32)))
    np.testing.assert_array_equal(mean.predict(users, items).rating, np.full(4, 3.5))


def test_every_fallback():
    m = tiny_model()
    # unknown user (-1, or index 3 which had no training rating) → α + β_i
    assert one(m, -1, 1) == (pytest.approx(3.2), "item_bias")
    assert one(m, 3, 1) == (pytest.approx(3.2), "item_bias")
    # unknown item (-1, or index 4 without training ratings) → α + β_u
    assert one(m, 0, -1) == (pytest.approx(4.0), "user_bias")
    assert one(m, 1, 4) == (pytest.approx(3.0), "user_bias")
    # neither → α
    assert one(m, -1, -1) == (pytest.approx(3.5), "global_mean")
    assert one(m, 3, 4) == (pytest.approx(3.5), "global_mean")
    p = m.predict(np.array([0, -1, 0, -1]), np.array([0, 0, -1, -1]))
    assert [FALLBACKS[c] for c in p.fallback] == [None, "item_bias", "user_bias", "global_mean"]


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


def test_arrays_that_do_not_fit_together_are_refused():
    with pytest.raises(InvalidInput, match="shapes"):
        BiasModel(**baseline(user_count=np.zeros(3, np.int32)))
    with pytest.raises(InvalidInput, match="shapes"):
        BiasModel(**baseline(popular_items=np.array([5], np.int32)))
    with pytest.raises(InvalidInput, match="shapes"):
        LatentModel(**baseline(user_factors=np.zeros((4, 2), np.float32), item_factors=np.zeros((5, 3), np.float32)))


# --- fitted models ------------------------------------------------------------------------------------------


def test_recommendations_exclude_reviewed_items_and_match_brute_force():
    user, item, rating, full = planted(n_users=30, n_items=40, density=0.3, seed=5)
    model, _ = fit_als(Trainset(user, item, rating, 30, 40, 1, 5), SMALL)
    assert isinstance(model, LatentModel)
    csr = user_item_matrix(user, item, 30, 40, dtype=np.int8)
    for u in range(30):
        reviewed = csr.indices[csr.indptr[u] : csr.indptr[u + 1]]
        assert sorted(reviewed) == sorted(item[user == u])
        rec = model.recommend(u, k=7, exclude=reviewed)
        assert rec.fallback is None
        assert not np.isin(rec.items, reviewed).any()
        candidates = np.setdiff1d(np.flatnonzero(model.item_count > 0), reviewed)
        # f(u, i) straight from the formula, in float64
        scores = (
            model.global_mean
            + np.float64(model.user_bias[u])
            + model.item_bias[candidates]
            + model.item_factors[candidates].astype(np.float64) @ model.user_factors[u]
        )
        order = candidates[np.lexsort((candidates, -scores))][:7]
        np.testing.assert_array_equal(rec.items, order)
        np.testing.assert_allclose(rec.ratings, model.predict(np.full(7, u), rec.items).rating, rtol=1e-6)
        assert np.all(np.diff(model.score(np.full(7, u), rec.items)) <= 1e-6)
