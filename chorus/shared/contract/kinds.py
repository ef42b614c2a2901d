"""Every model kind Chorus has, one record each: the table the registries, the API's enums and the lists of kinds
in its documentation are derived from.

A :class:`KindSpec` is plain data. It names the kind's code by import path (``"module:attribute"``) rather than
importing it, so the wire contract, and the gateway with it, can read the table without numpy, and each process
imports only its side of a kind: the rating service resolves :attr:`KindSpec.model` (the stored class), training
resolves :attr:`KindSpec.fitter`. What is derived from the table:

* :data:`chorus.services.rating.rankers.REGISTRY` and :data:`chorus.services.rating.models.REGISTRY`, the classes
  the artifact loader picks by the ``kind`` a version records (served kinds only);
* :data:`chorus.training.ranking.fit.FITTERS` and ``GRIDS``, what the ranker selection fits, in the order of
  :data:`RANKERS` (served rankers only);
* the enums :class:`~chorus.shared.contract.names.Ranking` and :class:`~chorus.shared.contract.names.Method`
  and the text of the ``method`` parameter (the served rankers, :func:`ranker_methods`);
* the contract tests, parametrised over both tables (``tests/rating/ranker_contract.py``,
  ``tests/rating/model_contract.py``), and the table of kinds in ``docs/models.md``, which a test compares with
  this one.

Each registry is derived once, when the module that holds it is imported. Adding a ranker is one module and one
line in :data:`RANKERS` (``docs/models.md``, "Adding a model kind").
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Family = Literal["rating", "ranker"]
#: A hyperparameter value: what a JSON manifest records.
Param = str | int | float | bool
#: One point of a grid: hyperparameter name -> value.
GridPoint = Mapping[str, Param]

_RANKERS = "chorus.services.rating.rankers"
_MODELS = "chorus.services.rating.models"
_FIT = "chorus.training.ranking.fit"


@dataclass(frozen=True, eq=False)
class KindSpec:
    """One model kind.

    Attributes
    ----------
    name : str
        The kind: what an artifact records, the selection reports and, for a served ranker, the API's ``method``
        value. Lower case, a Python identifier without ``__`` (it names array files ``<kind>__<array>``).
    family : {"rating", "ranker"}
        A rating model (:class:`~chorus.services.rating.models.base.RatingModel`, the ``rating`` component) or a
        top-N ranker (:class:`~chorus.services.rating.rankers.base.Ranker`, the ``ranking`` component).
    description : str
        One line that says what the kind computes (the table of kinds in ``docs/models.md`` shows it).
    model : str
        ``"module:Class"`` of the stored class, whose ``kind`` is :attr:`name`.
    fitter : str or None
        ``"module:function"`` of its trainer. For a ranker ``fit(reviews, params) -> Ranker`` on the user×item
        CSR of star ratings with one point of :attr:`grid`, as the selection calls it. For a rating model
        ``fit(trainset) -> RatingModel`` where such a function exists; None where the rating selection
        (:mod:`chorus.training.rating.train`) fits the kind with its own configuration.
    grid : tuple of GridPoint
        A ranker's hyperparameter points, likeliest first (``chorus train`` tries only the first few). Empty for
        rating models, whose grids are the rating selection's configuration.
    served : bool
        Whether the rating service loads and serves the kind. An unserved ranker is fitted and measured (by the
        contract tests and ``bench/ranking.py``) but is no API method, is not selected, and is not loaded.
    parts : tuple of str
        For a blend of other rankers: the kinds it combines, listed earlier in the table. The selection fits a
        blend with the hyperparameters it chose for each part, and its :attr:`grid` holds only the blend's own
        (a fitter given a point alone takes each part's first grid point: :func:`blend_defaults`).
    """

    name: str
    family: Family
    description: str
    model: str
    fitter: str | None = None
    grid: tuple[GridPoint, ...] = ()
    served: bool = True
    parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.name.isidentifier() and self.name == self.name.lower() and "__" not in self.name):
            raise ValueError(f"kind {self.name!r}: a kind is a lower-case identifier without '__'")
        if self.family not in ("rating", "ranker"):
            raise ValueError(f"kind {self.name!r}: family must be 'rating' or 'ranker', got {self.family!r}")
        for path in (self.model, self.fitter):
            if path is not None and path.count(":") != 1:
                raise ValueError(f"kind {self.name!r}: {path!r} is not a 'module:attribute' path")
        if self.family == "ranker" and (self.fitter is None or not self.grid):
            raise ValueError(f"kind {self.name!r}: a ranker needs a fitter and a grid of at least one point")


#: The rankers, in selection order: a tie on validation NDCG goes to the kind listed first. Each grid lists its
#: likeliest points first (from validation on MovieLens 100K and the Amazon 5-core file).
RANKERS: tuple[KindSpec, ...] = (
    KindSpec(
        "popular",
        "ranker",
        "the items with the most training reviews, the same list for every history",
        model=f"{_RANKERS}.popular:PopularRanker",
        fitter=f"{_FIT}:fit_popular",
        grid=({},),
    ),
    KindSpec(
        "item_knn",
        "ranker",
        "every history item votes for its nearest neighbours by shrunk cosine",
        model=f"{_RANKERS}.item_knn:ItemKnnRanker",
        fitter=f"{_FIT}:fit_item_knn",
        grid=tuple(
            {"neighbours": k, "shrink": s, "values": v, "normalise": nm}
            for k in (100, 50, 200)
            for s in (50.0, 200.0, 10.0, 0.0)
            for v in ("binary",)
            for nm in ("none", "row")
        ),
    ),
    KindSpec(
        "rp3beta",
        "ranker",
        "every history item votes for the items a three-step random walk reaches from it, popularity discounted",
        model=f"{_RANKERS}.item_knn:Rp3BetaRanker",
        fitter=f"{_FIT}:fit_rp3beta",
        # α 0.5 validated best on the Amazon 5-core file (seeds 0-2) and the demo data: one α, one shared product
        grid=tuple({"alpha": 0.5, "beta": b, "neighbours": k} for b in (0.0, 0.2, 0.35, 0.5) for k in (50, 200)),
    ),
    KindSpec(
        "ease",
        "ranker",
        "EASE^R, a shallow linear item×item autoencoder in closed form",
        model=f"{_RANKERS}.ease:EaseRanker",
        fitter=f"{_FIT}:fit_ease",
        # dropout scales each item's penalty with its count (EASE's denoising form): 0.5 and 0.75 with λ 100 to 300
        # validated best on MovieLens 100K and the Amazon 5-core file (seeds 0-2), 0 and λ outside 100..1000 never
        # did; the √rating input validated best on MovieLens 100K on two seeds of three
        grid=tuple(
            {"lam": lam, "dropout": p, "input": x}
            for x in ("binary", "sqrt_rating")
            for p in (0.5, 0.75)
            for lam in (300.0, 1000.0, 100.0)
        ),
    ),
    KindSpec(
        "ials",
        "ranker",
        "implicit-feedback matrix factorisation (iALS), a history folded in exactly",
        model=f"{_RANKERS}.ials:IalsRanker",
        fitter=f"{_FIT}:fit_ials",
        # implicit adds λ unscaled by counts: 20 validated best on MovieLens 100K and the Amazon 5-core file (5 once
        # in six seeds, where iALS was not served), 0.1..1 overfitted. Fewer factors win on the validation split's
        # fewer rows than after the refit (16 validated best and lost on test), more cost most of the selection's
        # time without winning once served: 32 factors
        grid=tuple(
            {"factors": f, "regularization": 20.0, "alpha": a, "values": v, "iterations": 15}
            for f in (32,)
            for v, a in (("binary", 2.0), ("binary", 0.5), ("rating", 0.5), ("rating", 0.1))
        ),
    ),
    KindSpec(
        "ease_ials",
        "ranker",
        "a weighted blend of EASE^R and iALS scores, each standardised per history",
        model=f"{_RANKERS}.blend:EaseIalsRanker",
        fitter=f"{_FIT}:fit_ease_ials",
        # the weight of EASE; the parts' hyperparameters are those chosen for ease and ials
        grid=tuple({"w": w} for w in (0.5, 0.25, 0.75, 0.9)),
        parts=("ease", "ials"),
    ),
)

#: The rating models. ``chorus.training.rating.train`` chooses which one a version serves (``latent`` where it
#: beats ``bias`` on validation, ``text_aware`` where it wins with review text); the table says how each is stored.
RATING_MODELS: tuple[KindSpec, ...] = (
    KindSpec(
        "mean",
        "rating",
        "α, the mean training rating, for every pair",
        model=f"{_MODELS}.mean:MeanModel",
        fitter="chorus.training.rating.baseline:fit_mean",
    ),
    KindSpec(
        "bias",
        "rating",
        "α + β_u + β_i, the baseline predictors",
        model=f"{_MODELS}.bias:BiasModel",
        fitter="chorus.training.rating.baseline:fit_bias",
    ),
    KindSpec(
        "latent",
        "rating",
        "α + β_u + β_i + γ_u · γ_i, fitted by ALS or L-BFGS",
        model=f"{_MODELS}.latent:LatentModel",
    ),
    KindSpec(
        "text_aware",
        "rating",
        "the latent form with biases and factors fitted from the review text",
        model=f"{_MODELS}.text_aware:TextAwareModel",
    ),
)


def blend_defaults(spec: KindSpec) -> dict[str, Param]:
    """The first grid point of each of a blend's :attr:`~KindSpec.parts` (merged in order): the part
    hyperparameters a point of the blend's own grid is fitted with when nothing else chose them."""
    out: dict[str, Param] = {}
    for part in spec.parts:
        out |= dict(find(RANKERS, part).grid[0])
    return out


def ranker_methods() -> tuple[str, ...]:
    """The ``method`` values that name a ranker: the served rankers of :data:`RANKERS`, in alphabetical order (the
    order the API lists them in)."""
    return tuple(sorted(spec.name for spec in RANKERS if spec.served))


def find(specs: Iterable[KindSpec], name: str) -> KindSpec:
    """The spec of kind ``name`` among ``specs``.

    Raises
    ------
    KeyError : no spec of that name.
    """
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no model kind {name!r}")


def resolve(path: str) -> object:
    """The object a ``"module:attribute"`` path names, its module imported (the one place a spec's code is
    loaded).

    Raises
    ------
    ImportError : no such module.
    AttributeError : no such attribute in it.
    """
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
