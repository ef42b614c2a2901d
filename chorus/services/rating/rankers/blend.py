"""A blend of EASE^R and iALS: the two rankers' scores, each standardised over the items a history may be
recommended, mixed with a weight chosen on validation. Formulas in ``docs/models.md``, "Ranking".

Linear blends of a neighbourhood-style model and a factor model are the oldest trick of top-N accuracy (the
Netflix Prize ensembles, Koren 2009; Steck 2019 compares EASE with both kinds): on MovieLens 100K the two make
different mistakes, and their standardised mean beats either on validation and test alike. The selection takes
its parts' chosen hyperparameters and chooses only the weight (``chorus.training.ranking.train``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, popular_where_empty
from chorus.services.rating.rankers.ease import EaseRanker
from chorus.services.rating.rankers.ials import IalsRanker
from chorus.shared.contract.errors import InvalidInput


def standardised(scores: np.ndarray, known: np.ndarray, history: sp.csr_array) -> np.ndarray:
    """``(s − mean) / std`` of each row of ``scores`` (m, n) over the items it may recommend: ``known`` (bool
    (n,)) and not in its row of ``history`` (m, n); float64, a row with no such item or a std of 0 all 0.

    The sums run over the known items by one matrix-vector product, the history's entries then taken out, so
    the cost is two passes over ``scores`` whatever the history."""
    s = np.asarray(scores, dtype=np.float64)
    k = known.astype(np.float64)
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    held = known[history.indices]
    rows, cols = rows[held], history.indices[held]
    taken = s[rows, cols]
    total = s @ k - np.bincount(rows, weights=taken, minlength=s.shape[0])
    squares = np.square(s) @ k - np.bincount(rows, weights=taken * taken, minlength=s.shape[0])
    count = k.sum() - np.bincount(rows, minlength=s.shape[0])
    some = np.maximum(count, 1.0)
    mean = total / some
    var = np.maximum(squares / some - mean * mean, 0.0)
    std = np.sqrt(var)
    ok = (count > 0) & (std > 1e-12 * np.maximum(1.0, np.abs(mean)))
    out: np.ndarray = (s - mean[:, None]) / np.where(ok, std, 1.0)[:, None]
    out[~ok] = 0.0
    return out


@dataclass(eq=False)
class EaseIalsRanker(Ranker):
    """``score(h) = w·z(ease(h)) + (1 − w)·z(ials(h))``, ``z`` standardising a row over the items with training
    reviews outside the history; an empty history gets the popular list. ``params`` holds EASE's ``lam``,
    iALS's ``regularization``, ``alpha`` and ``values``, and the weight ``w`` in [0, 1]. Scores have no
    per-history-item decomposition (iALS has none), so no ``because``.

    Attributes
    ----------
    items, weights : numpy.ndarray
        int64 (m,) and float32 (m, m): EASE's fitted items and ``B`` (:class:`EaseRanker`).
    item_factors : numpy.ndarray
        float32 (n_items, factors): iALS's ``Y``.
    """

    kind: ClassVar[str] = "ease_ials"
    ARRAYS: ClassVar[Mapping[str, type]] = {
        **Ranker.ARRAYS,
        "items": np.int64,
        "weights": np.float32,
        "item_factors": np.float32,
    }
    items: np.ndarray
    weights: np.ndarray
    item_factors: np.ndarray
    _ease: EaseRanker = field(init=False, repr=False)
    _ials: IalsRanker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        w = float(self.params.get("w", np.nan))
        if not 0.0 <= w <= 1.0:
            raise InvalidInput(f"ease_ials: the weight w must be in [0, 1], got {self.params.get('w')!r}")
        self._ease = EaseRanker(item_count=self.item_count, params=self.params, items=self.items, weights=self.weights)
        self._ials = IalsRanker(item_count=self.item_count, params=self.params, item_factors=self.item_factors)

    @classmethod
    def of(cls, ease: EaseRanker, ials: IalsRanker, w: float) -> EaseIalsRanker:
        """The blend of two fitted parts (on the same reviews) with weight ``w``: their arrays, their params."""
        return cls(
            item_count=ease.item_count,
            params={**ease.params, **ials.params, "w": float(w)},
            items=ease.items,
            weights=ease.weights,
            item_factors=ials.item_factors,
        )

    def score(self, history: sp.csr_array) -> np.ndarray:
        return self._mix(self._ease.score(history), self._z(self._ials.score(history), history), history)

    def score_weighted(self, history: sp.csr_array, weights: np.ndarray) -> np.ndarray:
        """EASE's part weighted (:meth:`EaseRanker.score_weighted`), iALS's as :meth:`score`."""
        return self.weighted_scorer(history)(weights)

    def weighted_scorer(self, history: sp.csr_array) -> Callable[[np.ndarray], np.ndarray]:
        """iALS's standardised part once (it ignores weights), EASE's per call."""
        ials = self._z(self._ials.score(history), history)
        return lambda weights: self._mix(self._ease.score_weighted(history, weights), ials, history)

    def _z(self, scores: np.ndarray, history: sp.csr_array) -> np.ndarray:
        return standardised(scores, self.item_count > 0, history)

    def _mix(self, ease_scores: np.ndarray, ials_z: np.ndarray, history: sp.csr_array) -> np.ndarray:
        w = float(self.params["w"])
        out = w * self._z(ease_scores, history) + (1.0 - w) * ials_z
        return popular_where_empty(out, history, self.item_count)
