"""The contract every top-N ranker keeps (as implicit's ``tests/recommender_base_test.py``), run on every kind of
the spec table, :data:`chorus.shared.contract.kinds.RANKERS`, served or not::

    @pytest.mark.parametrize("case", every_ranker(MORE), indirect=True, scope="class")
    class TestEveryRanker(RankerContract):
        pass

Each kind is fitted by its spec's trainer with its grid's first point, and with each further point ``MORE`` lists
for it, so a kind added to the table runs the contract with no test written for it, and fails the suite until it
passes. The ranker is fitted on star ratings of ``N_USERS`` users and ``N_ITEMS`` items where the last item has no
review (so it may never be recommended) and the last user none (an empty history). Every ranker documented here
gives an empty history the popular list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from chorus.services.rating.rankers import REGISTRY, Ranker
from chorus.services.rating.rankers.base import BECAUSE, history_row
from chorus.services.rating.rankers.persistence import load_rankers, write_rankers
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract import kinds
from chorus.shared.contract.errors import InvalidInput, NotFound
from chorus.shared.contract.kinds import KindSpec
from chorus.training.ranking.fit import fitter_of
from tests.rating.data import planted

N_USERS, N_ITEMS = 30, 25


def contract_reviews() -> sp.csr_array:
    """About 280 star ratings 1..5 in a (N_USERS, N_ITEMS) CSR array; the last user and the last item have none."""
    user, item, rating, _ = planted(n_users=N_USERS - 1, n_items=N_ITEMS - 1, k=2, density=0.4, noise=0.3, seed=11)
    stars = np.clip(np.rint(rating + 0.5), 1.0, 5.0)
    return sp.csr_array((stars, (user, item)), shape=(N_USERS, N_ITEMS))


def row(reviews: sp.csr_array, u: int) -> sp.csr_array:
    return sp.csr_array(reviews[[u]])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def popular_order(ranker: Ranker) -> np.ndarray:
    """The items with a training review, by review count descending, then index."""
    counts = ranker.item_count
    known = np.flatnonzero(counts > 0)
    return known[np.lexsort((known, -counts[known]))]


def assert_same_ranker(a: Ranker, b: Ranker, reviews: sp.csr_array) -> None:
    """``a`` and ``b`` are the same ranker to the bit: kind, meta, arrays, scores and lists of every row."""
    assert type(a) is type(b) and a.to_meta() == b.to_meta()
    arrays_a, arrays_b = a.to_arrays(), b.to_arrays()
    assert list(arrays_a) == list(arrays_b)
    for name in arrays_a:
        assert same_bits(arrays_a[name], arrays_b[name]), name
    assert same_bits(np.asarray(a.score(reviews)), np.asarray(b.score(reviews)))
    for u in range(reviews.shape[0]):
        ra, rb = a.recommend(row(reviews, u), 7), b.recommend(row(reviews, u), 7)
        assert same_bits(ra.items, rb.items) and same_bits(ra.scores, rb.scores)
        if ra.because is None or rb.because is None:
            assert ra.because is None and rb.because is None
        else:
            assert same_bits(ra.because, rb.because)


@dataclass(frozen=True)
class Case:
    """One run of the contract: a kind's spec and the point its trainer is given."""

    spec: KindSpec
    params: Mapping[str, Any]

    def fit(self, reviews: sp.csr_array) -> Ranker:
        return fitter_of(self.spec)(reviews, dict(self.params))


