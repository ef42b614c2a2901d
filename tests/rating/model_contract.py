"""The contract every rating model keeps (as implicit's ``tests/recommender_base_test.py``), run on every kind of
the spec table, :data:`chorus.shared.contract.kinds.RATING_MODELS`::

    @pytest.mark.parametrize("model", every_rating_model(FITS), indirect=True, scope="class")
    class TestEveryRatingModel(RatingModelContract):
        pass

Each kind is fitted by its spec's ``fitter`` where it names one and by each function ``FITS`` lists for it (a
kind the rating selection fits with its own configuration has no such ``fitter``); a kind with neither fails the
parametrisation, so no kind is registered without a contract. A case that needs more than a ``Trainset`` can also
subclass the contract in two lines::

    class TestMyModel(RatingModelContract):
        fit = staticmethod(fit_my_model)  # Trainset -> RatingModel

The model is fitted on planted star ratings where the last user and the last item have no rating, so index -1 and
a row the model never saw in training are both unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytest

from chorus.services.rating.models import REGISTRY, RatingModel
from chorus.services.rating.models.base import FALLBACKS, GLOBAL_MEAN, ITEM_BIAS, NO_FALLBACK, POPULAR, USER_BIAS
from chorus.services.rating.persistence import load_component, write_component
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract import kinds
from chorus.shared.contract.errors import InvalidInput, NotFound
from chorus.training.rating.fitting import Trainset
from tests.rating.data import planted

Fit = Callable[[Trainset], RatingModel]

N_USERS, N_ITEMS, LOW, HIGH = 30, 25, 1.0, 5.0


def contract_ratings() -> Trainset:
    """About 280 distinct (user, item) star ratings 1..5; user N_USERS - 1 and item N_ITEMS - 1 have none."""
    user, item, rating, _ = planted(n_users=N_USERS - 1, n_items=N_ITEMS - 1, k=2, density=0.4, noise=0.3, seed=11)
    return Trainset(user, item, np.clip(np.rint(rating + 0.5), LOW, HIGH), N_USERS, N_ITEMS, LOW, HIGH)


def all_pairs(model: RatingModel) -> tuple[np.ndarray, np.ndarray]:
    """Every (user, item) pair, -1 included on both sides."""
    users = np.arange(-1, model.n_users)
    items = np.arange(-1, model.n_items)
    return np.repeat(users, items.size), np.tile(items, users.size)


def reviewed(data: Trainset, u: int) -> np.ndarray:
    items: np.ndarray = data.item[data.user == u]
    return items


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same_model(a: RatingModel, b: RatingModel, data) -> None:
    """``a`` and ``b`` are the same model to the bit: kind, arrays, scale, every prediction and recommendation."""
    assert type(a) is type(b) and a.kind == b.kind and (a.low, a.high) == (b.low, b.high)
    arrays_a, arrays_b = a.to_arrays(), b.to_arrays()
    assert list(arrays_a) == list(arrays_b)
    for name in arrays_a:
        assert same_bits(np.asarray(arrays_a[name]), np.asarray(arrays_b[name])), name
    users, items = all_pairs(a)
    pa, pb = a.predict(users, items), b.predict(users, items)
    assert same_bits(pa.rating, pb.rating) and same_bits(pa.fallback, pb.fallback)
    for u in range(-1, a.n_users):
        ra, rb = a.recommend(u, 7, reviewed(data, u)), b.recommend(u, 7, reviewed(data, u))
        assert same_bits(ra.items, rb.items) and same_bits(ra.ratings, rb.ratings) and ra.fallback == rb.fallback


def every_rating_model(fits: Mapping[str, Sequence[Fit]]) -> list[object]:
    """The cases of every rating model of the spec table: its spec's ``fitter``, if any, then ``fits[kind]``.

    Raises
    ------
    LookupError : a kind with no way to be fitted for the contract.
    """
    cases: list[object] = []
    for spec in kinds.RATING_MODELS:
        found = ([kinds.resolve(spec.fitter)] if spec.fitter else []) + list(fits.get(spec.name, ()))
        if not found:
            raise LookupError(f"rating model {spec.name!r} has no fitter in its spec and no contract case")
        cases += [pytest.param(fit, id=f"{spec.name}-{n}") for n, fit in enumerate(found)]
    return cases


class RatingModelContract:
    """Checks every :class:`~chorus.services.rating.models.base.RatingModel` passes, on the fit a subclass
    parametrises ``model`` with, or sets as :attr:`fit` (see the module docstring)."""

    fit: Fit
    """``fit(trainset)`` -> the fitted model, for a subclass that does not parametrise ``model``."""

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls):
        return contract_ratings()

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, request, data) -> RatingModel:
        fit = getattr(request, "param", None) or cls.fit
        return fit(data)

    def test_the_model_is_its_specs_class_and_registered(self, model):
        assert isinstance(model, RatingModel)
        spec = kinds.find(kinds.RATING_MODELS, model.kind)
        assert RatingModel.class_of(spec) is type(model) and REGISTRY[model.kind] is type(model)
        assert (model.n_users, model.n_items, model.low, model.high) == (N_USERS, N_ITEMS, LOW, HIGH)

    def test_batch_equals_single(self, model):
        users, items = all_pairs(model)
        batch = model.predict(users, items)
        assert batch.rating.dtype == np.float64 and batch.fallback.dtype == np.int8
        for j in range(users.size):
            one = model.predict(users[j : j + 1], items[j : j + 1])
            assert same_bits(one.rating, batch.rating[j : j + 1]) and one.fallback[0] == batch.fallback[j]

    def test_known_pairs_are_the_clipped_score(self, model, data):
        p = model.predict(data.user, data.item)
        assert np.all(p.fallback == NO_FALLBACK)
        expected = np.clip(model.score(data.user, data.item), LOW, HIGH)
        assert same_bits(p.rating, expected.astype(np.float64))

    def test_scores_are_finite_and_within_the_scale(self, model, data):
        p = model.predict(*all_pairs(model))
        assert np.all(np.isfinite(p.rating)) and np.all((p.rating >= LOW) & (p.rating <= HIGH))
        for u in range(-1, model.n_users):
            rec = model.recommend(u, model.n_items)
            assert np.all(np.isfinite(rec.ratings)) and np.all((rec.ratings >= LOW) & (rec.ratings <= HIGH))

    def test_unknown_users_and_items_fall_back_as_documented(self, model):
        a, bu, bi = model.global_mean, model.user_bias.astype(np.float64), model.item_bias.astype(np.float64)
        ghost_user, ghost_item = model.n_users - 1, model.n_items - 1  # never rated in training
        assert model.user_count[ghost_user] == 0 and model.item_count[ghost_item] == 0
        for unknown_user in (-1, ghost_user):
            p = model.predict(np.full(3, unknown_user), np.array([0, 1, 2]))
            assert np.all(p.fallback == ITEM_BIAS)
            np.testing.assert_allclose(p.rating, np.clip(a + bi[:3], LOW, HIGH), rtol=1e-6)
        for unknown_item in (-1, ghost_item):
            p = model.predict(np.array([0, 1, 2]), np.full(3, unknown_item))
            assert np.all(p.fallback == USER_BIAS)
            np.testing.assert_allclose(p.rating, np.clip(a + bu[:3], LOW, HIGH), rtol=1e-6)
        p = model.predict(np.array([-1, ghost_user, -1, ghost_user]), np.array([-1, -1, ghost_item, ghost_item]))
        assert np.all(p.fallback == GLOBAL_MEAN)
        np.testing.assert_allclose(p.rating, np.clip(a, LOW, HIGH), rtol=1e-6)
        assert [FALLBACKS[c] for c in (NO_FALLBACK, ITEM_BIAS, USER_BIAS, GLOBAL_MEAN)] == [
            None,
            "item_bias",
            "user_bias",
            "global_mean",
        ]

    def test_unknown_users_are_recommended_popular_items(self, model):
        for unknown_user in (-1, model.n_users - 1):
            rec = model.recommend(unknown_user, 5)
            assert rec.fallback == POPULAR
            np.testing.assert_array_equal(rec.items, model.popular_items[:5])
            expected = np.clip(model.global_mean + model.item_bias[rec.items].astype(np.float64), LOW, HIGH)
            np.testing.assert_allclose(rec.ratings, expected, rtol=1e-12)
            excluded = model.popular_items[[0, 2]]
            rec = model.recommend(unknown_user, 5, exclude=excluded)
            pop = model.popular_items
            np.testing.assert_array_equal(rec.items, pop[~np.isin(pop, excluded)][:5])

    def test_exclusions_are_honoured_and_the_ranking_is_by_score(self, model, data):
        for u in range(model.n_users - 1):
            seen = reviewed(data, u)
            rec = model.recommend(u, model.n_items + 10, exclude=seen)
            assert rec.fallback is None
            candidates = np.setdiff1d(np.flatnonzero(model.item_count > 0), seen)
            scores = model.score_items(u)
            expected = candidates[np.lexsort((candidates, -scores[candidates]))]
            np.testing.assert_array_equal(rec.items, expected)  # all of them: k beyond the catalogue
            assert not np.isin(rec.items, seen).any()
            np.testing.assert_allclose(rec.ratings, model.predict(np.full(rec.items.size, u), rec.items).rating, 1e-6)
            np.testing.assert_allclose(scores, model.score(np.full(model.n_items, u), np.arange(model.n_items)), 1e-6)

    def test_k_bounds(self, model, data):
        seen = reviewed(data, 0)
        everything = model.recommend(0, 10_000, exclude=seen)
        eligible = np.setdiff1d(np.flatnonzero(model.item_count > 0), seen)
        assert 0 < everything.items.size == eligible.size
        best = model.recommend(0, 1, exclude=seen)
        assert best.items.tolist() == everything.items[:1].tolist()
        assert same_bits(model.recommend(0, 4, exclude=seen).items, everything.items[:4])
        assert model.recommend(-1, 10_000).items.size == model.popular_items.size
        for k in (0, -1):
            with pytest.raises(InvalidInput):
                model.recommend(0, k)
            with pytest.raises(InvalidInput):
                model.recommend(-1, k)

    def test_bad_indices_are_refused(self, model):
        with pytest.raises(NotFound):
            model.predict(np.array([model.n_users]), np.array([0]))
        with pytest.raises(NotFound):
            model.predict(np.array([0]), np.array([-2]))
        with pytest.raises(NotFound):
            model.recommend(model.n_users)
        with pytest.raises(NotFound):
            model.recommend(0, exclude=np.array([model.n_items]))
        with pytest.raises(InvalidInput):
            model.predict(np.array([0.5]), np.array([0]))
        with pytest.raises(InvalidInput):
            model.predict(np.array([0, 1]), np.array([0]))

    def test_array_round_trip_is_bit_identical(self, model, data):
        meta = json.loads(json.dumps(model.to_meta()))  # what an artifact's manifest can hold
        again = type(model).from_arrays(model.to_arrays(), meta)
        assert again.to_meta() == model.to_meta()
        assert_same_model(model, again, data)

    def test_artifact_round_trip_is_bit_identical(self, model, data, tmp_path):
        with VersionWriter(tmp_path) as writer:
            write_component(writer, model, {})
            writer.commit()
        loaded = load_component(ArtifactStore(tmp_path).open(components=["rating"]))
        assert_same_model(model, loaded, data)
