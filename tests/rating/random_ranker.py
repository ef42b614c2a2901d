"""A toy ranker written by the recipe of ``docs/models.md``, "Adding a model kind": its module (this one) holds
the class and, as a toy may, its trainer too; its spec line is ``tests/rating/random_spec.py``.

Every item gets a random weight, drawn once when fitted from ``params["seed"]``; every history is scored by those
weights, and an empty one gets the popular list, as the contract asks of every ranker. It imports no training
code, so the service's registry can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, popular_where_empty


@dataclass(eq=False)
class RandomRanker(Ranker):
    """``score(h)_i = w_i``, a seeded uniform weight per item; an empty history gets the popular list.

    Attributes
    ----------
    weights : numpy.ndarray
        float64 (n_items,): ``w``.
    """

    kind: ClassVar[str] = "random"
    ARRAYS: ClassVar[Mapping[str, type]] = {**Ranker.ARRAYS, "weights": np.float64}
    weights: np.ndarray

    def score(self, history: sp.csr_array) -> np.ndarray:
        scores = np.broadcast_to(self.weights, (history.shape[0], self.n_items))
        return popular_where_empty(scores, history, self.item_count)


def fit_random(reviews: sp.csr_array, params: dict[str, Any]) -> RandomRanker:
    """The weights from ``numpy.random.default_rng(params["seed"])``, and the review count of every item."""
    counts = np.bincount(sp.csr_array(reviews).indices, minlength=reviews.shape[1]).astype(np.int64)
    weights = np.random.default_rng(int(params["seed"])).random(reviews.shape[1])
    return RandomRanker(item_count=counts, params=dict(params), weights=weights)
