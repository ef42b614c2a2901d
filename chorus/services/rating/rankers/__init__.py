"""Top-N rankers on implicit feedback, by the ``kind`` their artifact records (see ``base.py`` for the interface
and ``docs/models.md`` for every ranker's formula).

Adding a ranker (``docs/models.md``, "Adding a model kind"):

1. One module here with a dataclass subclassing :class:`~chorus.services.rating.rankers.base.Ranker`: a ``kind``,
   ``score(history)``, its stored fields and their dtypes in ``ARRAYS``, and ``contributions`` when its scores
   decompose over the history (for ``because``). Its trainer, ``fit_<kind>(reviews, params)``, is offline code
   (``chorus/training/ranking/fit.py``, or a module beside it) that the service never imports.
2. One line in :data:`chorus.shared.contract.kinds.RANKERS`: the kind's name, a description, the paths of the
   class and the trainer, its grid, and whether it is served. Its place in the table is its place in the
   selection's tie-break order.

Everything else follows from that line: :data:`REGISTRY` (what the artifact loader loads), the selection's
fitters and grids, the API's ``method`` values and their documentation, and the contract tests
(``tests/rating/ranker_contract.py``), which run on every kind of the table with its grid's first point. The tests
of ``docs/models.md`` then ask for the kind's row in its table of kinds (and print it) and for its formula.
"""

from __future__ import annotations

from chorus.services.rating.rankers.base import Ranked, Ranker
from chorus.services.rating.rankers.blend import EaseIalsRanker
from chorus.services.rating.rankers.ease import MAX_EASE_ITEMS, EaseRanker
from chorus.services.rating.rankers.ials import IalsRanker
from chorus.services.rating.rankers.item_knn import ItemKnnRanker, Rp3BetaRanker
from chorus.services.rating.rankers.popular import PopularRanker
from chorus.shared.contract.kinds import RANKERS

#: kind -> class of every served ranker of :data:`~chorus.shared.contract.kinds.RANKERS`, in its order. A ranker
#: the table marks unserved is fitted and tested but not loaded from an artifact.
REGISTRY: dict[str, type[Ranker]] = Ranker.registry(RANKERS)

__all__ = [
    "MAX_EASE_ITEMS",
    "REGISTRY",
    "EaseIalsRanker",
    "EaseRanker",
    "IalsRanker",
    "ItemKnnRanker",
    "PopularRanker",
    "Ranked",
    "Ranker",
    "Rp3BetaRanker",
]
