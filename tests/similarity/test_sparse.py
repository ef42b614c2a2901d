"""The sparse helpers: aligning products on one pattern, gathering rows, bounded chunks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from chorus.services.similarity.sparse import aligned, chunks, gather_rows


def test_aligned_handles_any_column_order():
    # The fallback path: the same entries listed in another order within rows, some missing.
    pattern = sp.csr_array((np.ones(5), np.array([3, 1, 0, 2, 4]), np.array([0, 3, 5])), shape=(2, 5))
    other = sp.csr_array((np.array([10.0, 30.0, 40.0]), np.array([1, 3, 4]), np.array([0, 2, 3])), shape=(2, 5))
    np.testing.assert_array_equal(aligned(pattern, other), [30.0, 10.0, 0.0, 0.0, 40.0])


def test_gather_rows_and_chunks():
    indptr = np.array([0, 2, 2, 5, 6], dtype=np.int64)
    bptr, pos = gather_rows(indptr, np.array([3, 0, 2]))
    assert bptr.tolist() == [0, 1, 3, 6] and pos.tolist() == [5, 0, 1, 2, 3, 4]
    assert chunks(np.array([2, 2, 5, 1, 1]), 4) == [(0, 2), (2, 3), (3, 5)]
    assert chunks(np.zeros(0, dtype=np.int64), 4) == []
