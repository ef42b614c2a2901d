"""How similarity answers are ranked: by the score rounded to :data:`DECIMALS` places, descending, then by raw id
ascending.

The cores work on dense indices; ``rank[i]`` is index ``i``'s position in sorted raw-id order (see :func:`id_rank`).
When the vocabulary is sorted (``chorus.shared.data`` sorts it) index order *is* raw-id order and the ranks are
``arange``. Returned scores are the rounded values, so that a table lookup and an online query give
bit-identical answers.

A bounded score in [-1, 1] and a rank pack into one int64 *ranking key* (:func:`ranking_keys`) whose ascending
order is the ranking order: ``(Q_MAX − round(score · 10**10)) << rank_bits | rank``. Keys are distinct within a
row, so a partial sort of keys is an exact top ``k``. Unbounded scores (sums over liked items) are ranked by
:func:`order_by_rounded_score` instead.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chorus.shared.contract.errors import InvalidInput

DECIMALS = 10
"""Ranking precision: scores are rounded to this many decimal places before comparison."""
SCALE = 10.0**DECIMALS
Q_MAX: int = 10**DECIMALS  # |score| <= 1, so the rounded score times 10**10 lies in [-Q_MAX, Q_MAX]
Q_BITS = (2 * Q_MAX).bit_length()  # 35 bits hold (Q_MAX - q) in [0, 2 * Q_MAX]
COARSE_SHIFT = 24  # coarse score buckets of 2**24 / 10**10 ≈ 0.0017 for the per-row top-k prefilter


def id_rank(ids: np.ndarray) -> np.ndarray:
    """Each index's position in sorted raw-id order.

    Parameters
    ----------
    ids : str (n,)
        Raw ids by dense index.

    Returns
    -------
    int64 (n,)
    """
    ids = np.asarray(ids)
    rank = np.empty(ids.shape[0], dtype=np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(ids.shape[0])
    return rank


def rank_or_identity(rank: np.ndarray | None, n: int, name: str) -> np.ndarray:
    """``rank`` as int64 (n,), checked to be a permutation of ``0..n-1``; ``arange(n)`` when None.

    Raises
    ------
    InvalidInput : not a permutation.
    """
    if rank is None:
        return np.arange(n, dtype=np.int64)
    rank = np.asarray(rank, dtype=np.int64)
    if rank.shape != (n,) or (n and not np.array_equal(np.bincount(rank, minlength=n), np.ones(n))):
        raise InvalidInput(f"{name} must be a permutation of 0..{n - 1}")
    return rank


def rank_bits(n: int) -> int:
    """Bits that hold any rank of ``n`` rows."""
    return max(1, int(n - 1).bit_length())


def rounded_units(score: np.ndarray) -> np.ndarray:
    """``round(score · 10**DECIMALS)``: the rounded score as a whole number, float64 (m,), larger is better."""
    units: NDArray[np.float64] = np.rint(score * SCALE)
    return units


def quantised(score: np.ndarray) -> np.ndarray:
    """``Q_MAX − round(score · 10**10)`` for scores in [-1, 1], as int64 in [0, 2·Q_MAX]: smaller is better.

    ``score``: float64 (m,) -> int64 (m,).
    """
    q: NDArray[np.float64] = np.rint(np.clip(score, -1.0, 1.0) * SCALE)
    return (Q_MAX - q).astype(np.int64)


def ranking_keys(score: np.ndarray, rank_of_col: np.ndarray, bits: int) -> np.ndarray:
    """One int64 per candidate ordering by (rounded score desc, raw id asc); all distinct within a row.

    Parameters
    ----------
    score : float64 (m,)
        Scores in [-1, 1].
    rank_of_col : int64 (m,)
        Raw-id rank of each candidate.
    bits : int
        :func:`rank_bits` of the number of rows ranked.

    Returns
    -------
    int64 (m,)
    """
    keys: NDArray[np.int64] = (quantised(score) << bits) | rank_of_col
    return keys


def decode_keys(keys: np.ndarray, index_of_rank: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`ranking_keys`.

    Parameters
    ----------
    keys : int64 (m,)
    index_of_rank : int64 (n,)
        The index at each raw-id rank.
    bits : int

    Returns
    -------
    (int64 indices (m,), float64 rounded scores (m,))
    """
    idx = index_of_rank[keys & ((1 << bits) - 1)].astype(np.int64)
    score = (Q_MAX - (keys >> bits)).astype(np.float64) / SCALE
    return idx, score


