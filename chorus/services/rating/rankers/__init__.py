"""Top-N rankers on implicit feedback, by the ``kind`` their artifact records (see ``base.py`` for the interface
and ``docs/models.md`` for every ranker's formula).

Adding a ranker: one module here with a dataclass subclassing :class:`~chorus.services.rating.rankers.base.Ranker`
(a ``kind`` and ``score(history)``; ``contributions`` when its scores decompose over the history, for
``because``; its stored fields and their dtypes in ``ARRAYS``) and a ``fit_<kind>(reviews, params)`` trainer
(in ``ranking_fit.py``), one line in :data:`REGISTRY`, and a two-line subclass of ``tests/rating/ranker_contract.py``.
"""

from __future__ import annotations

from chorus.services.rating.rankers.base import Ranked, Ranker
from chorus.services.rating.rankers.blend import EaseIalsRanker
from chorus.services.rating.rankers.ease import MAX_EASE_ITEMS, EaseRanker
from chorus.services.rating.rankers.ials import IalsRanker
from chorus.services.rating.rankers.item_knn import ItemKnnRanker
from chorus.services.rating.rankers.popular import PopularRanker

REGISTRY: dict[str, type[Ranker]] = {
    PopularRanker.kind: PopularRanker,
    ItemKnnRanker.kind: ItemKnnRanker,
    EaseRanker.kind: EaseRanker,
    IalsRanker.kind: IalsRanker,
}

#: Rankers that are built and tested but not served: the API's ``method`` list does not name them yet, and
#: :func:`~chorus.services.rating.rankers.persistence.load_rankers` loads only :data:`REGISTRY` kinds.
UNSERVED: dict[str, type[Ranker]] = {
    EaseIalsRanker.kind: EaseIalsRanker,
}

__all__ = [
    "MAX_EASE_ITEMS",
    "REGISTRY",
    "UNSERVED",
    "EaseIalsRanker",
    "EaseRanker",
    "IalsRanker",
    "ItemKnnRanker",
    "PopularRanker",
    "Ranked",
    "Ranker",
]
