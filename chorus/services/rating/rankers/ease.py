"""EASE^R: a shallow linear autoencoder with a closed form (Steck, "Embarrassingly shallow autoencoders for
sparse data", WWW 2019). Formulas in ``docs/models.md``, "Ranking".

The model is one dense item×item matrix ``B`` with a zero diagonal; a history ``x`` (binary) scores ``x B``,
the sum of the rows of ``B`` of the history items, and those rows' entries are each score's ``because`` terms.
``B`` costs ``4 n²`` bytes (400 MB at :data:`MAX_EASE_ITEMS`), and its fit a dense ``n×n`` inversion, so the
trainer refuses larger catalogues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, binary, popular_where_empty
from chorus.shared.contract.errors import InvalidInput

#: The largest catalogue (items, reviewed or not) EASE is fitted for. Measured at 10,000 items (1M reviews, 50,000
#: users, 2 cores, OpenBLAS on 2 threads): the fit takes 46 s (nearly all of it the dense Cholesky inversion) with a
#: peak of 2.5 GB resident, and ``recommend`` p99 0.65 ms. Time grows as n³ and memory as n², so 30,000 items would
#: take about 20 minutes and 22 GB.
MAX_EASE_ITEMS = 10_000


@dataclass(eq=False)
class EaseRanker(Ranker):
    """``score(x) = binary(x) · B``; an empty history gets the popular list.

    Attributes
    ----------
    weights : numpy.ndarray
        float32 (n_items, n_items): ``B``, zero on the diagonal; row ``i`` is what a history item ``i`` adds to
        every item's score.
    """

    kind: ClassVar[str] = "ease"
    ARRAYS: ClassVar[Mapping[str, type]] = {**Ranker.ARRAYS, "weights": np.float32}
    weights: np.ndarray

    def __post_init__(self) -> None:
        if self.weights.shape != (self.n_items, self.n_items):
            raise InvalidInput(f"ease: weights of shape {self.weights.shape} for {self.n_items} items")

    def score(self, history: sp.csr_array) -> np.ndarray:
        scores = np.asarray(binary(history) @ self.weights)
        return popular_where_empty(scores, history, self.item_count)

    def contributions(self, history: sp.csr_array, items: np.ndarray) -> np.ndarray:
        held = history.indices.astype(np.int64)
        return np.asarray(self.weights[np.ix_(held, np.asarray(items, dtype=np.int64))], dtype=np.float64).T
