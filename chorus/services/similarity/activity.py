"""Who reviewed what, lately: each user's most recent reviews and the busiest users of a served version.

Built once per loaded version from its ``data`` component, in a few vectorised passes: the rows are ordered by
(user, newest first, item) with one ``lexsort``, and the first :data:`RECENT` rows of each user's run are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chorus.shared.contract.names import MAX_K
from chorus.shared.data.ratings import Ratings

RECENT = 5
"""Reviews kept per user, newest first."""


@dataclass(frozen=True)
class Activity:
    """Each user's review count, mean rating and :data:`RECENT` newest reviews; the users by activity.

    Attributes
    ----------
    reviews : numpy.ndarray
        int64 (n_users,), reviews per user.
    mean : numpy.ndarray
        float64 (n_users,), each user's mean rating (0 for none).
    offsets : numpy.ndarray
        int64 (n_users + 1,); user ``u``'s newest reviews are rows ``offsets[u]:offsets[u + 1]`` of the arrays below.
    item, rating, timestamp : numpy.ndarray
        int32, float32 and int64 (m,): the kept reviews, per user newest first, ties by item index.
    busiest : numpy.ndarray
        int64 (at most MAX_K,), users by review count, most first, ties by user index.
    """

    reviews: np.ndarray
    mean: np.ndarray
    offsets: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    busiest: np.ndarray

    @classmethod
    def from_ratings(cls, ratings: Ratings, keep: int = RECENT) -> Activity:
        n_users = ratings.n_users
        reviews = np.bincount(ratings.user, minlength=n_users).astype(np.int64)
        sums = np.bincount(ratings.user, weights=ratings.rating.astype(np.float64), minlength=n_users)
        mean = np.divide(sums, reviews, out=np.zeros(n_users), where=reviews > 0)
        order = np.lexsort((ratings.item, -ratings.timestamp.astype(np.int64), ratings.user))
        starts = np.concatenate(([0], np.cumsum(reviews)))
        rank = np.arange(order.size) - starts[ratings.user[order]]  # 0 for each user's newest review
        kept = order[rank < keep]
        offsets = np.concatenate(([0], np.cumsum(np.minimum(reviews, keep)))).astype(np.int64)
        busiest = np.lexsort((np.arange(n_users), -reviews))[:MAX_K].astype(np.int64)
        return cls(
            reviews,
            mean,
            offsets,
            ratings.item[kept].astype(np.int32),
            ratings.rating[kept].astype(np.float32),
            ratings.timestamp[kept].astype(np.int64),
            busiest,
        )

    def recent(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """User ``u``'s newest reviews: item indices (int32), ratings (float32) and timestamps (int64 seconds)."""
        lo, hi = int(self.offsets[u]), int(self.offsets[u + 1])
        return self.item[lo:hi], self.rating[lo:hi], self.timestamp[lo:hi]


def day(timestamp: float) -> str:
    """A timestamp (seconds since the epoch) as its UTC date, ``YYYY-MM-DD``."""
    return str(np.datetime64(int(timestamp), "s").astype("datetime64[D]"))
