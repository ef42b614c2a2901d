"""iALS: implicit-feedback matrix factorisation by alternating least squares (Hu, Koren, Volinsky, "Collaborative
filtering for implicit feedback datasets", ICDM 2008), trained offline by the ``implicit`` package. Formulas in
``docs/models.md``, "Ranking".

Only the item factors ``Y`` are kept, with the ridge ``λ`` and the confidence weight ``α`` (in ``params``). A
history is folded in, in closed form, the least-squares step of the paper for one user with ``Y`` fixed::

    x_u = (YᵀY + Yᵀ(C_u − I)Y + λI)⁻¹ Yᵀ C_u p_u,     p_u = 1 on the history items,
    c_ui = 1 + α·v_ui on them (v = 1, or the star rating when ``params["values"] == "rating"``), 1 elsewhere,

and scored ``s = Y x_u``: a known user (their reviews) and an anonymous basket go through the same code, and no
per-user state is stored. The solve is exact (LAPACK, float64); implicit's own training uses a few conjugate
gradient steps per user, so its stored user factors differ slightly from the fold-in of the same user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers.base import Ranker, popular_where_empty
from chorus.shared.contract.errors import ArtifactError, InvalidInput

#: How the history's entries become confidences ``c = 1 + α·v``: every reviewed item alike, or by its rating.
VALUES = ("binary", "rating")


@dataclass(eq=False)
class IalsRanker(Ranker):
    """``score(h) = Y x_h`` with ``x_h`` the fold-in of the module docstring; an empty history gets the popular
    list. ``params`` holds ``regularization`` (λ), ``alpha`` (α) and ``values`` (one of :data:`VALUES`).

    Attributes
    ----------
    item_factors : numpy.ndarray
        float32 (n_items, factors): ``Y``.
    """

    kind: ClassVar[str] = "ials"
    ARRAYS: ClassVar[Mapping[str, type]] = {**Ranker.ARRAYS, "item_factors": np.float32}
    item_factors: np.ndarray
    _y: np.ndarray = field(init=False, repr=False)
    _gram: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.item_factors.ndim != 2 or self.item_factors.shape[0] != self.n_items:
            raise InvalidInput(f"ials: item factors of shape {self.item_factors.shape} for {self.n_items} items")
        values = self.params.get("values", "binary")
        if values not in VALUES:
            raise InvalidInput(f"ials: values must be one of {', '.join(VALUES)}, got {values!r}")
        self._y = np.asarray(self.item_factors, dtype=np.float64)
        f = self._y.shape[1]
        # YᵀY + λI, shared by every fold-in
        self._gram = self._y.T @ self._y + float(self.params["regularization"]) * np.eye(f)

    def fold_in(self, history: sp.csr_array) -> np.ndarray:
        """float64 (m, factors): the user factors ``x_u`` of every history row (zeros for an empty one)."""
        alpha = float(self.params["alpha"])
        rating = self.params.get("values", "binary") == "rating"
        out = np.zeros((history.shape[0], self._y.shape[1]))
        for r in range(history.shape[0]):
            lo, hi = history.indptr[r], history.indptr[r + 1]
            if lo == hi:
                continue
            yh = self._y[history.indices[lo:hi]]
            v = np.asarray(history.data[lo:hi], dtype=np.float64) if rating else np.ones(hi - lo)
            c = 1.0 + alpha * v
            a = self._gram + (yh.T * (c - 1.0)) @ yh
            out[r] = np.linalg.solve(a, yh.T @ c)
        return out

    def score(self, history: sp.csr_array) -> np.ndarray:
        # one matrix-vector product per row, so that a row scores the same bits alone or in a batch
        scores = (
            np.stack([self._y @ x for x in self.fold_in(history)]) if history.shape[0] else np.zeros((0, self.n_items))
        )
        return popular_where_empty(scores, history, self.item_count)

    @classmethod
    def _fields_from(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, Any]:
        fields = super()._fields_from(arrays, meta)
        for name in ("regularization", "alpha"):
            if name not in fields["params"]:
                raise ArtifactError(f"{cls.kind} ranker: no {name!r} among its parameters")
        return fields
