"""The compiled table kernels against the readable numpy path (``Side.top_k_block``) and against themselves
across worker counts: the same neighbours and the same floating-point scores, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import build_similarity
from chorus.training.similarity.cooccur import TILE, _push, kernel_values, table_block
from tests.similarity.reference import PROPERTY, datasets, make_index, random_ratings


@PROPERTY
@given(datasets(), st.integers(1, 5), st.sampled_from([1, 3, TILE]))
def test_kernel_block_equals_numpy_block(data, k, tile):
    ratings, n_users, n_items, item_rank, user_rank = data
    index = make_index(ratings, n_users, n_items, item_rank, user_rank)
    for side in (index.items, index.users):
        values = kernel_values(side, tile)  # candidates in tiles of 1 and 3 labels, or all in one
        for lo, hi in ((0, side.n_rows), (0, 1), (side.n_rows // 2, side.n_rows)):
            want = side.top_k_block(lo, hi, k, tuple(Measure))
            got, pairs = table_block(side, values, lo, hi, k, tuple(Measure))
            assert got.keys() == want.keys()
            for m in want:
                for g, w in zip(got[m], want[m], strict=True):
                    assert g.dtype == w.dtype
                    np.testing.assert_array_equal(g, w)  # bit-identical scores
            cand = side.candidates(np.arange(lo, hi), (Measure.jaccard,), contiguous=True)
            assert pairs == cand.col.shape[0]


def test_table_block_hand_case():
    # items 0..2 against users 0..1: item 0 = {u0: 1, u1: 2}, item 1 = {u0: 3}, item 2 = {u1: 4}
    side = make_index({(0, 0): 1.0, (1, 0): 2.0, (0, 1): 3.0, (1, 2): 4.0}, 2, 3).items
    got, pairs = table_block(side, kernel_values(side), 0, 3, 2, tuple(Measure))
    assert pairs == 4  # (0, 1), (0, 2), (1, 0), (2, 0)
    nb, score, n = got[Measure.jaccard]
    np.testing.assert_array_equal(n, [2, 1, 1])
    np.testing.assert_array_equal(nb, [[1, 2], [0, -1], [0, -1]])  # a tie on 1/2 goes to the smaller id
    np.testing.assert_array_equal(score, [[0.5, 0.5], [0.5, 0.0], [0.5, 0.0]])
    nb, score, _ = got[Measure.cosine]  # item 0 · item 2 = 8 / (√5 · 4) beats item 0 · item 1 = 3 / (√5 · 3)
    np.testing.assert_array_equal(nb[0], [2, 1])
    np.testing.assert_allclose(score[0], [8 / (5**0.5 * 4), 3 / (5**0.5 * 3)], atol=1e-10)


def test_top_k_keeps_the_smallest_keys_sorted():
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 7, 50):
        heap, size = np.empty(4, dtype=np.int64), 0
        keys = rng.permutation(10**6)[:n].astype(np.int64)
        for key in keys:
            size = _push(heap, size, 4, key)
        want = np.sort(keys)[:4]
        assert size == want.size
        np.testing.assert_array_equal(np.sort(heap[:size]), want)


@pytest.mark.parametrize("workers", [2, 3])
def test_table_is_the_same_for_any_number_of_workers(workers):
    user, item, rating, nu, ni = random_ratings(3, n_users=80, n_items=60, n=900)
    want = build_similarity(user, item, rating, nu, ni, K=6, block_rows=7, trace_memory=False, workers=1)
    got = build_similarity(user, item, rating, nu, ni, K=6, block_rows=7, trace_memory=False, workers=workers)
    assert got.stats["blocks"] > workers and got.stats["pairs"] == want.stats["pairs"] > 0
    assert got.arrays.keys() == want.arrays.keys()
    for name in want.arrays:
        np.testing.assert_array_equal(got.arrays[name], want.arrays[name], err_msg=name)