def smallest_keys(keys: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest of distinct int64 ``keys`` (m,), sorted: the best ``k`` candidates, exactly."""
    if keys.shape[0] > k:
        keys = np.partition(keys, k - 1)[:k]
    return np.sort(keys)


def top_k_rows(
    row: np.ndarray,
    col: np.ndarray,
    score: np.ndarray,
    rank: np.ndarray,
    n_rows: int,
    k: int,
    index_of_rank: np.ndarray,
    bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` candidates of each of ``n_rows`` query rows, ranked.

    Parameters
    ----------
    row : int64 (m,)
        Query row (0..n_rows-1) of each candidate.
    col : int (m,)
        The candidate.
    score : float64 (m,)
        Scores in [-1, 1].
    rank : int64 (n,)
        Raw-id rank of every index.
    n_rows, k : int
    index_of_rank : int64 (n,)
    bits : int
        :func:`rank_bits` of ``n``.

    Returns
    -------
    (int32 (n_rows, k) candidate indices padded with -1, float64 (n_rows, k) rounded scores padded with 0)
    """
    q = quantised(score)
    # Prefilter: per row, keep the coarse score buckets that hold its best k (exact: whole buckets).
    n_buckets = (2 * Q_MAX >> COARSE_SHIFT) + 1
    coarse = q >> COARSE_SHIFT
    hist = np.bincount(row * n_buckets + coarse, minlength=n_rows * n_buckets).reshape(n_rows, n_buckets)
    last = (np.cumsum(hist, axis=1) < k).sum(axis=1)
    keep = coarse <= last[row]
    row, q = row[keep], q[keep]
    key = (q << bits) | rank[col[keep]]
    row_shift = Q_BITS + bits
    if (n_rows - 1).bit_length() + row_shift <= 63:
        packed = np.sort((row << row_shift) | key)
        row, key = packed >> row_shift, packed & ((1 << row_shift) - 1)
    else:
        order = np.lexsort((key, row))
        row, key = row[order], key[order]
    first = np.searchsorted(row, np.arange(n_rows))
    pos = np.arange(row.shape[0]) - first[row]
    top = pos < k
    idx, rounded = decode_keys(key[top], index_of_rank, bits)
    neighbours = np.full((n_rows, k), -1, dtype=np.int32)
    scores = np.zeros((n_rows, k), dtype=np.float64)
    neighbours[row[top], pos[top]] = idx
    scores[row[top], pos[top]] = rounded
    return neighbours, scores


def order_by_rounded_score(score: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Positions ordering by rounded ``score`` descending, then ``rank`` ascending (for unbounded scores such as
    sums). ``score``: float64 (m,); ``rank``: int64 (m,) -> int64 (m,)."""
    return np.lexsort((rank, -rounded_units(score)))


def top_by_rounded_score(score: np.ndarray, rank: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` positions of :func:`order_by_rounded_score`, without sorting them all: only the scores
    whose rounded value reaches the ``k``-th largest (ties included, so the answer is exact) are sorted.
    ``score``: float64 (m,); ``rank``: int64 (m,) -> int64 (min(k, m),)."""
    m = score.shape[0]
    if m <= 4 * k:
        return order_by_rounded_score(score, rank)[:k]
    units = rounded_units(score)
    kth = np.partition(units, m - k)[m - k]
    keep = np.flatnonzero(units >= kth)
    return keep[np.lexsort((rank[keep], -units[keep]))][:k]
