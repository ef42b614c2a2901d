"""Item-kNN: every history item votes for its nearest neighbours (Sarwar, Karypis, Konstan, Riedl, WWW 2001;
the top-N form of Deshpande & Karypis, ACM TOIS 22(1), 2004). Formulas in ``docs/models.md``, "Ranking".

The model is one sparse item×item matrix ``S``: row ``i`` holds the ``neighbours`` items most similar to ``i``
(shrunk cosine on the training user×item matrix, positive similarities only). A history ``h`` (binary) scores
``s = h S``, so item ``j``'s score is the sum of ``S[i, j]`` over the history items ``i`` that count ``j`` among
their neighbours, and those terms are its ``because``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, binary, popular_where_empty, weighted
from chorus.shared.contract.errors import InvalidInput


@dataclass(eq=False)
class ItemKnnRanker(Ranker):
    """``score(h) = binary(h) · S`` with ``S`` the CSR arrays below; an empty history gets the popular list.

    Attributes
    ----------
    sim_indptr, sim_indices : numpy.ndarray
        int64 (n_items + 1,) and int32 (nnz,): the CSR structure of ``S``, row ``i`` the neighbours of ``i``
        (column indices ascending).
    sim_data : numpy.ndarray
        float32 (nnz,): the similarities, all positive.
    """

    kind: ClassVar[str] = "item_knn"
    ARRAYS: ClassVar[Mapping[str, type]] = {
        **Ranker.ARRAYS,
        "sim_indptr": np.int64,
        "sim_indices": np.int32,
        "sim_data": np.float32,
    }
    sim_indptr: np.ndarray
    sim_indices: np.ndarray
    sim_data: np.ndarray
    _sim: sp.csr_array = field(init=False, repr=False)
    _sim_t: sp.csr_array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = self.n_items
        if self.sim_indptr.shape != (n + 1,) or self.sim_indices.shape != self.sim_data.shape:
            raise InvalidInput(
                f"{self.kind}: similarity arrays of shapes {self.sim_indptr.shape}, {self.sim_indices.shape}, "
                f"{self.sim_data.shape} do not make an {n}×{n} CSR matrix"
            )
        ptr, idx = self.sim_indptr, self.sim_indices
        if ptr[0] != 0 or ptr[-1] != idx.shape[0] or np.any(np.diff(ptr) < 0):
            raise InvalidInput(f"{self.kind}: sim_indptr is not a valid CSR index pointer")
        if idx.size and (idx.min() < 0 or idx.max() >= n):  # scipy would read out of bounds, not refuse
            raise InvalidInput(f"{self.kind}: a neighbour index outside 0..{n - 1}")
        self._sim = sp.csr_array((self.sim_data, self.sim_indices, self.sim_indptr), shape=(n, n))
        # Sᵀ by rows: who counts item j among their neighbours, for ``because``
        self._sim_t = sp.csr_array(self._sim.T)

    @property
    def similarity(self) -> sp.csr_array:
        """``S`` as a CSR array (n_items, n_items)."""
        return self._sim

    def score(self, history: sp.csr_array) -> np.ndarray:
        scores = (binary(history) @ self._sim).toarray()
        return popular_where_empty(scores, history, self.item_count)

    def score_weighted(self, history: sp.csr_array, weights: np.ndarray) -> np.ndarray:
        scores = (weighted(history, weights) @ self._sim).toarray()
        return popular_where_empty(scores, history, self.item_count)

    def contributions(self, history: sp.csr_array, items: np.ndarray) -> np.ndarray:
        held = history.indices.astype(np.int64)
        dense: np.ndarray = self._sim_t[np.asarray(items, dtype=np.int64)].toarray()[:, held]
        return dense


@dataclass(eq=False)
class Rp3BetaRanker(ItemKnnRanker):
    """RP3beta (Paudel, Christoffel, Newell, Bernstein, "Updatable, accurate, diverse, and scalable recommendations
    for interactive applications", ACM TiiS 7(1), 2016): the item-kNN form with ``S`` from a three-step random
    walk item → user → item instead of a cosine, ``S[i, j] = Σ_u (p_iu p_uj)^α / pop_j^β`` over the binary
    training matrix (``p_iu = 1/pop_i``, ``p_uj = 1/|u|``), each row's ``neighbours`` largest kept. ``β`` takes
    popularity out of the walk's arrival probabilities, which helps most where a few items have most reviews.
    Scored, weighted and explained exactly as :class:`ItemKnnRanker`; ``params`` holds ``alpha``, ``beta`` and
    ``neighbours``."""

    kind: ClassVar[str] = "rp3beta"
