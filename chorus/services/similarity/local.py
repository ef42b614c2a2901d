"""Exact similarities over the merged rows (a version's rows with a live overlay's changes), computed on a small
:class:`~chorus.services.similarity.side.Side` that holds only the rows a query reads.

A query's *local side* numbers its rows and columns in raw-id order (:meth:`SideState.keys`) and takes each row's
statistics (count, mean, norm) from the merged data, so that its sparse products add the same numbers in the same
order as a build on the merged rows would: the answers equal a full rebuild's, score for score (tests compare
them). Two shapes:

* :func:`around` ``(rows, query)``: the columns of the query rows and, for each, its whole row of the other side
  (for an item: its reviewers and everything they reviewed). It answers "most similar to" and "because you
  liked" exactly.
* :func:`spanning` ``(rows)``: those rows whole; it answers the similarity of any pair among them
  (:meth:`Side.pair_scores`).

Building either is linear in the entries ``W`` it holds (``W = Σ_{u∈U_i} |I_u|`` for the items similar to ``i``):
the merged rows come out in raw-id order, so one layout is read as gathered and the other is its transpose
(scipy's ``O(W)`` conversion); distinct ids are marked in an array of the side's size when there are many, sorted
when there are few.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from chorus.services.similarity.overlay import SideState
from chorus.services.similarity.side import Side, index_dtype
from chorus.services.similarity.sparse import csr_layout


class Local(NamedTuple):
    """A local side and the global index of each of its rows (int64 (n,), ascending raw-id order)."""

    side: Side
    rows: np.ndarray

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """The local index of each of ``rows`` (global indices, int (m,)), -1 for one it does not hold."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.rows.shape[0] == 0:
            return np.full(rows.shape[0], -1, dtype=np.int64)
        order = np.argsort(self.rows, kind="stable")
        held = self.rows[order]
        at = np.minimum(np.searchsorted(held, rows), held.shape[0] - 1)
        return np.where(held[at] == rows, order[at], -1).astype(np.int64)


def _distinct(state: SideState, idx: np.ndarray) -> np.ndarray:
    """The distinct indices of ``idx`` (int (m,)), in raw-id order: int64 (d,)."""
    if idx.shape[0] * 4 >= state.n:  # many: mark them, O(n + m)
        mark = np.zeros(state.n, dtype=bool)
        mark[idx] = True
        uniq = np.flatnonzero(mark)
    else:
        uniq = np.unique(idx)
    return uniq[np.argsort(state.keys(uniq), kind="stable")].astype(np.int64)


def _positions_in(ids: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """Each of ``idx``'s position in ``ids`` (distinct, holding every one of them): int64 (m,). ``n``: the size
    of the index space."""
    if idx.shape[0] * 4 >= n:
        where = np.empty(n, dtype=np.int64)
        where[ids] = np.arange(ids.shape[0])
        found: np.ndarray = where[idx]
        return found
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], idx)].astype(np.int64)


def _ascending_within(ptr: np.ndarray, idx: np.ndarray) -> bool:
    """Whether ``idx`` strictly increases within each group ``ptr[g]:ptr[g + 1]``."""
    if idx.shape[0] < 2:
        return True
    inner = np.ones(idx.shape[0] - 1, dtype=bool)
    starts = ptr[1:-1]
    inner[starts[(starts > 0) & (starts < idx.shape[0])] - 1] = False
    return bool(np.all(np.diff(idx)[inner] > 0))


def _layouts(
    ptr: np.ndarray, minor: np.ndarray, x: np.ndarray, n_major: int, n_minor: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A CSR layout given by groups (``ptr`` int64 (n_major + 1,), local ``minor`` indices, values ``x``) and
    its transpose, each as (indptr, indices, values) with indices ascending within a row."""
    if not _ascending_within(ptr, minor):  # rows gathered out of raw-id order: sort them (never on sorted ids)
        major = np.repeat(np.arange(n_major, dtype=np.int64), np.diff(ptr))
        indptr, indices, values, _ = csr_layout(major, minor, x, n_major)
        ptr, minor, x = indptr, indices.astype(np.int64), values
    dtype = index_dtype(minor.shape[0], n_major, n_minor)
    flipped = sp.csr_array((x, minor.astype(dtype), ptr.astype(dtype)), shape=(n_major, n_minor)).tocsc()
    return (ptr, minor, x), (np.asarray(flipped.indptr), np.asarray(flipped.indices), np.asarray(flipped.data))


def _local(
    rows: SideState,
    row_ids: np.ndarray,
    row_layout: tuple[np.ndarray, np.ndarray, np.ndarray],
    col_layout: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Local:
    """The local side with rows ``row_ids`` (raw-id order) and both layouts; merged statistics of the rows."""
    count, mean, norm = rows.row_stats(row_ids)
    rank = np.arange(row_ids.shape[0], dtype=np.int64)
    return Local(Side(rows.name, *row_layout, *col_layout, count, mean, norm, rank, eager=False), row_ids)


def around(rows: SideState, cols: SideState, query: np.ndarray) -> Local:
    """The local side of ``query`` (global row indices, int (q,)): their columns, and every row those columns
    hold (see the module docstring). The query rows are among its rows."""
    query = np.asarray(query, dtype=np.int64)
    _, reached, _ = rows.gather(query)
    columns = _distinct(cols, reached)
    cptr, r, x = cols.gather(columns)  # grouped by column, each column's rows in raw-id order
    row_ids = _distinct(rows, np.concatenate([r, query]))
    r_local = _positions_in(row_ids, r, rows.n)
    col_layout, row_layout = _layouts(cptr, r_local, x, columns.shape[0], row_ids.shape[0])
    return _local(rows, row_ids, row_layout, col_layout)


def spanning(rows: SideState, cols: SideState, which: np.ndarray) -> Local:
    """The local side holding the rows ``which`` (global indices, int (m,)) whole."""
    row_ids = _distinct(rows, np.asarray(which, dtype=np.int64))
    ptr, c, x = rows.gather(row_ids)
    col_ids = _distinct(cols, c)
    c_local = _positions_in(col_ids, c, cols.n)
    row_layout, col_layout = _layouts(ptr, c_local, x, row_ids.shape[0], col_ids.shape[0])
    return _local(rows, row_ids, row_layout, col_layout)
