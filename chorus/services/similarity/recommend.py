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
from chorus.services.similarity.ranking import DECIMALS, best_per_group, order_by_rounded_score, rounded_units
from chorus.services.similarity.side import Side
from chorus.services.similarity.sparse import aligned, chunks, gather_rows
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
        return _recommend_cosine(side, seen, liked, k)
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


def _unrated(rated: np.ndarray, col: np.ndarray) -> np.ndarray:
    """bool (m,): which of ``col`` (int64 (m,)) are not among ``rated`` (ascending, non-empty)."""
    at = np.minimum(np.searchsorted(rated, col), rated.shape[0] - 1)
    unrated: NDArray[np.bool_] = rated[at] != col
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
        fresh = _unrated(rated, col)
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
    best = order_by_rounded_score(total, side.rank[uniq])[:k]
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
    keep[keep] = _unrated(rated, col[keep])
    if not keep.any():
        return _nothing()
    uniq, total, _, because = _merge(col[keep], value[keep], rounded_units(value[keep]), src[keep], rank)
    best = order_by_rounded_score(total, rank[uniq])[:k]
    return Recommendations(uniq[best], np.round(total[best], DECIMALS), because[best])


def _merge(
    col: np.ndarray, value: np.ndarray, best_units: np.ndarray, src: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group contributions by ``col``: (unique cols, summed ``value``, best rounded score, its source).

    The best source has the largest ``best_units`` (a score times 10**10, rounded), ties going to the smallest
    ``rank[src]``. All arrays (m,); sums accumulate in input order.
    """
    uniq, group = np.unique(col, return_inverse=True)
    total = np.bincount(group, weights=value, minlength=uniq.shape[0])
    firsts = best_per_group(group, best_units, rank[src])
    return uniq, total, best_units[firsts], src[firsts]


def _recommend_cosine(side: Side, rated: np.ndarray, liked: np.ndarray, k: int) -> Recommendations:
    """Cosine sums factorise: Σ_{i∈L} sim(i, j) = Σ_u q_u R_uj / ‖R_j‖ with q_u = Σ_{i∈L} R_ui / ‖R_i‖,
    so every score comes from one sparse vector × matrix product (cost ≤ the ratings of the users who rated
    a liked item), however many items were liked. ``because`` is then computed for the top ``k`` only."""
    bptr, pos = gather_rows(side.indptr, liked)
    norms = side.norm[liked]
    inv_norm = np.divide(1.0, norms, out=np.zeros(liked.shape[0]), where=norms > 0)
    users, group = np.unique(side.indices[pos], return_inverse=True)
    q = np.bincount(group, weights=side.ratings[pos] * np.repeat(inv_norm, np.diff(bptr)), minlength=users.shape[0])
    idt = side.indices.dtype
    ptr = np.array([0, users.shape[0]], dtype=idt)
    shape = (1, side.n_cols)
    common = sp.csr_array((np.ones(users.shape[0]), users.astype(idt), ptr), shape=shape) @ side.right["b"]
    num = aligned(common, sp.csr_array((q, users.astype(idt), ptr), shape=shape) @ side.right["x"])
    col = common.indices.astype(np.int64)
    den = side.norm[col]
    total = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    fresh = _unrated(rated, col)
    col, total = col[fresh], total[fresh]
    best = order_by_rounded_score(total, side.rank[col])[:k]
    top = col[best]
    return Recommendations(top, np.round(total[best], DECIMALS), _because_cosine(side, liked, top))


def _because_cosine(side: Side, liked: np.ndarray, top: np.ndarray) -> np.ndarray:
    """For each of ``top``, the liked item of largest cosine (ties: smallest raw id). Computed as the
    product of the liked rows with the ``top`` columns only; the sums are formed as in every other path."""
    if top.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    tptr, tpos = gather_rows(side.indptr, top)
    idt = side.indices.dtype

    def right(kind: str) -> sp.csr_array:  # users × top
        m = sp.csr_array(
            (side.left[kind][tpos], side.indices[tpos], tptr.astype(idt)), shape=(top.shape[0], side.n_cols)
        )
        return m.T.tocsr()

    bptr, take = gather_rows(side.indptr, liked)
    common = side.left_block("b", bptr, take) @ right("b")
    num = aligned(common, side.left_block("x", bptr, take) @ right("x"))
    row = np.repeat(np.arange(liked.shape[0]), np.diff(common.indptr))
    col = common.indices.astype(np.int64)
    src = liked[row]
    sim = REGISTRY[Measure.cosine].score({Term.dot: num, Term.norm_a: side.norm[src], Term.norm_b: side.norm[top[col]]})
    firsts = best_per_group(col, rounded_units(sim), side.rank[src])
    because = np.empty(top.shape[0], dtype=np.int64)
    because[col[firsts]] = src[firsts]
    return because
