"""EASE^R: a shallow linear autoencoder with a closed form (Steck, "Embarrassingly shallow autoencoders for
sparse data", WWW 2019), with the dropout-shaped regulariser of its denoising form (Steck, "Autoencoders that
don't overfit towards the identity", NeurIPS 2020). Formulas in ``docs/models.md``, "Ranking".

The model is one dense item×item matrix ``B`` with a zero diagonal over the items it was fitted on (every item of
a catalogue of at most ``EASE_FIT_ITEMS``, else the most reviewed ones: ``chorus.training.ranking.fit``); a
history ``x`` scores ``x B``, the sum of the rows of ``B`` of the history items, each times the item's input value
(1, or the square root of its rating with ``params["input"] == "sqrt_rating"``), and those terms are each score's
``because``. Items outside the fitted set score 0 and add nothing. ``B`` costs ``4 m²``
bytes for ``m`` fitted items (400 MB at :data:`MAX_EASE_ITEMS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, binary, popular_where_empty, weighted
from chorus.shared.contract.errors import InvalidInput

#: The largest catalogue (items, reviewed or not) EASE is fitted for. Measured at 10,000 items (1M reviews, 50,000
#: users, 2 cores, OpenBLAS on 2 threads): the fit over every item took 46 s (nearly all of it the dense Cholesky
#: inversion) with a peak of 2.5 GB resident, and ``recommend`` p99 0.65 ms.
MAX_EASE_ITEMS = 10_000

#: What a history item puts into ``x``: 1 whatever its rating, or the square root of its star rating (a 5-star
#: review weighs 1.6 times a 2-star one; the fit scales λ by the mean squared input, so one λ grid serves both).
INPUTS = ("binary", "sqrt_rating")


def check_input(params: Mapping[str, Any]) -> str:
    """``params["input"]`` (default ``"binary"``).

    Raises
    ------
    InvalidInput : an input not in :data:`INPUTS`.
    """
    kind = params.get("input", "binary")
    if kind not in INPUTS:
        raise InvalidInput(f"ease: input must be one of {', '.join(INPUTS)}, got {kind!r}")
    return str(kind)


def ease_input(history: sp.csr_array, params: Mapping[str, Any]) -> sp.csr_array:
    """``history`` (star ratings) as EASE's input ``x`` (float32, same structure): 1 per item, or √rating with
    ``params["input"] == "sqrt_rating"``.

    Raises
    ------
    InvalidInput : an unknown input, or a negative rating under ``"sqrt_rating"``.
    """
    if check_input(params) == "binary":
        return binary(history)
    data = np.asarray(history.data, dtype=np.float64)
    if data.size and data.min() < 0:
        raise InvalidInput("ease: input sqrt_rating needs ratings of at least 0")
    return sp.csr_array((np.sqrt(data).astype(np.float32), history.indices, history.indptr), shape=history.shape)


@dataclass(eq=False)
class EaseRanker(Ranker):
    """``score(h) = x[:, items] · B`` on the fitted ``items`` (0 elsewhere), ``x`` the history's input values
    (:func:`ease_input`: ``params["input"]``, default ``"binary"``); an empty history gets the popular list.

    Attributes
    ----------
    items : numpy.ndarray
        int64 (m,), ascending: the items ``B`` is over (every item, ``arange(n_items)``, on a small catalogue).
        A version written before EASE stored them holds a full (n_items, n_items) ``B`` and loads as every item.
    weights : numpy.ndarray
        float32 (m, m): ``B``, zero on the diagonal; row ``i`` is what a history item ``items[i]`` adds to the
        score of every fitted item.
    """

    kind: ClassVar[str] = "ease"
    ARRAYS: ClassVar[Mapping[str, type]] = {**Ranker.ARRAYS, "items": np.int64, "weights": np.float32}
    items: np.ndarray
    weights: np.ndarray
    _position: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m = int(self.items.shape[0])
        if self.weights.shape != (m, m):
            raise InvalidInput(f"ease: weights of shape {self.weights.shape} for {m} fitted items")
        if m and (self.items[0] < 0 or self.items[-1] >= self.n_items or np.any(np.diff(self.items) <= 0)):
            raise InvalidInput(f"ease: fitted items must be ascending, distinct and below {self.n_items}")
        check_input(self.params)
        self._position = np.full(self.n_items, -1, dtype=np.int64)
        self._position[self.items] = np.arange(m)

    @property
    def every_item(self) -> bool:
        """Whether ``B`` covers the whole catalogue."""
        return int(self.items.shape[0]) == self.n_items

    def score(self, history: sp.csr_array) -> np.ndarray:
        return self._product(ease_input(history, self.params), history)

    def score_weighted(self, history: sp.csr_array, weights: np.ndarray) -> np.ndarray:
        values = ease_input(history, self.params).data
        return self._product(weighted(history, np.asarray(weights, dtype=np.float32) * values), history)

    def _product(self, x: sp.csr_array, history: sp.csr_array) -> np.ndarray:
        if self.every_item:
            scores = np.asarray(x @ self.weights)
        else:
            scores = np.zeros((history.shape[0], self.n_items), dtype=np.float32)
            scores[:, self.items] = np.asarray(sp.csr_array(x[:, self.items]) @ self.weights)
        return popular_where_empty(scores, history, self.item_count)

    def contributions(self, history: sp.csr_array, items: np.ndarray) -> np.ndarray:
        rows = self._position[history.indices.astype(np.int64)]
        cols = self._position[np.asarray(items, dtype=np.int64)]
        out = np.zeros((cols.shape[0], rows.shape[0]), dtype=np.float64)
        r, c = rows >= 0, cols >= 0
        out[np.ix_(c, r)] = np.asarray(self.weights[np.ix_(rows[r], cols[c])], dtype=np.float64).T
        return out * np.asarray(ease_input(history, self.params).data, dtype=np.float64)[None, :]

    @classmethod
    def _fields_from(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, Any]:
        if "items" not in arrays and "weights" in arrays:  # a full B, from before the fitted items were stored
            arrays = {**arrays, "items": np.arange(arrays["weights"].shape[0], dtype=np.int64)}
        return super()._fields_from(arrays, meta)
