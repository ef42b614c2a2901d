"""What every trainer of the rating models shares: checking the training arrays, counting, the popular-items
ranking served to unknown users, and the record of a fit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chorus.shared.contract.errors import InvalidInput


@dataclass(eq=False)
class Trainset:
    """The ratings a trainer fits, checked once (as Surprise's ``Trainset``).

    Attributes
    ----------
    user, item : numpy.ndarray
        int32 or int64 (n,), dense indices of the ratings: int32 as given (the loaded ratings' own dtype, so a
        trainset of them copies no index), any other integer type converted to int64 on construction.
    rating : numpy.ndarray
        float64 (n,).
    n_users, n_items : int
        Sizes of the index spaces; rows without ratings are unknown to the fitted model.
    low, high : float
        The rating scale.

    Raises
    ------
    InvalidInput : arrays of different lengths or not 1-d, no rating, or an index outside ``0..n_users - 1`` /
        ``0..n_items - 1``.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    n_users: int
    n_items: int
    low: float
    high: float

    def __post_init__(self) -> None:
        self.user, self.item = _index(self.user), _index(self.item)
        self.rating = np.asarray(self.rating, dtype=np.float64)
        user, item = self.user, self.item
        if not (user.shape == item.shape == self.rating.shape) or user.ndim != 1:
            raise InvalidInput("user, item and rating must be 1-d arrays of the same length")
        if user.size == 0:
            raise InvalidInput("cannot fit a rating model to zero ratings")
        if user.min() < 0 or user.max() >= self.n_users or item.min() < 0 or item.max() >= self.n_items:
            raise InvalidInput("user/item indices must lie in 0..n_users-1 / 0..n_items-1")

    @property
    def n(self) -> int:
        """The number of ratings."""
        return int(self.user.shape[0])

    def subset(self, rows: np.ndarray) -> Trainset:
        """The ratings at ``rows`` (int (m,)), in the same index spaces and scale."""
        return Trainset(
            self.user[rows], self.item[rows], self.rating[rows], self.n_users, self.n_items, self.low, self.high
        )


def _index(values: np.ndarray) -> np.ndarray:
    """``values`` as they are when int32, else as int64 (see :class:`Trainset`)."""
    array = np.asarray(values)
    return array if array.dtype == np.int32 else array.astype(np.int64)


def rating_counts(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Training ratings per user and per item: int32 (n_users,), (n_items,), for ``user, item`` int (n,)."""
    return (
        np.bincount(user, minlength=n_users).astype(np.int32),
        np.bincount(item, minlength=n_items).astype(np.int32),
    )


def popular_items(
    item: np.ndarray, rating: np.ndarray, n_items: int, low: float, high: float, threshold: float | None = None
) -> np.ndarray:
    """The fallback ranking for unknown users: the most reviewed among the well-rated items.

    Rule: items whose mean rating is at least ``threshold`` (default ``low + 0.75·(high − low)``, 4 on a 1–5
    scale) come first, by number of ratings (descending), then mean (descending), then index; the remaining
    rated items follow in the same order. Items without ratings are left out.

    Parameters
    ----------
    item : numpy.ndarray
        int (n,), the item of each training rating.
    rating : numpy.ndarray
        float (n,).

    Returns
    -------
    numpy.ndarray
        int32 (m,), m = number of rated items.
    """
    if threshold is None:
        threshold = low + 0.75 * (high - low)
    count = np.bincount(item, minlength=n_items)
    total = np.bincount(item, weights=rating, minlength=n_items)
    mean = np.divide(total, count, out=np.zeros(n_items), where=count > 0)
    rated = np.flatnonzero(count > 0)
    well = mean[rated] >= threshold - 1e-9
    order = np.lexsort((rated, -mean[rated], -count[rated], ~well))
    return rated[order].astype(np.int32)


@dataclass
class FitInfo:
    """What a trainer did.

    Attributes
    ----------
    trainer : str
        ``"als"`` or ``"lbfgs"``.
    sweeps : int
        ALS sweeps run, or L-BFGS iterations.
    best_sweep : int
        The sweep whose parameters were kept (by validation RMSE when there was a validation set).
    validation_rmse, objective : list of float
        Per sweep, when tracked: clipped validation RMSE, training objective.
    best_validation_rmse, final_objective : float or None
        Of the parameters kept.
    seconds : float
    restart : int
        The restart whose parameters were kept.
    """

    trainer: str
    sweeps: int = 0
    best_sweep: int = 0
    validation_rmse: list[float] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    best_validation_rmse: float | None = None
    final_objective: float | None = None
    seconds: float = 0.0
    restart: int = 0
