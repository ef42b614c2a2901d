"""Hyperparameters of the similarity component, with their defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass

from chorus.services.similarity.measures import measure_spec
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import Measure


@dataclass(frozen=True)
class SimilarityConfig:
    """Hyperparameters of the similarity component (stored with the artifact as its ``hyperparameters``).

    Attributes
    ----------
    table_k : int
        Neighbours kept per item in the precomputed table (K). Queries with ``k <= table_k`` and
        ``min_common == 1`` read the table.
    like_threshold : float
        A user "liked" an item when they rated it at least this (4 stars on a 1-5 scale).
    recommend_measure : Measure
        Measure summed by "because you liked" recommendations. Cosine: its sum over the liked items factorises
        (Σ_i sim(i, j) = q·R_j / ‖R_j‖ with q = Σ_i R_i / ‖R_i‖), so the exact scores take one sparse product
        however many items a user liked (milliseconds for a user with thousands of reviews, where the exact
        Jaccard or Pearson sum needs a row of the similarity matrix per liked item, so those two sum over the
        ``table_k`` stored neighbours instead); it stays in [0, 1] per term for positive ratings, so
        anti-correlated items cannot pull a sum down as Pearson's can.
    predict_measure : Measure
        ``sim`` in the similarity-weighted rating heuristic (``docs/models.md``). Jaccard: non-negative weights
        keep the prediction a weighted mean of the user's own ratings, so it stays on the rating scale (with
        Pearson the denominator can approach 0 and the estimate explode).
    block_rows : int
        At most this many item rows per block of the table build.
    block_nnz : int
        Work budget of one block: the sum over its rows of ``Σ_{u∈U_i} |I_u|`` (an upper bound on the number of
        candidate pairs the block produces); bounds the build's memory, and that of recommendations summed over
        many liked items.
    pair_chunk : int
        Entries expanded at once by the pairwise similarity used for predictions.
    """

    table_k: int = 50
    like_threshold: float = 4.0
    recommend_measure: Measure = Measure.cosine
    predict_measure: Measure = Measure.jaccard
    block_rows: int = 2048
    block_nnz: int = 4_000_000
    pair_chunk: int = 2_000_000

    def __post_init__(self) -> None:
        for name in ("recommend_measure", "predict_measure"):  # a name read back from an artifact becomes a Measure
            object.__setattr__(self, name, measure_spec(getattr(self, name)).measure)
        if self.table_k < 1 or self.block_rows < 1 or self.block_nnz < 1 or self.pair_chunk < 1:
            raise InvalidInput("table_k, block_rows, block_nnz and pair_chunk must be at least 1")
