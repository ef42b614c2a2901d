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

from dataclasses import dataclass

from chorus.services.rating.models.latent import LatentModel


@dataclass(eq=False)
class TextAwareModel(LatentModel):
    """``f(u, i) = α + β_u + β_i + γ_u · γ_i`` with text-derived β and γ (K may be 0)."""

    kind = "text_aware"
