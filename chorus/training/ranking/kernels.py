"""Compiled row kernels of the item-kNN trainer (numba; only the offline trainer imports this module).

Item-kNN's grid shares one ranking of each item's neighbours between its points
(:func:`chorus.training.ranking.fit.knn_candidates_per_shrink`), and each point keeps a prefix of it
(:func:`chorus.training.ranking.fit.knn_truncate`). Both are per-row sorts of short rows: a whole-array
``numpy.lexsort`` over every stored pair (three keys, millions of entries) cost about 6 CPU-s a shrink and 1.2 CPU-s a
point on the 200,000 demo reviews, where one sort per row costs a small fraction of that. The kernels reproduce
the numpy results exactly: the same order (a stable sort, so ties keep the lower column) and the same sums (one
add per term in rank order; numba compiles without ``fastmath``, so nothing is reassociated).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Compiled kernels are cached beside this file; where it is read-only (an installed image run as another user),
# in the temporary folder instead (numba refuses to cache with no writable place). Set before numba loads.
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "chorus-numba-cache")

import numba  # noqa: E402
import numpy as np  # noqa: E402


@numba.njit(nogil=True, cache=True)
def rank_rows(indptr: np.ndarray, sim: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Per row of a CSR structure (int64 ``indptr`` (n + 1,), float64 ``sim`` (nnz,), columns ascending in each
    row): the positions of its first ``width`` entries by ``sim`` descending, ties in column order. Returns
    the rows' new int64 ``indptr`` and the int64 positions, row after row, best first."""
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        out_ptr[r + 1] = out_ptr[r] + min(width, indptr[r + 1] - indptr[r])
    picks = np.empty(out_ptr[n], dtype=np.int64)
    for r in range(n):
        lo = indptr[r]
        m = out_ptr[r + 1] - out_ptr[r]
        if m == 0:
            continue
        order = np.argsort(-sim[lo : indptr[r + 1]], kind="mergesort")
        for j in range(m):
            picks[out_ptr[r] + j] = lo + order[j]
    return out_ptr, picks


@numba.njit(nogil=True, cache=True)
def truncate_rows(
    indptr: np.ndarray, cols: np.ndarray, sim: np.ndarray, k: int, by_row_sum: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Per row of ranked neighbours (int64 ``indptr``, int64 ``cols``, float64 ``sim``, best first): the first
    ``k``, divided by their sum (taken in rank order) when ``by_row_sum``, in column order. Returns int64
    ``indptr``, int32 columns, float32 values."""
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        out_ptr[r + 1] = out_ptr[r] + min(k, indptr[r + 1] - indptr[r])
    out_cols = np.empty(out_ptr[n], dtype=np.int32)
    out_sim = np.empty(out_ptr[n], dtype=np.float32)
    for r in range(n):
        lo = indptr[r]
        m = out_ptr[r + 1] - out_ptr[r]
        if m == 0:
            continue
        total = 0.0
        for j in range(m):
            total += sim[lo + j]
        order = np.argsort(cols[lo : lo + m], kind="mergesort")
        for j in range(m):
            value = sim[lo + order[j]]
            if by_row_sum:
                value = value / total
            out_cols[out_ptr[r] + j] = cols[lo + order[j]]
            out_sim[out_ptr[r] + j] = value
    return out_ptr, out_cols, out_sim
