"""Top-N ranking metrics: pure numpy over padded recommendation lists and a sparse matrix of relevant items.

Conventions shared by every function (formulas and sources in ``docs/models.md``, "Ranking evaluation"):

* ``recommended`` is an integer array (n_users, k): row ``u`` is user ``u``'s list, best first. A user with
  fewer than ``k`` recommendations has the rest of its row padded with ``-1`` (padding only at the end; no item
  twice in a row). ``k`` is the number of columns.
* ``relevant`` is a ``scipy.sparse`` CSR array (n_users, n_items) whose stored non-zero entries are the user's
  relevant held-out items ``T_u`` (their values are ignored).
* Per-user metrics return float64 (n_users,), NaN for users with no relevant item (``|T_u| = 0``); means are
  taken over the other users only (:func:`mean_over_users`). A user with relevant items and an empty list
  counts, with zeros.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import check_k

METRICS = ("precision", "recall", "ndcg", "map", "coverage", "novelty")


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray, block: int = 2048) -> np.ndarray:
    """The ``k`` allowed items of highest score per row, best first, ties by lower item index; -1 padded.

    Parameters
    ----------
    scores : float array (n_users, n_items)
        Finite scores (NaN is refused; -inf is a score like any other, ranked last).
    k : int
        List length, at least 1.
    allowed : bool array (n_users, n_items)
        The candidates; a row with ``c < k`` of them gets ``c`` items and ``k - c`` entries of -1.

    Returns
    -------
    int64 (n_users, k)
    """
    scores = np.asarray(scores)
    allowed = np.asarray(allowed, dtype=bool)
    if scores.ndim != 2 or allowed.shape != scores.shape:
        raise InvalidInput(f"scores {scores.shape} and allowed {allowed.shape} must be the same 2-D shape")
    k = check_k(k)
    if np.isnan(scores).any():
        raise InvalidInput("scores contain NaN")
    n_users, n_items = scores.shape
    out = np.full((n_users, k), -1, dtype=np.int64)
    width = min(k, n_items)
    for lo in range(0, n_users, block):
        s = scores[lo : lo + block].astype(np.float64)
        a = allowed[lo : lo + block]
        # Sort key: disallowed items after every allowed one (whatever its score), then score descending; the
        # stable sort keeps ascending item index among equal keys.
        order = np.lexsort((np.where(a, -s, 0.0), ~a), axis=-1)[:, :width]
        picked = np.take_along_axis(a, order, axis=1)
        out[lo : lo + block, :width] = np.where(picked, order, -1)
    return out


def _check(recommended: np.ndarray, relevant: sp.csr_array | sp.csr_matrix) -> tuple[np.ndarray, sp.csr_array]:
    """Validate the two inputs; return ``recommended`` as int64 and ``relevant`` as a canonical CSR copy."""
    rec = np.asarray(recommended)
    if rec.ndim != 2 or rec.shape[1] < 1 or (rec.size and not np.issubdtype(rec.dtype, np.integer)):
        raise InvalidInput(f"recommended must be a 2-D integer array with k >= 1 columns, got {rec.shape}")
    rec = rec.astype(np.int64, copy=False)
    rel = sp.csr_array(relevant, copy=True)
    rel.eliminate_zeros()
    rel.sum_duplicates()
    if rel.shape[0] != rec.shape[0]:
        raise InvalidInput(f"recommended has {rec.shape[0]} rows but relevant has {rel.shape[0]}")
    n_items = rel.shape[1]
    if rec.size and (rec.min() < -1 or rec.max() >= n_items):
        raise InvalidInput(f"recommended items must be -1 (padding) or in [0, {n_items})")
    pad = rec < 0
    if np.any(pad[:, :-1] & ~pad[:, 1:]):
        raise InvalidInput("-1 padding must come after every recommended item of a row")
    srt = np.sort(rec, axis=1)
    if np.any((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)):
        raise InvalidInput("an item is recommended twice to the same user")
    return rec, rel


def _n_relevant(rel: sp.csr_array) -> np.ndarray:
    counts: NDArray[np.int64] = np.diff(rel.indptr).astype(np.int64)
    return counts


def hits(recommended: np.ndarray, relevant: sp.csr_array | sp.csr_matrix) -> np.ndarray:
    """bool (n_users, k): whether ``recommended[u, r]`` is a relevant item of user ``u`` (padding never is)."""
    rec, rel = _check(recommended, relevant)
    return _hits(rec, rel)


def _hits(rec: np.ndarray, rel: sp.csr_array) -> np.ndarray:
    n_items = rel.shape[1]
    # (user, item) pairs as one int64 key; a canonical CSR lists them in ascending key order.
    rel_keys = np.repeat(np.arange(rel.shape[0], dtype=np.int64), _n_relevant(rel)) * n_items + rel.indices
    rec_keys = np.arange(rec.shape[0], dtype=np.int64)[:, None] * n_items + rec
    pos = np.minimum(np.searchsorted(rel_keys, rec_keys), max(rel_keys.size - 1, 0))
    found = rel_keys[pos] == rec_keys if rel_keys.size else np.zeros(rec.shape, dtype=bool)
    return found & (rec >= 0)


def _per_user(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    out = np.full(n_rel.shape, np.nan)
    ok = n_rel > 0
    out[ok] = values[ok]
    return out


def precision_at_k(recommended: np.ndarray, relevant: sp.csr_array | sp.csr_matrix) -> np.ndarray:
    """Precision@k per user: ``|L_u ∩ T_u| / k``, float64 (n_users,), NaN where ``|T_u| = 0``.

    The denominator is ``k`` (the number of columns) even when the list is shorter (padded), the usual
    definition; it is not ``min(k, |T_u|)`` (what ``implicit.evaluation.precision_at_k`` divides by).
    """
    rec, rel = _check(recommended, relevant)
    return _per_user(_hits(rec, rel).sum(axis=1) / rec.shape[1], _n_relevant(rel))


def recall_at_k(recommended: np.ndarray, relevant: sp.csr_array | sp.csr_matrix) -> np.ndarray:
    """Recall@k per user: ``|L_u ∩ T_u| / |T_u|``, float64 (n_users,), NaN where ``|T_u| = 0``.

    The standard definition: relevant items found over all relevant items, so it is below 1 whenever
    ``|T_u| > k`` (no ``min(k, |T_u|)`` in the denominator).
    """
    rec, rel = _check(recommended, relevant)
    n_rel = _n_relevant(rel)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _per_user(_hits(rec, rel).sum(axis=1) / n_rel, n_rel)


def _discounts(k: int) -> np.ndarray:
    """``1 / log2(r + 1)`` for ranks ``r = 1..k``, float64 (k,)."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_at_k(recommended: np.ndarray, relevant: sp.csr_array | sp.csr_matrix) -> np.ndarray:
    """NDCG@k per user with binary gains, float64 (n_users,), NaN where ``|T_u| = 0``.

    ``DCG = Σ_{r=1..k} rel_r / log2(r + 1)`` with ``rel_r = 1`` when the item at rank ``r`` is in ``T_u``;
    ``IDCG = Σ_{r=1..min(|T_u|, k)} 1 / log2(r + 1)``; ``NDCG = DCG / IDCG`` (Järvelin & Kekäläinen 2002).
    """
    rec, rel = _check(recommended, relevant)
    k = rec.shape[1]
    disc = _discounts(k)
    n_rel = _n_relevant(rel)
    ideal = np.concatenate(([np.inf], np.cumsum(disc)))[np.minimum(n_rel, k)]
    return _per_user(_hits(rec, rel) @ disc / ideal, n_rel)


