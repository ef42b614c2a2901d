"""The similarity-weighted rating heuristic (see ``docs/models.md``):

    r(u, i) = Σ_{j∈I_u∖{i}} R_uj · sim(i, j) / Σ_{j∈I_u∖{i}} sim(i, j)

the user's own ratings weighted by each rated item's similarity to ``i``. Where the user or the item is unknown,
or the denominator is 0, the prediction is the global mean rating, flagged as impossible. With Jaccard or cosine
(non-negative weights) the estimate is a weighted mean of the user's ratings; it is clipped to the rating scale
when one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

from chorus.services.similarity.sparse import chunks


class Predictions(NamedTuple):
    """Result of :func:`predict`: float64 ``rating`` and bool ``impossible`` (True where the global mean was used:
    unknown user or item, or a zero denominator), both of shape (n,)."""

    rating: np.ndarray
    impossible: np.ndarray


class Histories(Protocol):
    """The users' rated items: a :class:`~chorus.services.similarity.side.Side` whose rows are users, or the
    users' side of a live overlay (:class:`~chorus.services.similarity.overlay.SideState`)."""

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """Items rated by each of ``rows`` (int64 (r,)): int64 (r,)."""
        ...

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr int64 (r + 1,), items int64 (nnz,), ratings float64 (nnz,)) of ``rows``, in that order."""
        ...


PairScores = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``sim(i[p], j[p])`` for int64 item indices ``i, j`` (n,) -> float64 (n,)."""


def predict(
    histories: Histories,
    similarity: PairScores,
    user: np.ndarray,
    item: np.ndarray,
    *,
    global_mean: float,
    pair_chunk: int,
    low: float | None = None,
    high: float | None = None,
) -> Predictions:
    """Predicted ratings of ``user[p]`` for ``item[p]``, vectorised over all pairs (chunked to bound memory).

    Parameters
    ----------
    histories : Histories
        The items each user rated, with the ratings.
    similarity : PairScores
        ``sim`` in the heuristic, between items.
    user, item : int64 (n,)
        Valid indices, or -1 for an id the vocabulary does not know.
    global_mean : float
        The fallback.
    pair_chunk : int
        Rated items expanded at once.
    low, high : float, optional
        The rating scale: when given, every prediction (fallbacks included) is clipped to it.

    Returns
    -------
    Predictions
    """
    rating = np.full(user.shape[0], global_mean, dtype=np.float64)
    impossible = np.ones(user.shape[0], dtype=bool)
    known = np.flatnonzero((user >= 0) & (item >= 0))
    # by item, so that a batch split into chunks asks each chunk about its own items: the similarity forms an
    # item's row of similarities once, not once per chunk (Side.pair_scores)
    known = known[np.argsort(item[known], kind="stable")]
    lens = histories.lengths(user[known])
    for lo, hi in chunks(lens, pair_chunk):
        p = known[lo:hi]
        bptr, rated, ratings = histories.gather(user[p])
        pair = np.repeat(np.arange(hi - lo), np.diff(bptr))
        i = item[p][pair]
        other = rated != i
        pair, j, i, r = pair[other], rated[other], i[other], ratings[other]
        sim = similarity(i, j)
        num = np.bincount(pair, weights=r * sim, minlength=hi - lo)
        den = np.bincount(pair, weights=sim, minlength=hi - lo)
        ok = den != 0
        rating[p[ok]] = num[ok] / den[ok]
        impossible[p[ok]] = False
    if low is not None or high is not None:
        rating = np.clip(rating, low, high)
    return Predictions(rating, impossible)