def every_ranker(more: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[object]:
    """The cases of every ranker of the spec table: its grid's first point, then each point of ``more[kind]``."""
    return [
        pytest.param(Case(spec, params), id=f"{spec.name}-{n}")
        for spec in kinds.RANKERS
        for n, params in enumerate([spec.grid[0], *more.get(spec.name, ())])
    ]


class RankerContract:
    """Checks every :class:`~chorus.services.rating.rankers.base.Ranker` passes, on the :class:`Case` a subclass
    parametrises ``case`` with (see the module docstring)."""

    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, request) -> Case:
        case: Case = request.param
        return case

    @pytest.fixture(scope="class")
    @classmethod
    def reviews(cls) -> sp.csr_array:
        return contract_reviews()

    @pytest.fixture(scope="class")
    @classmethod
    def ranker(cls, case: Case, reviews: sp.csr_array) -> Ranker:
        return case.fit(reviews)

    def test_the_ranker_is_its_specs_class_and_registered_if_served(self, ranker, case):
        assert isinstance(ranker, Ranker) and ranker.kind == case.spec.name
        assert Ranker.class_of(case.spec) is type(ranker)
        assert kinds.find(kinds.RANKERS, ranker.kind) is case.spec
        assert REGISTRY.get(ranker.kind) is (type(ranker) if case.spec.served else None)
        assert ranker.n_items == N_ITEMS and ranker.item_count[-1] == 0
        assert ranker.to_meta()["kind"] == ranker.kind

    def test_fitting_is_deterministic(self, ranker, reviews, case):
        assert_same_ranker(ranker, case.fit(reviews), reviews)

    def test_scores_are_finite(self, ranker, reviews):
        scores = np.asarray(ranker.score(reviews))
        assert scores.shape == (N_USERS, N_ITEMS) and np.all(np.isfinite(scores))

    def test_batch_equals_single(self, ranker, reviews):
        for k in (1, 7, N_ITEMS + 3):
            batch = ranker.recommend_batch(reviews, k)
            assert batch.shape == (N_USERS, k) and batch.dtype == np.int64
            for u in range(N_USERS):
                one = ranker.recommend(row(reviews, u), k).items
                np.testing.assert_array_equal(batch[u, : one.size], one)
                assert np.all(batch[u, one.size :] == -1)

    def test_lists_are_ranked_by_score_without_history_exclusions_or_unreviewed_items(self, ranker, reviews):
        rng = np.random.default_rng(0)
        for u in range(N_USERS - 1):
            history = row(reviews, u)
            exclude = rng.choice(N_ITEMS, size=3, replace=False)
            rec = ranker.recommend(history, N_ITEMS + 10, exclude=exclude)
            allowed = np.setdiff1d(np.flatnonzero(ranker.item_count > 0), np.union1d(history.indices, exclude))
            scores = np.asarray(ranker.score(history), dtype=np.float64)[0]
            np.testing.assert_array_equal(rec.items, allowed[np.lexsort((allowed, -scores[allowed]))])
            assert same_bits(rec.scores, scores[rec.items])
            assert not np.isin(rec.items, history.indices).any() and not np.isin(rec.items, exclude).any()
            assert np.all(ranker.item_count[rec.items] > 0)

    def test_an_empty_history_gets_the_popular_list(self, ranker):
        empty = history_row(np.zeros(0, dtype=np.int64), None, N_ITEMS)
        rec = ranker.recommend(empty, 5)
        np.testing.assert_array_equal(rec.items, popular_order(ranker)[:5])
        assert np.all(np.isfinite(rec.scores))
        assert rec.because is None or np.all(rec.because == -1)
        rec = ranker.recommend(empty, 5, exclude=popular_order(ranker)[:2])
        np.testing.assert_array_equal(rec.items, popular_order(ranker)[2:7])

    def test_a_basket_scores_like_a_user_with_the_same_items(self, ranker, reviews):
        history = row(reviews, 0)
        basket = history_row(history.indices, history.data, N_ITEMS)
        assert same_bits(ranker.recommend(basket, 5).items, ranker.recommend(history, 5).items)
        plain = ranker.recommend(history_row(history.indices[::-1], None, N_ITEMS), 5)
        assert plain.items.size == 5 and not np.isin(plain.items, history.indices).any()

    def test_k_bounds(self, ranker, reviews):
        history = row(reviews, 0)
        everything = ranker.recommend(history, 10_000)
        allowed = np.setdiff1d(np.flatnonzero(ranker.item_count > 0), history.indices)
        assert everything.items.size == allowed.size > 0
        assert ranker.recommend(history, 1).items.tolist() == everything.items[:1].tolist()
        assert same_bits(ranker.recommend(history, 4).items, everything.items[:4])
        for k in (0, -1):
            with pytest.raises(InvalidInput):
                ranker.recommend(history, k)
            with pytest.raises(InvalidInput):
                ranker.recommend_batch(reviews, k)

    def test_bad_histories_and_exclusions_are_refused(self, ranker, reviews):
        with pytest.raises(InvalidInput):
            ranker.recommend(reviews, 5)  # many rows
        with pytest.raises(InvalidInput):
            ranker.recommend(sp.csr_array((1, N_ITEMS + 1)), 5)
        with pytest.raises(NotFound):
            ranker.recommend(row(reviews, 0), 5, exclude=np.array([N_ITEMS]))

    def test_because_names_history_items(self, ranker, reviews):
        for u in range(N_USERS - 1):
            history = row(reviews, u)
            rec = ranker.recommend(history, 8)
            parts = ranker.contributions(history, rec.items)
            if parts is None:
                assert rec.because is None
                continue
            assert parts.shape == (rec.items.size, history.indices.size) and np.all(np.isfinite(parts))
            assert rec.because is not None and rec.because.shape == (rec.items.size, BECAUSE)
            assert np.all(np.isin(rec.because, np.append(history.indices, -1)))
            named = rec.because[:, 0] >= 0
            # the first reason is the largest positive contribution
            best = history.indices[np.argmax(parts, axis=1)]
            np.testing.assert_array_equal(rec.because[named, 0], best[named])
            assert np.all(parts.max(axis=1)[~named] <= 0)

    def test_contributions_add_up_to_the_score_where_given(self, ranker, reviews):
        history = row(reviews, 1)
        items = np.arange(N_ITEMS - 1)
        parts = ranker.contributions(history, items)
        if parts is not None:
            scores = np.asarray(ranker.score(history), dtype=np.float64)[0, items]
            np.testing.assert_allclose(parts.sum(axis=1), scores, rtol=1e-5, atol=1e-6)

    def test_array_round_trip_is_bit_identical(self, ranker, reviews):
        meta = json.loads(json.dumps(ranker.to_meta()))  # what an artifact's manifest can hold
        again = type(ranker).from_arrays(ranker.to_arrays(), meta)
        assert_same_ranker(ranker, again, reviews)

    def test_artifact_round_trip_is_bit_identical(self, ranker, reviews, case, tmp_path):
        if not case.spec.served:
            pytest.skip(f"{ranker.kind} is not served: load_rankers knows only REGISTRY kinds")
        with VersionWriter(tmp_path) as writer:
            write_rankers(writer, {ranker.kind: ranker}, default=ranker.kind, metrics={"ndcg": 0.5})
            writer.commit()
        loaded, default = load_rankers(ArtifactStore(tmp_path).open(components=["ranking"]))
        assert default == ranker.kind and list(loaded) == [ranker.kind]
        assert_same_ranker(ranker, loaded[ranker.kind], reviews)