def average_precision_at_k(recommended: np.ndarray, relevant: sp.csr_array | sp.csr_matrix) -> np.ndarray:
    """AP@k per user, float64 (n_users,), NaN where ``|T_u| = 0``; its mean over users is MAP@k.

    ``AP@k = (1 / min(|T_u|, k)) Σ_{r=1..k} rel_r · P@r`` with ``P@r = (Σ_{j<=r} rel_j) / r``: the precision at
    the rank of every hit, normalised by the most hits a list of length ``k`` can hold, so a perfect list scores 1.
    """
    rec, rel = _check(recommended, relevant)
    k = rec.shape[1]
    h = _hits(rec, rel)
    precision_at_rank = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    n_rel = _n_relevant(rel)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _per_user((h * precision_at_rank).sum(axis=1) / np.minimum(n_rel, k), n_rel)


def catalogue_coverage(recommended: np.ndarray, n_candidates: int) -> float:
    """Distinct items over all the given lists divided by the number of candidate items (padding ignored).

    ``recommended``: int array (n_users, k). ``n_candidates``: the catalogue the lists could draw from (in the
    ranking protocol, the items with a training rating).
    """
    rec = np.asarray(recommended)
    if n_candidates < 1:
        raise InvalidInput(f"n_candidates must be at least 1, got {n_candidates}")
    return float(np.unique(rec[rec >= 0]).size / n_candidates)


