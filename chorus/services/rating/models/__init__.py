"""The rating models the service serves, by the ``kind`` their artifact records.

Adding a model (``docs/models.md``, "Adding a model kind"): a rating model is one module in
``services/rating/models/``, a dataclass that subclasses :class:`~chorus.services.rating.models.base.RatingModel`
with a ``kind`` string and a ``score(users, items)`` method, the unclipped f(u, i) of known pairs (Surprise's
``estimate``); index checks, the fallbacks for unknown users and items, clipping to the rating scale and top-N come
from the base. A model with parameters beyond the baseline every model holds (α, β_u, β_i, training counts, popular
items) extends ``to_arrays()`` and ``from_arrays()`` (as ``models/latent.py`` does), and may override
``score_items(user)`` with a faster form for top-N. Register it with one line in
:data:`chorus.shared.contract.kinds.RATING_MODELS`; :data:`REGISTRY`, through which the artifact loader finds the
class by the ``kind`` in the component's manifest, is derived from it.

What the spec table does not do for a rating model: choose or fit it. Its trainer, a function from a ``Trainset``
(``fitting.py``) to the model, is offline code beside ``als.py`` and ``lbfgs.py`` that the service never imports,
named in the spec's ``fitter`` where it takes nothing but the ``Trainset``; ``chorus/training/rating/train.py``
decides which model is fitted and written as the served component. The contract in
``tests/rating/model_contract.py`` runs on every kind of the table, fitted by its spec's ``fitter`` or by the
cases ``tests/rating/test_models.py`` lists for it (a kind with neither fails there); it checks batch against
single predictions, bit-identical ``to_arrays``/``from_arrays`` and artifact round trips, exclusions, every
fallback and its code, finite ratings within the scale, and the bounds on ``k``.
"""

from __future__ import annotations

from chorus.services.rating.models.base import RatingModel
from chorus.services.rating.models.bias import BiasModel
from chorus.services.rating.models.latent import LatentModel
from chorus.services.rating.models.mean import MeanModel
from chorus.services.rating.models.text_aware import TextAwareModel
from chorus.shared.contract.kinds import RATING_MODELS

#: kind -> class of every rating model of :data:`~chorus.shared.contract.kinds.RATING_MODELS`, in its order.
REGISTRY: dict[str, type[RatingModel]] = RatingModel.registry(RATING_MODELS)

__all__ = ["REGISTRY", "BiasModel", "LatentModel", "MeanModel", "RatingModel", "TextAwareModel"]
