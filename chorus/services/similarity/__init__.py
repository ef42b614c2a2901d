"""Similarity service: Jaccard, cosine and Pearson similarity over inverted indexes, "because you liked"
recommendations and the similarity-weighted rating heuristic.

Where each number is computed: the measures' formulas in :mod:`~chorus.services.similarity.measures`, the sums
they are computed from in :mod:`~chorus.services.similarity.side`, the ranking in
:mod:`~chorus.services.similarity.ranking`, recommendations in :mod:`~chorus.services.similarity.recommend`, the
rating heuristic in :mod:`~chorus.services.similarity.predict`; :class:`SimilarityIndex`
(:mod:`~chorus.services.similarity.index`) answers with them. The offline build of the neighbour table is
:mod:`~chorus.training.similarity.build`; the service (``app``, ``api``) loads what it wrote through
:mod:`~chorus.services.similarity.persistence`. With an event store (``CHORUS_EVENTS_URL``) the events after the
served version's cutoff are folded into every answer: the overlay in :mod:`~chorus.services.similarity.overlay`,
read from the store by :mod:`~chorus.services.similarity.feed`, answered by
:class:`~chorus.services.similarity.live.LiveView` (exactly, on the sides of
:mod:`~chorus.services.similarity.local`, where the events can change an answer).
"""

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.ranking import id_rank

__all__ = ["SimilarityConfig", "SimilarityIndex", "id_rank"]