def novelty(recommended: np.ndarray, item_counts: np.ndarray, n_users: int) -> np.ndarray:
    """Mean self-information of each user's recommended items, float64 (n_users,), NaN for an empty list.

    ``novelty_u = (1 / |L_u|) Σ_{i ∈ L_u} -log2(c_i / n_users)``: ``c_i`` the number of training ratings of item
    ``i`` (each user rates an item once, so the number of training users who rated it) and ``n_users`` the
    number of users with a training rating, so ``c_i / n_users`` is the share of users who know the item
    (Zhou et al. 2010). A recommended item with no training rating has infinite self-information and is
    refused.

    Parameters
    ----------
    recommended : int array (n_users, k), -1 padded.
    item_counts : int array (n_items,)
        Training ratings per item.
    n_users : int
        Users with at least one training rating.
    """
    rec = np.asarray(recommended, dtype=np.int64)
    counts = np.asarray(item_counts, dtype=np.float64)
    if n_users < 1 or (counts.size and counts.max() > n_users):
        raise InvalidInput(f"n_users must be at least 1 and at least every item count, got {n_users}")
    valid = rec >= 0
    c = np.where(valid, counts[np.where(valid, rec, 0)], 1.0)
    if np.any(c[valid] <= 0):
        raise InvalidInput("a recommended item has no training rating (its self-information is infinite)")
    info = np.where(valid, -np.log2(c / n_users), 0.0)
    length = valid.sum(axis=1)
    out = np.full(rec.shape[0], np.nan)
    out[length > 0] = info.sum(axis=1)[length > 0] / length[length > 0]
    return out


def mean_over_users(values: np.ndarray) -> float:
    """Mean of a per-user metric over the users it is defined for (non-NaN); NaN when there are none."""
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def evaluate_rankings(
    recommended: np.ndarray,
    relevant: sp.csr_array | sp.csr_matrix,
    item_counts: np.ndarray,
    n_users: int,
    n_candidates: int,
) -> dict[str, float]:
    """Every ranking metric at ``k`` (the columns of ``recommended``), averaged as the protocol says.

    Only users with at least one relevant item take part: precision, recall, NDCG and MAP are means of the
    per-user values over them; coverage counts the distinct items in their lists; novelty is the mean of their
    per-user novelty (over those with a non-empty list).

    Parameters
    ----------
    recommended : int array (n_users, k), -1 padded.
    relevant : CSR array (n_users, n_items) of held-out relevant items.
    item_counts : int array (n_items,)
        Training ratings per item (novelty's popularity).
    n_users : int
        Users with at least one training rating (novelty's denominator).
    n_candidates : int
        Items with a training rating (coverage's denominator).

    Returns
    -------
    dict
        ``{"precision", "recall", "ndcg", "map", "coverage", "novelty"}``, floats.
    """
    rec, rel = _check(recommended, relevant)
    evaluated = _n_relevant(rel) > 0
    if not evaluated.any():
        raise InvalidInput("no user has a relevant held-out item: nothing to evaluate")
    return {
        "precision": mean_over_users(precision_at_k(rec, rel)),
        "recall": mean_over_users(recall_at_k(rec, rel)),
        "ndcg": mean_over_users(ndcg_at_k(rec, rel)),
        "map": mean_over_users(average_precision_at_k(rec, rel)),
        "coverage": catalogue_coverage(rec[evaluated], n_candidates),
        "novelty": mean_over_users(novelty(rec[evaluated], item_counts, n_users)),
    }
