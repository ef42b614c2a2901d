"""Ranking metrics against hand-computed values and a plain-loop reference written from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data.matrix import user_item_matrix
from chorus.training.ranking.metrics import (
    METRICS,
    average_precision_at_k,
    catalogue_coverage,
    evaluate_rankings,
    hits,
    mean_over_users,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    top_k,
)

L3 = 1 / math.log2(3)  # discount of rank 2
L4 = 1 / math.log2(4)  # discount of rank 3

# Six users, six items, k = 3.
RECOMMENDED = np.array(
    [
        [0, 1, 2],  # one hit, at rank 2, of |T| = 2
        [3, -1, -1],  # fewer than k candidates: one item, a hit, |T| = 1
        [5, 0, 1],  # empty test set: excluded from every mean, and from coverage
        [4, 2, 0],  # perfect: three hits, |T| = 4 > k
        [-1, -1, -1],  # no candidates at all, |T| = 1: zeros
        [0, 1, 2],  # zero ranking: no hit
    ]
)
TEST_SETS = [{1, 5}, {3}, set(), {0, 2, 4, 5}, {2}, {3}]


def relevant_of(sets, n_items=6):
    users = [u for u, s in enumerate(sets) for _ in s]
    items = [i for s in sets for i in sorted(s)]
    return user_item_matrix(np.array(users), np.array(items), len(sets), n_items)


REL = relevant_of(TEST_SETS)
NAN = float("nan")


def assert_per_user(got, expected):
    np.testing.assert_allclose(got, np.array(expected, dtype=float), rtol=0, atol=1e-12, equal_nan=True)


def test_hits_ignore_padding_and_other_users_items():
    expected = [[0, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert hits(RECOMMENDED, REL).astype(int).tolist() == expected


def test_precision_divides_by_k_even_for_short_lists():
    assert_per_user(precision_at_k(RECOMMENDED, REL), [1 / 3, 1 / 3, NAN, 1.0, 0.0, 0.0])


def test_recall_divides_by_all_relevant_items():
    assert_per_user(recall_at_k(RECOMMENDED, REL), [1 / 2, 1.0, NAN, 3 / 4, 0.0, 0.0])


def test_ndcg_binary_gains_ideal_over_min_relevant_k():
    # user 0: DCG = 1/log2(3); IDCG over min(2, 3) = 2 positions = 1 + 1/log2(3)
    assert_per_user(ndcg_at_k(RECOMMENDED, REL), [L3 / (1 + L3), 1.0, NAN, 1.0, 0.0, 0.0])


def test_ndcg_rank_positions():
    rel = relevant_of([{2}, {0, 1}])
    rec = np.array([[0, 1, 2], [5, 0, 1]])
    # user 0: one hit at rank 3 of one relevant: (1/log2 4) / 1; user 1: hits at ranks 2, 3 of two relevant
    assert_per_user(ndcg_at_k(rec, rel), [L4, (L3 + L4) / (1 + L3)])


def test_average_precision_normalised_by_min_relevant_k():
    # user 0: P@2 = 1/2 at its only hit, over min(2, 3) = 2; user 3: three hits, P@r = 1, over min(4, 3) = 3
    assert_per_user(average_precision_at_k(RECOMMENDED, REL), [1 / 4, 1.0, NAN, 1.0, 0.0, 0.0])
    rel = relevant_of([{0, 2}])
    # hits at ranks 1 and 3: (1/1 + 2/3) / 2
    assert_per_user(average_precision_at_k(np.array([[0, 1, 2]]), rel), [(1 + 2 / 3) / 2])


def test_coverage_counts_distinct_items_of_the_given_lists():
    assert catalogue_coverage(RECOMMENDED, 6) == 1.0
    assert catalogue_coverage(RECOMMENDED[[0, 1, 3, 4, 5]], 6) == pytest.approx(5 / 6)
    assert catalogue_coverage(np.full((2, 3), -1), 6) == 0.0
    with pytest.raises(InvalidInput):
        catalogue_coverage(RECOMMENDED, 0)


COUNTS = np.array([8, 4, 2, 1, 1, 2])  # self-information -log2(c/8): 0, 1, 2, 3, 3, 2


def test_novelty_mean_self_information():
    assert_per_user(novelty(RECOMMENDED, COUNTS, 8), [1.0, 3.0, (2 + 0 + 1) / 3, 5 / 3, NAN, 1.0])
    with pytest.raises(InvalidInput, match="no training rating"):
        novelty(np.array([[0, 1]]), np.array([3, 0]), 8)


def test_evaluate_rankings_means_over_users_with_a_relevant_item():
    got = evaluate_rankings(RECOMMENDED, REL, COUNTS, 8, 6)
    assert tuple(got) == METRICS
    evaluated = 5  # user 2 has an empty test set
    assert got["precision"] == pytest.approx((1 / 3 + 1 / 3 + 1) / evaluated)
    assert got["recall"] == pytest.approx((1 / 2 + 1 + 3 / 4) / evaluated)
    assert got["ndcg"] == pytest.approx((L3 / (1 + L3) + 1 + 1) / evaluated)
    assert got["map"] == pytest.approx((1 / 4 + 1 + 1) / evaluated)
    assert got["coverage"] == pytest.approx(5 / 6)  # item 5 only in user 2's list
    assert got["novelty"] == pytest.approx((1 + 3 + 5 / 3 + 1) / 4)  # user 4's empty list has no novelty
    # a user whose test set is empty changes nothing, whatever it was recommended
    other = RECOMMENDED.copy()
    other[2] = [-1, -1, -1]
    assert evaluate_rankings(other, REL, COUNTS, 8, 6) == got


def test_perfect_and_zero_rankings():
    sets = [{0, 1, 2}, {4}, {1, 3, 5, 0}]
    rel = relevant_of(sets)
    perfect = np.array([[2, 0, 1], [4, -1, -1], [5, 3, 1]])
    for f in (ndcg_at_k, average_precision_at_k):
        assert_per_user(f(perfect, rel), [1.0, 1.0, 1.0])
    assert_per_user(recall_at_k(perfect, rel), [1.0, 1.0, 3 / 4])
    zero = np.array([[3, 4, 5], [0, 1, 2], [2, 4, -1]])
    m = evaluate_rankings(zero, rel, np.ones(6), 4, 6)
    assert m["precision"] == m["recall"] == m["ndcg"] == m["map"] == 0.0


def test_metrics_accept_csr_matrix_and_ignore_explicit_zeros():
    rel = sp.csr_matrix(([1.0, 0.0, 5.0], ([0, 0, 1], [1, 2, 3])), shape=(2, 6))
    assert_per_user(recall_at_k(np.array([[2, 1], [3, 0]]), rel), [1.0, 1.0])


@pytest.mark.parametrize(
    "recommended, message",
    [
        (np.array([[0, 0, 1]]), "twice"),
        (np.array([[0, -1, 1]]), "padding"),
        (np.array([[0, 6, 1]]), r"\[0, 6\)"),
        (np.array([[0, -2, 1]]), r"\[0, 6\)"),
        (np.zeros((1, 0), dtype=np.int64), "k >= 1"),
        (np.array([[0.0, 1.0, 2.0]]), "integer"),
        (np.array([[0, 1, 2], [0, 1, 2]]), "rows"),
    ],
)
def test_bad_lists_are_refused(recommended, message):
    with pytest.raises(InvalidInput, match=message):
        ndcg_at_k(recommended, relevant_of([{1}]))


def test_nothing_to_evaluate_is_an_error():
    with pytest.raises(InvalidInput, match="no user"):
        evaluate_rankings(np.array([[0]]), relevant_of([set()]), np.ones(6), 2, 6)
    assert math.isnan(mean_over_users(np.array([NAN, NAN])))


def test_top_k_ties_by_item_index_and_padding():
    scores = np.array(
        [
            [1.0, 3.0, 3.0, 0.5, 3.0],
            [0.0, -np.inf, 2.0, 2.0, 9.0],
            [5.0, 4.0, 3.0, 2.0, 1.0],
        ]
    )
    allowed = np.array(
        [
            [True, True, True, True, True],
            [True, True, False, True, False],
            [False, True, False, False, False],
        ]
    )
    got = top_k(scores, 4, allowed)
    assert got.dtype == np.int64
    assert got.tolist() == [[1, 2, 4, 0], [3, 0, 1, -1], [1, -1, -1, -1]]
    # k larger than the catalogue
    assert top_k(scores[:1], 7, allowed[:1]).tolist() == [[1, 2, 4, 0, 3, -1, -1]]
    # small blocks give the same answer
    assert np.array_equal(top_k(scores, 4, allowed, block=1), got)
    with pytest.raises(InvalidInput, match="NaN"):
        top_k(np.array([[np.nan]]), 1, np.array([[True]]))


# -- a plain-loop reference, written from the formulas in docs/models.md ---------------------------------


def reference(rec_rows, test_sets, k, counts, n_users, n_candidates):
    per: dict[str, list[float]] = {m: [] for m in ("precision", "recall", "ndcg", "map")}
    nov, covered = [], set()
    for row, t in zip(rec_rows, test_sets, strict=True):
        if not t:
            continue
        items = [i for i in row if i >= 0]
        covered.update(items)
        rel = [1 if i in t else 0 for i in items]
        found = sum(rel)
        per["precision"].append(found / k)
        per["recall"].append(found / len(t))
        dcg = sum(r / math.log2(pos + 1) for pos, r in enumerate(rel, start=1))
        idcg = sum(1 / math.log2(pos + 1) for pos in range(1, min(len(t), k) + 1))
        per["ndcg"].append(dcg / idcg)
        ap = sum(rel[j] * sum(rel[: j + 1]) / (j + 1) for j in range(len(rel)))
        per["map"].append(ap / min(len(t), k))
        if items:
            nov.append(sum(-math.log2(counts[i] / n_users) for i in items) / len(items))
    out = {m: sum(v) / len(v) for m, v in per.items()}
    out["coverage"] = len(covered) / n_candidates
    out["novelty"] = sum(nov) / len(nov) if nov else float("nan")
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(2, 12), st.integers(1, 9))
def test_matches_plain_loop_reference(seed, k, n_items, n_users):
    rng = np.random.default_rng(seed)
    test_sets = [set(rng.choice(n_items, rng.integers(0, n_items + 1), replace=False).tolist()) for _ in range(n_users)]
    test_sets[0] = test_sets[0] or {0}
    rec = np.full((n_users, k), -1, dtype=np.int64)
    for u in range(n_users):
        length = int(rng.integers(0, min(k, n_items) + 1))
        rec[u, :length] = rng.choice(n_items, length, replace=False)
    counts = rng.integers(1, 20, n_items)
    got = evaluate_rankings(rec, relevant_of(test_sets, n_items), counts, 20, n_items)
    want = reference(rec.tolist(), test_sets, k, counts, 20, n_items)
    # novelty is NaN when no evaluated user was recommended anything
    assert math.isnan(got["novelty"]) == math.isnan(want["novelty"])
    if math.isnan(want["novelty"]):
        got["novelty"] = want["novelty"] = 0.0
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
