"""Offline: the trainer of every ranker and the grid its hyperparameters are chosen from (the service never
imports this module).

``FITTERS[kind](reviews, params)`` fits a ranker on the user×item training matrix (CSR, star ratings as values)
with one point of ``GRIDS[kind]``; the selection (``ranking_train.py``) tries every point on a validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers import PopularRanker, Ranker

Fitter = Callable[[sp.csr_array, dict[str, Any]], Ranker]


def item_counts(reviews: sp.csr_array) -> np.ndarray:
    """int64 (n_items,): training reviews per item (stored entries of each column)."""
    return np.bincount(sp.csr_array(reviews).indices, minlength=reviews.shape[1]).astype(np.int64)


def fit_popular(reviews: sp.csr_array, params: dict[str, Any]) -> PopularRanker:
    """Most popular: the review count of every item."""
    return PopularRanker(item_count=item_counts(reviews), params=dict(params))


FITTERS: dict[str, Fitter] = {
    "popular": fit_popular,
}

GRIDS: dict[str, list[dict[str, Any]]] = {
    "popular": [{}],
}
