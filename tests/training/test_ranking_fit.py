"""Helpers of the ranker trainers."""

import numpy as np
import pytest

from chorus.training.ranking.fit import mirror_upper


@pytest.mark.parametrize(("n", "block"), [(1, 4), (7, 3), (9, 3), (40, 1024), (50, 7)])
def test_mirror_upper_equals_the_symmetric_matrix_of_the_upper_triangle(n, block):
    upper = np.triu(np.random.default_rng(n).random((n, n)))
    expected = upper + np.triu(upper, 1).T
    out = upper.copy()
    mirror_upper(out, block=block)
    assert np.array_equal(out, expected)
