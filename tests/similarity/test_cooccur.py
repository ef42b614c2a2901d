"""The compiled table kernels against the readable numpy path (``Side.top_k_block``) and against themselves
across worker counts: the same neighbours and the same floating-point scores, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chorus.services.similarity.build import build_similarity
from chorus.services.similarity.cooccur import block_terms, kernel_values, table_block, top_k_segments
from chorus.shared.contract import Measure
from tests.similarity.reference import PROPERTY, datasets, make_index, random_ratings


@PROPERTY
@given(datasets(), st.integers(1, 5))
def test_kernel_block_equals_numpy_block(data, k):
    ratings, n_users, n_items, item_rank, user_rank = data
    index = make_index(ratings, n_users, n_items, item_rank, user_rank)
    for side in (index.items, index.users):
        values = kernel_values(side)
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


def test_block_terms_hand_case():
    # rows 0..2 against columns 0..1: row 0 = {0: 1, 1: 2}, row 1 = {0: 3}, row 2 = {1: 4}
    indptr = np.array([0, 2, 3, 4])
    indices = np.array([0, 1, 0, 1], dtype=np.int32)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    t_indptr, t_indices, tx = np.array([0, 2, 4]), np.array([0, 1, 0, 2], dtype=np.int32), np.array([1.0, 3, 2, 4])
    zeros = np.zeros(4)
    values = {"x": x, "z": zeros, "z2": zeros, "tx": tx, "tz": zeros, "tz2": zeros}
    ptr, sums = block_terms(
        np.array([0, 1]), indptr, indices, t_indptr, t_indices, values,
        exclude_self=True, want_dot=True, want_centred=True,
    )  # fmt: skip
    np.testing.assert_array_equal(ptr, [0, 2, 3])
    got = sorted(zip(sums["col"][:2].tolist(), sums["dot"][:2].tolist(), strict=True))
    assert got == [(1, 3.0), (2, 8.0)]
    assert sums["col"][2] == 0 and sums["dot"][2] == 3.0 and sums["common"].tolist() == [1.0, 1.0, 1.0]


def test_top_k_segments_keeps_smallest_sorted():
    rng = np.random.default_rng(0)
    lens = [0, 1, 3, 7, 50]
    ptr = np.concatenate([[0], np.cumsum(lens)])
    keys = np.concatenate([rng.permutation(10**6)[:n] for n in lens]).astype(np.int64)
    best, length = top_k_segments(ptr, keys, 4)
    for q in range(len(lens)):
        want = np.sort(keys[ptr[q] : ptr[q + 1]])[:4]
        assert length[q] == want.size
        np.testing.assert_array_equal(best[q, : want.size], want)


@pytest.mark.parametrize("workers", [2, 3])
def test_table_is_the_same_for_any_number_of_workers(workers):
    user, item, rating, nu, ni = random_ratings(3, n_users=80, n_items=60, n=900)
    want = build_similarity(user, item, rating, nu, ni, K=6, block_rows=7, trace_memory=False, workers=1)
    got = build_similarity(user, item, rating, nu, ni, K=6, block_rows=7, trace_memory=False, workers=workers)
    assert got.stats["blocks"] > workers and got.stats["pairs"] == want.stats["pairs"] > 0
    assert got.arrays.keys() == want.arrays.keys()
    for name in want.arrays:
        np.testing.assert_array_equal(got.arrays[name], want.arrays[name], err_msg=name)
