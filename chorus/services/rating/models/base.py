"""The interface of every rating model the service serves, and everything the models share.

A model is a :class:`RatingModel`: it holds the baseline every model has (the global mean α, the biases β_u and β_i,
the training counts, the popular-items ranking and the rating scale) and writes only its scoring, as an algorithm
of Surprise's ``AlgoBase`` writes only ``estimate``: :meth:`RatingModel.score` (and, where a faster form exists,
:meth:`RatingModel.score_items`). Index checks, fallbacks, clipping to the rating scale and top-N live here, once.

Fallbacks (see docs/models.md): a user or item is unknown when its index is -1 or when it had no training rating.

=================  ==================  ==========================
user               item                prediction (``fallback``)
=================  ==================  ==========================
known              known               f(u, i) of the model (None)
unknown            known               α + β_i (``"item_bias"``)
known              unknown             α + β_u (``"user_bias"``)
unknown            unknown             α (``"global_mean"``)
=================  ==================  ==========================

An unknown user's recommendations are :attr:`RatingModel.popular_items` (``fallback = "popular"``), rated
α + β_i. Every prediction is clipped to ``[low, high]``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import numpy as np

from chorus.services.rating.stored import StoredModel
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import check_k
from chorus.shared.indices import check_indices

#: ``fallback`` names of :meth:`RatingModel.predict`, indexed by the int8 code.
FALLBACKS: tuple[str | None, ...] = (None, "item_bias", "user_bias", "global_mean")
NO_FALLBACK, ITEM_BIAS, USER_BIAS, GLOBAL_MEAN = 0, 1, 2, 3
#: ``fallback`` of :meth:`RatingModel.recommend` for an unknown user.
POPULAR = "popular"


class Predictions(NamedTuple):
    """Result of :meth:`RatingModel.predict`.

    Attributes
    ----------
    rating : numpy.ndarray
        float64 (n,), predicted ratings clipped to the rating scale.
    fallback : numpy.ndarray
        int8 (n,), indices into :data:`FALLBACKS`.
    """

    rating: np.ndarray
    fallback: np.ndarray


class Recommendations(NamedTuple):
    """Result of :meth:`RatingModel.recommend`.

    Attributes
    ----------
    items : numpy.ndarray
        int64 (k',), k' <= k item indices, best first.
    ratings : numpy.ndarray
        float64 (k',), their predicted ratings, clipped.
    fallback : str or None
        None, or :data:`POPULAR` for an unknown user.
    """

    items: np.ndarray
    ratings: np.ndarray
    fallback: str | None


@dataclass(eq=False)
class RatingModel(StoredModel):
    """A fitted rating model (the interface the service serves, and the baseline every model holds).

    Attributes
    ----------
    kind : str
        The name of the model's spec in :data:`chorus.shared.contract.kinds.RATING_MODELS`, which the artifact
        records.
    global_mean : float
        α.
    user_bias, item_bias : numpy.ndarray
        float32 (n_users,), (n_items,): β_u, β_i (zero in the global-mean model).
    user_count, item_count : numpy.ndarray
        int32 (n_users,), (n_items,): training ratings per row. A row with count 0 is unknown to the model (it
        falls back like index -1).
    popular_items : numpy.ndarray
        int32 (m,): the ranking served to unknown users
        (:func:`chorus.training.rating.fitting.popular_items`).
    low, high : float
        The rating scale; predictions are clipped to it.
    """

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_count: np.ndarray
    item_count: np.ndarray
    popular_items: np.ndarray
    low: float
    high: float

    def __post_init__(self) -> None:
        nu, ni = self.user_bias.shape, self.item_bias.shape
        if len(nu) != 1 or len(ni) != 1 or self.user_count.shape != nu or self.item_count.shape != ni:
            raise InvalidInput(
                f"array shapes do not fit together: biases {nu} and {ni}, counts {self.user_count.shape} and "
                f"{self.item_count.shape}"
            )
        pop = self.popular_items
        if pop.ndim != 1 or (pop.size and (pop.min() < 0 or pop.max() >= ni[0])):
            raise InvalidInput(f"array shapes do not fit together: popular_items outside 0..{ni[0] - 1}")

    # --- what a model writes --------------------------------------------------------------------------------

    @abstractmethod
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Unclipped f(u, i) for known pairs (Surprise's ``estimate``).

        Parameters
        ----------
        users, items : numpy.ndarray
            int64 (n,), indices of users and items known to the model (checked by the caller).

        Returns
        -------
        numpy.ndarray
            float (n,), the model's own precision (float32 for float32 parameters).
        """

    def score_items(self, user: int) -> np.ndarray:
        """Unclipped f(user, i) for every item, float64 (n_items,), for top-N; ``user`` is a known user.

        The default scores the pairs with :meth:`score`; a model overrides it where a matrix-vector product is
        faster. Items unknown to the model are scored too (the caller leaves them out)."""
        items = np.arange(self.n_items)
        return self.score(np.full(self.n_items, user), items).astype(np.float64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays that make up the model, by name: the baseline's, which a model with parameters of its own
        extends. ``global_mean`` is float64 (1,); the others as in the class attributes."""
        return {
            "global_mean": np.array([self.global_mean], dtype=np.float64),
            "user_bias": self.user_bias,
            "item_bias": self.item_bias,
            "user_count": self.user_count,
            "item_count": self.item_count,
            "popular_items": self.popular_items,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Self:
        """The model from :meth:`to_arrays`' output (used as is, read-only arrays included) and
        :meth:`to_meta`'s (at least ``{"scale": {"low", "high"}}``).

        Raises
        ------
        KeyError : a missing array or scale.
        InvalidInput : arrays whose shapes do not fit together.
        """
        return cls(**cls.baseline_fields(arrays, meta))

    # --- shared by every model ------------------------------------------------------------------------------

    @staticmethod
    def baseline_fields(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor arguments every model takes, from :meth:`to_arrays` and :meth:`to_meta` output."""
        scale = meta["scale"]
        return {
            "global_mean": float(arrays["global_mean"][0]),
            "user_bias": arrays["user_bias"],
            "item_bias": arrays["item_bias"],
            "user_count": arrays["user_count"],
            "item_count": arrays["item_count"],
            "popular_items": arrays["popular_items"],
            "low": float(scale["low"]),
            "high": float(scale["high"]),
        }

    def to_meta(self) -> dict[str, Any]:
        """What the artifact records beside the arrays: the kind, the rating scale and the sizes (JSON-able)."""
        return {
            "kind": self.kind,
            "scale": {"low": self.low, "high": self.high},
            "n_users": self.n_users,
            "n_items": self.n_items,
        }

    @property
    def n_users(self) -> int:
        return int(self.user_bias.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_bias.shape[0])

    def predict(self, users: np.ndarray, items: np.ndarray) -> Predictions:
        """Predicted ratings for pairs, clipped to ``[low, high]``, vectorised.

        Parameters
        ----------
        users, items : numpy.ndarray
            int (n,), dense indices; -1 marks an unknown user or item.

        Returns
        -------
        Predictions
            ``rating`` float64 (n,) and ``fallback`` int8 (n,): 0 known pair (:meth:`score`), 1 ``"item_bias"``
            (unknown user: α + β_i), 2 ``"user_bias"`` (unknown item: α + β_u), 3 ``"global_mean"`` (both
            unknown: α).

        Raises
        ------
        NotFound : an index below -1 or beyond the last user/item.
        InvalidInput : indices that are not integers, or ``users`` and ``items`` of different shapes.
        """
        users = np.atleast_1d(check_indices(users, self.n_users, "user", unknown_ok=True))
        items = np.atleast_1d(check_indices(items, self.n_items, "item", unknown_ok=True))
        if users.shape != items.shape:
            raise InvalidInput(f"users and items must have the same shape, got {users.shape} and {items.shape}")
        ku, ki = _known(users, self.user_count), _known(items, self.item_count)
        u, i = np.where(ku, users, 0), np.where(ki, items, 0)
        both = ku & ki
        score = self.score(u, i)  # every pair; those with an unknown side are replaced by their fallback
        if not both.all():
            # in the parameters' precision (float32 for stored models), as the models' own scores
            baseline = self.global_mean + np.where(ku, self.user_bias[u], 0.0) + np.where(ki, self.item_bias[i], 0.0)
            score = np.where(both, score, baseline)
        fallback = np.where(both, NO_FALLBACK, np.where(ki, ITEM_BIAS, np.where(ku, USER_BIAS, GLOBAL_MEAN)))
        rating = np.clip(score, self.low, self.high).astype(np.float64, copy=False)
        return Predictions(rating, fallback.astype(np.int8))

    def recommend(self, user: int, k: int = 10, exclude: np.ndarray | None = None) -> Recommendations:
        """The ``k`` items with the highest predicted rating that are not in ``exclude``.

        Parameters
        ----------
        user : int
            A user index, or -1 for an unknown user.
        k : int
            How many items, at least 1 (fewer come back when fewer remain).
        exclude : numpy.ndarray, optional
            int (m,), items never to return: the user's reviewed items (a row of the user×item CSR of
            :func:`chorus.shared.data.matrix.user_item_matrix`).

        Returns
        -------
        Recommendations
            A known user's best items by :meth:`score_items`, found with ``argpartition`` and ranked by the
            unclipped score (clipping would tie everything above ``high``), ties by item index; items the model
            never saw in training are left out. An unknown user gets :attr:`popular_items` in order, with
            ``fallback = "popular"`` and α + β_i as the rating.

        Raises
        ------
        InvalidInput : ``k`` below 1.
        NotFound : ``user`` or an excluded item out of range.
        """
        k = check_k(k)
        user = int(check_indices(np.array([user]), self.n_users, "user", unknown_ok=True)[0])
        banned = np.zeros(self.n_items, dtype=bool)
        if exclude is not None and len(exclude):
            excluded = check_indices(np.asarray(exclude).ravel(), self.n_items, "item", unknown_ok=True)
            banned[excluded[excluded >= 0]] = True
        if not _known(np.array([user]), self.user_count)[0]:
            cand = self.popular_items[~banned[self.popular_items]][:k].astype(np.int64)
            popular = self.global_mean + self.item_bias[cand].astype(np.float64)
            return Recommendations(cand, np.clip(popular, self.low, self.high), POPULAR)
        score = self.score_items(user)
        # Items the model never saw in training carry no evidence: they are not recommended to known users.
        banned |= self.item_count == 0
        score[banned] = -np.inf
        k = min(k, self.n_items - int(banned.sum()))
        if k == 0:
            return Recommendations(np.zeros(0, np.int64), np.zeros(0), None)
        top = np.argpartition(-score, k - 1)[:k] if k < self.n_items else np.arange(self.n_items)
        top = top[np.lexsort((top, -score[top]))]
        return Recommendations(top.astype(np.int64), np.clip(score[top], self.low, self.high), None)


def _known(idx: np.ndarray, count: np.ndarray) -> np.ndarray:
    """bool (n,): ``idx`` (checked int64 (n,)) is not -1 and its row had training ratings (``count`` > 0)."""
    known: np.ndarray = (idx >= 0) & (count[np.maximum(idx, 0)] > 0)
    return known
