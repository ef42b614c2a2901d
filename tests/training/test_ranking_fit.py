"""Helpers of the ranker trainers."""

import numpy as np
import pytest

from chorus.training.ranking.fit import mirror_upper
from chorus.training.ranking.kernels import rank_rows


@pytest.mark.parametrize(("n", "block"), [(1, 4), (7, 3), (9, 3), (40, 1024), (50, 7)])
def test_mirror_upper_equals_the_symmetric_matrix_of_the_upper_triangle(n, block):
    upper = np.triu(np.random.default_rng(n).random((n, n)))
    expected = upper + np.triu(upper, 1).T
    out = upper.copy()
    mirror_upper(out, block=block)
    assert np.array_equal(out, expected)


def test_rank_rows_orders_each_row_as_a_stable_sort_of_the_whole_row():
    """Rows far longer than the width are cut by a selection before sorting: the positions must be a whole-row
    stable sort's, ties (many here: a few distinct values) to the lower column."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(1, 30))
        ptr = np.zeros(n + 1, dtype=np.int64)
        ptr[1:] = np.cumsum(rng.integers(0, 80, n))
        sim = rng.integers(1, 6, int(ptr[-1])).astype(np.float64) / 3.0
        width = int(rng.integers(1, 20))
        got_ptr, got = rank_rows(ptr, sim, width)
        for r in range(n):
            want = ptr[r] + np.argsort(-sim[ptr[r] : ptr[r + 1]], kind="stable")[:width]
            assert np.array_equal(got[got_ptr[r] : got_ptr[r + 1]], want)
