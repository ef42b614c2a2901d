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
def capped_indptr(indptr: np.ndarray, width: int) -> np.ndarray:  # pragma: no cover
    """The int64 ``indptr`` of the CSR rows of ``indptr`` each cut to at most ``width`` entries."""
    n = indptr.shape[0] - 1
    out = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        out[r + 1] = out[r] + min(width, indptr[r + 1] - indptr[r])
    return out


@numba.njit(nogil=True, cache=True)
def rank_rows(indptr: np.ndarray, sim: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Per row of a CSR structure (int64 ``indptr`` (n + 1,), float64 ``sim`` (nnz,), columns ascending in each
    row): the positions of its first ``width`` entries by ``sim`` descending, ties in column order. Returns
    the rows' new int64 ``indptr`` and the int64 positions, row after row, best first.

    A row longer than ``width`` is cut first: a selection finds its ``width``-th largest value and only the
    entries at least that large (in column order, so ties keep it) are sorted, stably: the same positions as a
    stable sort of the whole row, at a fraction of its cost on rows of thousands of entries."""
    n = indptr.shape[0] - 1
    out_ptr = capped_indptr(indptr, width)
    picks = np.empty(out_ptr[n], dtype=np.int64)
    for r in range(n):
        lo = indptr[r]
        m = out_ptr[r + 1] - out_ptr[r]
        if m == 0:
            continue
        row = -sim[lo : indptr[r + 1]]
        if row.shape[0] > 2 * m:
            cut = np.partition(row, m - 1)[m - 1]  # the m-th smallest of -sim: every entry kept is <= it
            head = np.flatnonzero(row <= cut)
            order = head[np.argsort(row[head], kind="mergesort")]
        else:
            order = np.argsort(row, kind="mergesort")
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
    out_ptr = capped_indptr(indptr, k)
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


@numba.njit(nogil=True, cache=True)
def top_rows(scores: np.ndarray, banned: np.ndarray, k: int) -> tuple[np.ndarray, bool]:  # pragma: no cover
    """Per row of ``scores`` (float (m, n)): the ``k`` highest that are not ``banned`` (bool (m, n)), best first,
    ties to the lower index, -1 padded; and whether an allowed score was NaN (the lists are then not defined).

    One pass over each row in index order, keeping the ``k`` best so far in a small array: an item enters when
    the list is not full or when its score beats the worst kept (strictly: on an equal score the kept item has
    the lower index, so it stays), which is the order of
    :func:`~chorus.services.rating.rankers.base.top_items` without sorting or partitioning the whole row.
    """
    m, n = scores.shape
    out = np.full((m, k), -1, dtype=np.int64)
    kept_s = np.empty(k, dtype=np.float64)
    kept_i = np.empty(k, dtype=np.int64)
    for r in range(m):
        size = 0
        worst = 0  # position in kept_* of the worst kept item (lowest score, then highest index)
        for j in range(n):
            if banned[r, j]:
                continue
            s = np.float64(scores[r, j])
            if s != s:
                return out, True
            if size < k:
                kept_s[size] = s
                kept_i[size] = j
                size += 1
                if size == k:
                    worst = 0
                    for t in range(1, k):
                        if kept_s[t] < kept_s[worst] or (kept_s[t] == kept_s[worst] and kept_i[t] > kept_i[worst]):
                            worst = t
            elif s > kept_s[worst]:
                kept_s[worst] = s
                kept_i[worst] = j
                worst = 0
                for t in range(1, k):
                    if kept_s[t] < kept_s[worst] or (kept_s[t] == kept_s[worst] and kept_i[t] > kept_i[worst]):
                        worst = t
        # best first: score descending, then index ascending (insertion sort of at most k items)
        for a in range(1, size):
            s, i = kept_s[a], kept_i[a]
            b = a - 1
            while b >= 0 and (kept_s[b] < s or (kept_s[b] == s and kept_i[b] > i)):
                kept_s[b + 1] = kept_s[b]
                kept_i[b + 1] = kept_i[b]
                b -= 1
            kept_s[b + 1] = s
            kept_i[b + 1] = i
        for a in range(size):
            out[r, a] = kept_i[a]
    return out, False
