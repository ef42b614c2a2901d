"""The latent factor model with biases of Koren, Bell & Volinsky 2009 (see docs/models.md)::

    f(u, i) = α + β_u + β_i + γ_u · γ_i          γ_u, γ_i ∈ R^K

fitted by :mod:`chorus.training.rating.als` (or :mod:`chorus.training.rating.lbfgs`) on the objective of
:mod:`chorus.training.rating.objective`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from chorus.services.rating.models.base import RatingModel
from chorus.shared.contract.errors import InvalidInput


@dataclass(eq=False)
class LatentModel(RatingModel):
    """``f(u, i) = α + β_u + β_i + γ_u · γ_i``.

    Attributes
    ----------
    user_factors, item_factors : numpy.ndarray
        float32 (n_users, K), (n_items, K): γ_u, γ_i.
    """

    kind = "latent"

    user_factors: np.ndarray
    item_factors: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        uf, itf = self.user_factors, self.item_factors
        if (
            uf.ndim != 2
            or itf.ndim != 2
            or uf.shape[0] != self.n_users
            or itf.shape[0] != self.n_items
            or uf.shape[1] != itf.shape[1]
        ):
            raise InvalidInput(
                f"array shapes do not fit together: factors {uf.shape} and {itf.shape} for "
                f"{self.n_users} users and {self.n_items} items"
            )

    @property
    def n_factors(self) -> int:
        """K, the length of γ."""
        return int(self.user_factors.shape[1])

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """α + β_u + β_i + γ_u · γ_i: float32 (n,) for ``users, items`` int64 (n,)."""
        score = self.global_mean + self.user_bias[users] + self.item_bias[items]
        if self.n_factors:
            score += np.einsum("nk,nk->n", self.user_factors[users], self.item_factors[items])
        out: np.ndarray = score
        return out

    def score_items(self, user: int) -> np.ndarray:
        """f(user, i) for every item, one matrix-vector product: float64 (n_items,)."""
        score = self.global_mean + self.user_bias[user] + self.item_bias.astype(np.float64)
        if self.n_factors:
            score += self.item_factors @ self.user_factors[user]
        out: np.ndarray = score
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The baseline's arrays and ``user_factors``, ``item_factors``."""
        return super().to_arrays() | {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Self:
        """The model from :meth:`to_arrays` output and the scale in ``meta``."""
        return cls(
            **cls.baseline_fields(arrays, meta),
            user_factors=arrays["user_factors"],
            item_factors=arrays["item_factors"],
        )
