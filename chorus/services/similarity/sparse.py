"""Sparse-matrix helpers of the similarity core: CSR layouts and their row statistics, gathering rows, aligning
sparse products on one pattern, and splitting work into bounded chunks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_SLOT_BUDGET = 1 << 22  # slots of the dense (row, column) -> position map used by aligned() (16-32 MB)
_DENSE_KEYS = 16  # group_index counts densely when m · 16 ≥ n: n slots cost about as much as sorting n / 16 keys


def csr_layout(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entries given as coordinates, in CSR order (rows ascending, columns ascending within a row).

    Parameters
    ----------
    rows, cols : int64 (n,)
    values : float64 (n,)
    n_rows : int

    Returns
    -------
    (indptr int64 (n_rows + 1,), columns int32 (n,), values float64 (n,), rows int64 (n,)), the last three in
    CSR order.
    """
    order = coo_order(rows, cols)
    counts = np.bincount(rows, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, cols[order].astype(np.int32), values[order].astype(np.float64), rows[order]


def coo_order(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The stable order of entries by (row, column): ``np.lexsort((cols, rows))``, computed as one stable argsort
    of ``row · (max column + 1) + column`` where that fits in int64 (2.7x faster on 5M entries).

    ``rows``, ``cols``: non-negative int (n,). Returns int64 (n,)."""
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(cols.max()) + 1
    if (int(rows.max()) + 1) * width >= 2**62:
        return np.lexsort((cols, rows))
    return np.argsort(rows.astype(np.int64) * width + cols, kind="stable")


def row_stats(indptr: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a CSR layout: number of entries (int64), mean value (float64, 0 for an empty row) and
    Euclidean norm √Σ v² (float64), each (n_rows,). ``indptr``: int64 (n_rows + 1,); ``values``: float64 (nnz,)."""
    count = np.diff(indptr)
    row = np.repeat(np.arange(count.shape[0]), count)
    total = np.bincount(row, weights=values, minlength=count.shape[0])
    squares = np.bincount(row, weights=values * values, minlength=count.shape[0])
    mean = np.divide(total, count, out=np.zeros(count.shape[0]), where=count > 0)
    return count.astype(np.int64), mean, np.sqrt(squares)


def gather_rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries of ``rows`` in a CSR layout, as a sub-matrix.

    Parameters
    ----------
    indptr : int64 (n_rows + 1,)
    rows : int64 (r,)

    Returns
    -------
    (indptr of the gathered sub-matrix int64 (r + 1,), positions of its entries in the layout int64 (nnz,))
    """
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    bptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lens, out=bptr[1:])
    pos = np.repeat(starts - bptr[:-1], lens) + np.arange(bptr[-1], dtype=np.int64)
    return bptr, pos


def group_index(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` (int (m,) in ``0..n-1``), ascending, and the group of each key: int64 (g,), int64 (m,).

    Dense counting arrays of ``n`` slots when the keys are many enough to fill a fair part of them, a sort of
    the keys otherwise (so a light query on a large catalogue stays ``O(m log m)``)."""
    if keys.shape[0] * _DENSE_KEYS >= n:
        distinct = np.flatnonzero(np.bincount(keys, minlength=n))
        where = np.zeros(n, dtype=np.int64)
        where[distinct] = np.arange(distinct.shape[0])
        return distinct, where[keys]
    distinct, group = np.unique(keys, return_inverse=True)
    return distinct.astype(np.int64), group.astype(np.int64)


def group_sums(keys: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` and the sum of ``weights`` over each, accumulated in input order from 0.

    Parameters
    ----------
    keys : int (m,)
        Values in ``0..n-1``.
    weights : float64 (m,)
    n : int
        The number of possible keys.

    Returns
    -------
    (int64 (g,) distinct keys ascending, float64 (g,) their sums)
    """
    distinct, group = group_index(keys, n)
    return distinct, np.bincount(group, weights=weights, minlength=distinct.shape[0])


def positions_in(values: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """The position of each of ``x`` in ``values``, -1 where it is not there.

    ``values``: distinct int (v,) in ``0..n-1``, any order; ``x``: int (m,) in ``0..n-1``. Returns int64 (m,). A
    dense map of ``n`` slots when ``x`` is long enough to pay for it, a binary search in the sorted ``values``
    otherwise."""
    if x.shape[0] * _DENSE_KEYS >= n:
        where = np.full(n, -1, dtype=np.int64)
        where[values] = np.arange(values.shape[0])
        found: np.ndarray = where[x]
        return found
    if values.shape[0] == 0:
        return np.full(x.shape[0], -1, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    at = np.minimum(np.searchsorted(values[order], x), values.shape[0] - 1)
    return np.where(values[order[at]] == x, order[at], -1).astype(np.int64)


def aligned(pattern: sp.csr_array, other: sp.csr_array) -> np.ndarray:
    """Values of ``other`` on ``pattern``'s entries (0 where ``other`` has none). float64 (pattern.nnz,).

    Both are products of matrices with the same sparsity patterns, so ``other``'s entries are ``pattern``'s
    minus those whose sum is exactly 0 (scipy drops them). scipy emits each row's columns in an order fixed by
    the patterns alone, so rows with as many entries as ``pattern`` are copied as they are (checked). The
    other rows go through a dense (row, column) -> position map, a few rows at a time: each row's part of the
    map is small enough to stay in cache.
    """
    if other.nnz == pattern.nnz and np.array_equal(other.indices, pattern.indices):
        return np.asarray(other.data)
    out = np.zeros(pattern.nnz, dtype=np.float64)
    if other.nnz == 0:
        return out
    p_len, o_len = np.diff(pattern.indptr), np.diff(other.indptr)
    full = p_len == o_len
    p_full, o_full = np.repeat(full, p_len), np.repeat(full, o_len)
    if np.array_equal(pattern.indices[p_full], other.indices[o_full]):
        out[p_full] = other.data[o_full]
        rest = ~full & (o_len > 0)
    else:  # a scipy that emits columns in another order: map every row
        rest = o_len > 0
    rows = np.flatnonzero(rest)
    if rows.shape[0] == 0:
        return out
    p_sel, o_sel = np.repeat(rest, p_len), np.repeat(rest, o_len)
    p_pos = np.flatnonzero(p_sel)
    p_col, o_col, o_val = pattern.indices[p_sel], other.indices[o_sel], other.data[o_sel]
    p_cnt, o_cnt = p_len[rows], o_len[rows]
    p_row = np.repeat(np.arange(rows.shape[0], dtype=np.int64), p_cnt)
    o_row = np.repeat(np.arange(rows.shape[0], dtype=np.int64), o_cnt)
    p_end = np.concatenate([[0], np.cumsum(p_cnt)])
    o_end = np.concatenate([[0], np.cumsum(o_cnt)])
    n_cols = int(pattern.shape[1])
    group = max(1, _SLOT_BUDGET // max(n_cols, 1))
    slot = np.empty(min(group, rows.shape[0]) * n_cols, dtype=np.int32 if pattern.nnz < 2**31 else np.int64)
    for g0 in range(0, rows.shape[0], group):
        g1 = min(g0 + group, rows.shape[0])
        a, b = p_end[g0], p_end[g1]
        slot[(p_row[a:b] - g0) * n_cols + p_col[a:b]] = p_pos[a:b]
        a, b = o_end[g0], o_end[g1]
        out[slot[(o_row[a:b] - g0) * n_cols + o_col[a:b]]] = o_val[a:b]
    return out


def chunks(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split consecutive items with ``lengths`` (int (n,)) into runs ``(start, stop)`` whose total stays within
    ``budget`` (a run holds at least one item)."""
    n = lengths.shape[0]
    if n == 0:
        return []
    ends = np.cumsum(lengths, dtype=np.int64)
    out, start, base = [], 0, 0
    while start < n:
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = max(stop, start + 1)
        out.append((start, stop))
        base = int(ends[stop - 1])
        start = stop
    return out
