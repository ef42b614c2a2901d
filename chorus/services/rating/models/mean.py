"""The global-mean model: ``f(u, i) = α``, the mean training rating (the baseline every other model must beat)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from chorus.services.rating.models.base import RatingModel
from chorus.services.rating.models.fold_in import UserRidge


@dataclass(eq=False)
class MeanModel(RatingModel):
    """``f(u, i) = α`` for every pair; its biases are zero, so every fallback is α too."""

    kind = "mean"

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """α for each pair, in the parameters' precision as the other models compute it: float32 (n,) for
        ``users, items`` int64 (n,)."""
        return np.full(users.shape, self.global_mean, dtype=self.user_bias.dtype)

    def fold_factors(self) -> None:
        """None: the model has no user parameters, so a new user's ratings change nothing (no fold-in)."""
        return None

    def user_ridge(self, hyperparameters: Mapping[str, Any]) -> UserRidge | None:
        return None
