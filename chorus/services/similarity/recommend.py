""" "Because you liked": items ranked by their summed similarity to the items a user liked.

score(j) = Σ_{i liked} sim(i, j) over the items ``j`` the user has not rated, where liked means rated at least
the like threshold (all the user's items when none is); ``because`` names the liked item with the largest
sim(i, j). Ranked like similar items (rounded score descending, raw id ascending; see
:mod:`chorus.services.similarity.ranking`). Only items sharing a user with a liked item are candidates (for
Jaccard and cosine with positive ratings, the others score 0).

Two ways to form the sum (``docs/models.md``, "Because you liked"):

- exact, over every item: cosine always (its sum factorises into one sparse product), and any measure when no
  neighbour table is attached;
- over the neighbour table, for Jaccard and Pearson when the index has one: ``sim(i, j)`` counts only when ``j``
  is among the ``K`` stored neighbours of ``i`` (item-based top-N, Deshpande and Karypis, TOIS 2004). Their exact
  sums need a similarity row per liked item (hundreds of milliseconds for a heavy MovieLens user); the table
  makes a query ``O(|liked| · K)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from chorus.services.similarity.measures import REGISTRY, Term
from chorus.services.similarity.ranking import (
    DECIMALS,
    Q_MAX,
    rank_bits,
    rounded_units,
    top_by_rounded_score,
)
from chorus.services.similarity.side import Side
from chorus.services.similarity.sparse import chunks, gather_rows, group_index, group_sums, positions_in
from chorus.shared.contract.names import Measure


class Recommendations(NamedTuple):
    """Result of :func:`recommend`: int64 ``items``, float64 ``scores`` (rounded) and int64 ``because`` (the liked
    item that contributed most to each score), all of shape (n,)."""

    items: np.ndarray
    scores: np.ndarray
    because: np.ndarray


def recommend(
    side: Side,
    rated: np.ndarray,
    ratings: np.ndarray,
    k: int,
    measure: Measure,
    *,
    like_threshold: float,
    block_nnz: int,
    table: tuple[np.ndarray, np.ndarray] | None = None,
    exclude: np.ndarray | None = None,
) -> Recommendations:
    """The ``k`` best items for a user who rated ``rated`` with ``ratings``.

    Parameters
    ----------
    side : Side
        The item side of the index (rows are items).
    rated : int (r,)
        The items the user rated, ascending.
    ratings : float64 (r,)
        Their ratings.
    k : int
        At least 1.
    measure : Measure
    like_threshold : float
        Liked means rated at least this.
    block_nnz : int
        Work budget of one chunk of liked items (:meth:`Side.row_work`).
    table : (int32 (n_items, K), float64 (n_items, K)), optional
        The neighbour table of ``measure`` (neighbours -1 padded, scores rounded). Given for Jaccard or Pearson,
        the sums run over it; ignored for cosine.
    exclude : int (e,), optional
        Items never recommended besides the rated ones (those the user viewed).

    Cost: cosine is one sparse vector × matrix product (its sum factorises); the other measures need the
    similarity row of every liked item, taken in chunks of ``block_nnz`` work, so memory stays bounded but a
    user with thousands of liked items takes seconds.
    """
    liked = liked_items(rated, ratings, like_threshold)
    if liked.shape[0] == 0:
        return _nothing()
    seen = rated.astype(np.int64) if exclude is None else np.union1d(rated, exclude).astype(np.int64)
    if measure == Measure.cosine:
        return _recommend_cosine(side, seen, liked, k, block_nnz)
    if table is not None:
        return recommend_from_table(*table, side.rank, seen, liked, k)
    return _recommend_summed(side, seen, liked, k, measure, block_nnz)


def liked_items(rated: np.ndarray, ratings: np.ndarray, like_threshold: float) -> np.ndarray:
    """The items liked among ``rated`` (int (r,)) with ``ratings`` (float64 (r,)): those rated at least
    ``like_threshold``, all of them when none is. int64 (l,), in the order of ``rated``."""
    liked = rated[ratings >= like_threshold]
    return (liked if liked.shape[0] else rated).astype(np.int64)


def _nothing() -> Recommendations:
    empty = np.zeros(0, dtype=np.int64)
    return Recommendations(empty, np.zeros(0), empty)


def _unrated(rated: np.ndarray, col: np.ndarray, n: int) -> np.ndarray:
    """bool (m,): which of ``col`` (int64 (m,), in ``0..n-1``) are not among ``rated`` (int (r,))."""
    unrated: NDArray[np.bool_] = positions_in(rated, col, n) < 0
    return unrated


def _recommend_summed(
    side: Side, rated: np.ndarray, liked: np.ndarray, k: int, measure: Measure, block_nnz: int
) -> Recommendations:
    """Any measure: the similarity rows of the liked items, summed per candidate.

    Liked items go through the sparse product in chunks of bounded work; each chunk is reduced to one entry per
    candidate (sum, best contributor) and merged, so memory stays O(block_nnz + n_items)."""
    merged: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    for lo, hi in chunks(side.row_work()[liked], block_nnz):
        cand = side.candidates(liked[lo:hi], (measure,), exclude_self=False)
        col = cand.col.astype(np.int64)
        fresh = _unrated(rated, col, side.n_rows)
        if not fresh.any():
            continue
        sim = cand.scores[measure][fresh]
        part = _merge(col[fresh], sim, rounded_units(sim), liked[lo:hi][cand.row[fresh]], side.rank)
        if merged is not None:
            col_, value, units, src = (np.concatenate([a, b]) for a, b in zip(merged, part, strict=True))
            part = _merge(col_, value, units, src, side.rank)
        merged = part
    if merged is None:
        return _nothing()
    uniq, total, _, because = merged
    best = top_by_rounded_score(total, side.rank[uniq], k)
    return Recommendations(uniq[best], np.round(total[best], DECIMALS), because[best])


def recommend_from_table(
    neighbors: np.ndarray, scores: np.ndarray, rank: np.ndarray, rated: np.ndarray, liked: np.ndarray, k: int
) -> Recommendations:
    """The sums over the stored neighbours of the liked items: ``|liked| · K`` entries, grouped by candidate.

    ``neighbors`` int (n, K) -1 padded and ``scores`` float64 (n, K) by item; ``rank`` int64 (n,) the raw-id
    rank; ``rated`` int64 (r,) ascending, never recommended; ``liked`` int64 (l,)."""
    col = neighbors[liked].ravel().astype(np.int64)
    value = scores[liked].ravel()
    src = np.repeat(liked, neighbors.shape[1])
    keep = col >= 0
    keep[keep] = _unrated(rated, col[keep], rank.shape[0])
    if not keep.any():
        return _nothing()
    uniq, total, _, because = _merge(col[keep], value[keep], rounded_units(value[keep]), src[keep], rank)
    best = top_by_rounded_score(total, rank[uniq], k)
    return Recommendations(uniq[best], np.round(total[best], DECIMALS), because[best])


def _merge(
    col: np.ndarray, value: np.ndarray, best_units: np.ndarray, src: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group contributions by ``col``: (unique cols, summed ``value``, best rounded score, its source).

    The best source has the largest ``best_units`` (a score in [-1, 1] times 10**10, rounded), ties going to the
    smallest ``rank[src]``. All arrays (m,); sums accumulate in input order. The best is the smallest of one
    int64 per contribution that orders as (units descending, rank ascending), so nothing is sorted.
    """
    uniq, group = group_index(col, rank.shape[0])
    total = np.bincount(group, weights=value, minlength=uniq.shape[0])
    descending = np.clip(Q_MAX - best_units, 0, 2 * Q_MAX).astype(np.int64)
    key = (descending << rank_bits(rank.shape[0])) | rank[src]
    best = np.full(uniq.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(best, group, key)
    won = np.flatnonzero(key == best[group])  # one per group: a (source, column) pair occurs once
    firsts = np.empty(uniq.shape[0], dtype=np.int64)
    firsts[group[won]] = won
    return uniq, total, best_units[firsts], src[firsts]


_FULL_PASS = 4
"""Cosine sums run one pass over every rating (two CSR matrix × vector products) when the users who rated a
liked item hold at least 1/4 of the ratings: cheaper than gathering their rows."""


def _recommend_cosine(side: Side, rated: np.ndarray, liked: np.ndarray, k: int, block_nnz: int) -> Recommendations:
    """Cosine sums factorise: Σ_{i∈L} sim(i, j) = Σ_u q_u R_uj / ‖R_j‖ with q_u = Σ_{i∈L} R_ui / ‖R_i‖, so every
    score comes from the ratings of the users who rated a liked item, however many items were liked.
    ``because`` is then computed for the top ``k`` only."""
    bptr, pos = gather_rows(side.indptr, liked)
    norms = side.norm[liked]
    inv_norm = np.divide(1.0, norms, out=np.zeros(liked.shape[0]), where=norms > 0)
    weight = side.ratings[pos] * np.repeat(inv_norm, np.diff(bptr))
    users, q = group_sums(side.indices[pos].astype(np.int64), weight, side.n_cols)
    col, num = _cosine_sums(side, users, q)
    den = side.norm[col]
    total = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    fresh = _unrated(rated, col, side.n_rows)
    col, total = col[fresh], total[fresh]
    best = top_by_rounded_score(total, side.rank[col], k)
    top = col[best]
    return Recommendations(
        top, np.round(total[best], DECIMALS), _because_cosine(side, liked, top, bptr, pos, users, block_nnz)
    )


def _cosine_sums(side: Side, users: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row rated by one of ``users`` (int64 (u,) ascending), ascending, and its Σ_u q_u R_uj (``q`` float64
    (u,)): int64 (c,), float64 (c,).

    Each sum adds its terms in ascending user order from 0, as the sparse product ``q @ R`` does, so the
    numbers are the same whichever way they are formed: a pass over all ratings (CSR matrix × vector, where
    the other users add exact zeros) when these users hold a fair share of them, else their rows gathered and
    grouped by row."""
    by_user = side.right["x"]  # columns×rows: each user's rows, ascending
    work = int(np.diff(by_user.indptr)[users].sum())
    if work * _FULL_PASS >= side.indices.shape[0]:
        dense_q, reached = np.zeros(side.n_cols), np.zeros(side.n_cols)
        dense_q[users], reached[users] = q, 1.0
        col = np.flatnonzero(side.whole("b") @ reached)
        return col, (side.whole("x") @ dense_q)[col]
    uptr, upos = gather_rows(by_user.indptr, users)
    return group_sums(
        by_user.indices[upos].astype(np.int64), np.repeat(q, np.diff(uptr)) * by_user.data[upos], side.n_rows
    )


def _because_cosine(
    side: Side,
    liked: np.ndarray,
    top: np.ndarray,
    bptr: np.ndarray,
    pos: np.ndarray,
    users: np.ndarray,
    block_nnz: int,
) -> np.ndarray:
    """For each of ``top`` (int64 (t,)), the liked item of largest cosine (ties: smallest raw id).

    The dot products of the liked rows (``bptr`` int64 (l + 1,), ``pos`` int64 (e,) their entries) with the top
    rows, as sparse × dense products: the liked rows over ``users`` (int64 (u,) ascending, every user who rated
    a liked item) times the top rows' ratings of those users as a dense (u, t) block, at most ``block_nnz``
    cells of it at a time. Each dot product adds R_ui R_uj in ascending user order from 0, as the sparse
    product of the two blocks would (the users who did not rate ``j`` add exact zeros)."""
    because = np.zeros(top.shape[0], dtype=np.int64)
    if top.shape[0] == 0:
        return because
    idt = side.indices.dtype
    shape = (liked.shape[0], users.shape[0])
    columns = positions_in(users, side.indices[pos].astype(np.int64), side.n_cols).astype(idt)
    left_x = sp.csr_array((side.ratings[pos], columns, bptr.astype(idt)), shape=shape)
    left_b = sp.csr_array((np.ones(pos.shape[0]), columns, bptr.astype(idt)), shape=shape)
    liked_rank = side.rank[liked][:, None]
    step = max(1, block_nnz // max(users.shape[0], 1))
    for lo in range(0, top.shape[0], step):
        part = top[lo : lo + step]
        tptr, tpos = gather_rows(side.indptr, part)
        at = positions_in(users, side.indices[tpos].astype(np.int64), side.n_cols)
        mine = at >= 0  # users of a top row who rated no liked item share nothing with the liked rows
        cell = (at[mine], np.repeat(np.arange(part.shape[0]), np.diff(tptr))[mine])
        block, present = np.zeros((users.shape[0], part.shape[0])), np.zeros((users.shape[0], part.shape[0]))
        block[cell], present[cell] = side.ratings[tpos][mine], 1.0
        sim = REGISTRY[Measure.cosine].score(
            {Term.dot: left_x @ block, Term.norm_a: side.norm[liked][:, None], Term.norm_b: side.norm[part][None, :]}
        )
        # only pairs with a common user compete (every top row has one: it is a candidate)
        units = np.where((left_b @ present) > 0, rounded_units(sim), -np.inf)
        best = units == units.max(axis=0)
        because[lo : lo + step] = liked[np.argmin(np.where(best, liked_rank, np.iinfo(np.int64).max), axis=0)]
    return because
