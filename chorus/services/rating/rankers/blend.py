"""A blend of EASE^R and iALS: the two rankers' scores, each standardised over the items a history may be
recommended, mixed with a weight chosen on validation. Formulas in ``docs/models.md``, "Ranking".

Linear blends of a neighbourhood-style model and a factor model are the oldest trick of top-N accuracy (the
Netflix Prize ensembles, Koren 2009; Steck 2019 compares EASE with both kinds): on MovieLens 100K the two make
different mistakes, and their standardised mean beats either on validation and test alike.

Not served yet (``rankers.UNSERVED``): the API's ``method`` list does not name ``ease_ials``. Serving it takes
that name in the list, a line in ``REGISTRY`` and its fitter and grid moved into ``FITTERS``/``GRIDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, popular_where_empty
from chorus.services.rating.rankers.ease import EaseRanker
from chorus.services.rating.rankers.ials import IalsRanker
from chorus.shared.contract.errors import InvalidInput


def standardised(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``(s − mean) / std`` of one row of scores over its ``allowed`` items (float64; 0 where std is 0)."""
    s = np.asarray(scores, dtype=np.float64)
    if not allowed.any():
        return np.zeros_like(s)
    mean = s[allowed].mean()
    std = s[allowed].std()
    return (s - mean) / std if std > 0 else np.zeros_like(s)


@dataclass(eq=False)
class EaseIalsRanker(Ranker):
    """``score(h) = w·z(ease(h)) + (1 − w)·z(ials(h))``, ``z`` standardising a row over the items with training
    reviews outside the history; an empty history gets the popular list. ``params`` holds EASE's ``lam``,
    iALS's ``regularization``, ``alpha`` and ``values``, and the weight ``w`` in [0, 1]. Scores have no
    per-history-item decomposition (iALS has none), so no ``because``.

    Attributes
    ----------
    weights : numpy.ndarray
        float32 (n_items, n_items): EASE's ``B``.
    item_factors : numpy.ndarray
        float32 (n_items, factors): iALS's ``Y``.
    """

    kind: ClassVar[str] = "ease_ials"
    ARRAYS: ClassVar[Mapping[str, type]] = {**Ranker.ARRAYS, "weights": np.float32, "item_factors": np.float32}
    weights: np.ndarray
    item_factors: np.ndarray
    _ease: EaseRanker = field(init=False, repr=False)
    _ials: IalsRanker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        w = float(self.params.get("w", np.nan))
        if not 0.0 <= w <= 1.0:
            raise InvalidInput(f"ease_ials: the weight w must be in [0, 1], got {self.params.get('w')!r}")
        self._ease = EaseRanker(item_count=self.item_count, params=self.params, weights=self.weights)
        self._ials = IalsRanker(item_count=self.item_count, params=self.params, item_factors=self.item_factors)

    def score(self, history: sp.csr_array) -> np.ndarray:
        w = float(self.params["w"])
        ease = np.asarray(self._ease.score(history), dtype=np.float64)
        ials = self._ials.score(history)
        known = self.item_count > 0
        out = np.empty((history.shape[0], self.n_items))
        for r in range(history.shape[0]):
            allowed = known.copy()
            allowed[history.indices[history.indptr[r] : history.indptr[r + 1]]] = False
            out[r] = w * standardised(ease[r], allowed) + (1.0 - w) * standardised(ials[r], allowed)
        return popular_where_empty(out, history, self.item_count)
