"""The similarity-weighted rating heuristic (see ``docs/models.md``):

    r(u, i) = Σ_{j∈I_u∖{i}} R_uj · sim(i, j) / Σ_{j∈I_u∖{i}} sim(i, j)

the user's own ratings weighted by each rated item's similarity to ``i``. Where the user or the item is unknown,
or the denominator is 0, the prediction is the global mean rating, flagged as impossible. With Jaccard or cosine
(non-negative weights) the estimate is a weighted mean of the user's ratings; it is clipped to the rating scale
when one is given.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from chorus.services.similarity.side import Side
from chorus.services.similarity.sparse import chunks, gather_rows
from chorus.shared.contract.names import Measure


class Predictions(NamedTuple):
    """Result of :func:`predict`: float64 ``rating`` and bool ``impossible`` (True where the global mean was used:
    unknown user or item, or a zero denominator), both of shape (n,)."""

    rating: np.ndarray
    impossible: np.ndarray


def predict(
    users: Side,
    items: Side,
    user: np.ndarray,
    item: np.ndarray,
    measure: Measure,
    *,
    global_mean: float,
    pair_chunk: int,
    low: float | None = None,
    high: float | None = None,
) -> Predictions:
    """Predicted ratings of ``user[p]`` for ``item[p]``, vectorised over all pairs (chunked to bound memory).

    Parameters
    ----------
    users, items : Side
        The user side (rows are users) and the item side (rows are items) of the index.
    user, item : int64 (n,)
        Valid indices, or -1 for an id the vocabulary does not know.
    measure : Measure
        ``sim`` in the heuristic.
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
    lens = users.count_int[user[known]]
    for lo, hi in chunks(lens, pair_chunk):
        p = known[lo:hi]
        bptr, pos = gather_rows(users.indptr, user[p])
        pair = np.repeat(np.arange(hi - lo), np.diff(bptr))
        j = users.indices[pos].astype(np.int64)
        i = item[p][pair]
        other = j != i
        pair, j, i, r = pair[other], j[other], i[other], users.ratings[pos[other]]
        sim = items.pair_scores(i, j, measure, pair_chunk)
        num = np.bincount(pair, weights=r * sim, minlength=hi - lo)
        den = np.bincount(pair, weights=sim, minlength=hi - lo)
        ok = den != 0
        rating[p[ok]] = num[ok] / den[ok]
        impossible[p[ok]] = False
    if low is not None or high is not None:
        rating = np.clip(rating, low, high)
    return Predictions(rating, impossible)
