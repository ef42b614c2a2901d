"""The bias-only model: ``f(u, i) = α + β_u + β_i``, the "baseline predictors" of Koren 2008 (the latent factor
model of Koren, Bell & Volinsky 2009 with K = 0; see docs/models.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chorus.services.rating.models.base import RatingModel


@dataclass(eq=False)
class BiasModel(RatingModel):
    """``f(u, i) = α + β_u + β_i``, the biases of the baseline."""

    kind = "bias"

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """α + β_u + β_i: float32 (n,) for ``users, items`` int64 (n,)."""
        score: np.ndarray = self.global_mean + self.user_bias[users] + self.item_bias[items]
        return score

    def score_items(self, user: int) -> np.ndarray:
        """α + β_user + β_i for every item: float64 (n_items,)."""
        score: np.ndarray = self.global_mean + self.user_bias[user] + self.item_bias.astype(np.float64)
        return score
