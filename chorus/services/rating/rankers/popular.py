"""Most popular: every history gets the items with the most training reviews (the baseline every ranker must
beat, and the list an unknown user gets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker


@dataclass(eq=False)
class PopularRanker(Ranker):
    """score(i) = number of training reviews of ``i``, the same for every history."""

    kind: ClassVar[str] = "popular"

    def score(self, history: sp.csr_array) -> np.ndarray:
        return np.broadcast_to(self.item_count.astype(np.float64), (history.shape[0], self.n_items))
