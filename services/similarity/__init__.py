"""Similarity service: Jaccard, cosine and Pearson over inverted indexes (issue 3).

The numerical core is :mod:`chorus.services.similarity.core` (no web framework inside); the offline build of the
neighbour table and the artifact component is :mod:`chorus.services.similarity.build`.
"""

from chorus.services.similarity.core import (
    DECIMALS,
    MEASURES,
    Predictions,
    Recommendations,
    SimilarityConfig,
    SimilarityIndex,
    id_rank,
)

__all__ = [
    "DECIMALS",
    "MEASURES",
    "Predictions",
    "Recommendations",
    "SimilarityConfig",
    "SimilarityIndex",
    "id_rank",
]
