"""The text-aware rating model: the latent factor form ``f(u, i) = α + β_u + β_i + γ_u · γ_i`` whose parameters were
fitted with the text of the training reviews (see :mod:`chorus.training.text.aware` and docs/models.md):

* the biases are the ridge minimisers for ratings blended with the out-of-fold text prediction of each training
  review, ``r + λ (ŕ_text − r)`` (text-conditioned shrinkage), and
* γ_i is item i's text profile (the mean truncated-SVD TF-IDF embedding of its training reviews, unit length) and
  γ_u the per-user ridge fit of the bias residuals on those profiles (the item side of HFT, McAuley & Leskovec,
  RecSys 2013, with topics replaced by a linear embedding).

Served like the latent model; only the kind differs, so the artifact says how the parameters were made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chorus.services.rating.models.fold_in import UserRidge
from chorus.services.rating.models.latent import LatentModel


@dataclass(eq=False)
class TextAwareModel(LatentModel):
    """``f(u, i) = α + β_u + β_i + γ_u · γ_i`` with text-derived β and γ (K may be 0)."""

    kind = "text_aware"

    def user_ridge(self, hyperparameters: Mapping[str, Any]) -> UserRidge | None:
        """None: this model's user parameters are not the minimisers of one ridge objective (β_u comes from
        text-blended targets and a feature prior, γ_u from a second ridge on the residuals), and its version does
        not record the bias pseudo-count, so a new user is not folded in: they keep the unknown user's
        fallbacks."""
        return None
