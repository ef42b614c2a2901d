"""Exact similarities over the merged rows (a version's rows with a live overlay's changes), computed on a small
:class:`~chorus.services.similarity.side.Side` that holds only the rows a query reads.

A query's *local side* numbers its rows and columns in raw-id order (:meth:`SideState.keys`) and takes each row's
statistics (count, mean, norm) from the merged data, so that its sparse products add the same numbers in the same
order as a build on the merged rows would: the answers equal a full rebuild's, score for score (tests compare
them). Two shapes:

* :func:`around` ``(rows, query)``: the columns of the query rows and, for each, its whole row of the other side
  (for an item: its reviewers and everything they reviewed). It answers "most similar to" and "because you
  liked" exactly; building it costs ``O(W log W)`` for ``W = Σ_{u ∈ U_i} |I_u|``, the work of the query itself.
* :func:`spanning` ``(rows)``: those rows whole; it answers the similarity of any pair among them
  (:meth:`Side.pair_scores`), at ``O(Σ |row|)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from chorus.services.similarity.overlay import SideState
from chorus.services.similarity.side import Side
from chorus.services.similarity.sparse import csr_layout


class Local(NamedTuple):
    """A local side and the global index of each of its rows (int64 (n,), ascending raw-id order)."""

    side: Side
    rows: np.ndarray

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """The local index of each of ``rows`` (global indices, int (m,)), -1 for one it does not hold."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(self.rows, kind="stable")
        held = self.rows[order]
        at = np.minimum(np.searchsorted(held, rows), max(held.shape[0] - 1, 0))
        if held.shape[0] == 0:
            return np.full(rows.shape[0], -1, dtype=np.int64)
        return np.where(held[at] == rows, order[at], -1).astype(np.int64)


def _numbered(state: SideState, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct indices of ``idx`` in raw-id order, and the position of each entry of ``idx`` among them."""
    uniq, inverse = np.unique(idx, return_inverse=True)
    order = np.argsort(state.keys(uniq), kind="stable")
    local = np.empty(order.shape[0], dtype=np.int64)
    local[order] = np.arange(order.shape[0])
    return uniq[order], local[inverse.reshape(-1)]


def build(
    rows: SideState, cols: SideState, r: np.ndarray, c: np.ndarray, x: np.ndarray, extra: np.ndarray | None = None
) -> Local:
    """The local side of the entries ``(r[p], c[p], x[p])`` (global row and column indices, ratings), holding
    also the rows ``extra`` (which may have no entry here); statistics are the merged rows' (all of each row,
    not only the entries given)."""
    every = r if extra is None else np.concatenate([r, np.asarray(extra, dtype=np.int64)])
    row_ids, row_local = _numbered(rows, every)
    row_local = row_local[: r.shape[0]]
    col_ids, col_local = _numbered(cols, c)
    n_rows, n_cols = row_ids.shape[0], col_ids.shape[0]
    indptr, indices, ratings, _ = csr_layout(row_local, col_local, x, n_rows)
    t_indptr, t_indices, t_ratings, _ = csr_layout(col_local, row_local, x, n_cols)
    count, mean, norm = rows.row_stats(row_ids)
    side = Side(
        rows.name,
        indptr,
        indices,
        ratings,
        t_indptr,
        t_indices,
        t_ratings,
        count,
        mean,
        norm,
        np.arange(n_rows, dtype=np.int64),
    )
    return Local(side, row_ids)


def around(rows: SideState, cols: SideState, query: np.ndarray) -> Local:
    """The local side of ``query`` (global row indices, int (q,)): their columns, and every row those columns
    hold (see the module docstring). The query rows are among its rows."""
    query = np.asarray(query, dtype=np.int64)
    _, reached, _ = rows.gather(query)
    columns = np.unique(reached)
    cptr, r, x = cols.gather(columns)
    c = np.repeat(columns, np.diff(cptr))
    return build(rows, cols, r, c, x, extra=query)


def spanning(rows: SideState, cols: SideState, which: np.ndarray) -> Local:
    """The local side holding the rows ``which`` (global indices, int (m,)) whole."""
    which = np.unique(np.asarray(which, dtype=np.int64))
    ptr, c, x = rows.gather(which)
    r = np.repeat(which, np.diff(ptr))
    return build(rows, cols, r, c, x, extra=which)
