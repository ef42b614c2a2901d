"""What the rating service serves for one artifact version, and the recommendation logic of its routes.

A version holds the rating model (``rating`` component), the catalog, every review with its rating, and, when
the version has a ``ranking`` component, its top-N rankers and the default one. The methods here choose who
answers a request (:meth:`RatingService.resolve`), build the history a ranker scores (a known user's reviews, or
an anonymous basket) and apply the fallbacks; they import neither FastAPI nor pydantic.

Methods: every ranker kind of the version, and ``latent`` (the rating model's highest predicted ratings), which
cannot score a basket. An unknown user, or a basket with no known item, gets the ``popular`` ranker's list (or,
without one, the rating model's popular, well-rated items) with ``fallback = "popular"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.models import RatingModel
from chorus.services.rating.models.base import POPULAR
from chorus.services.rating.persistence import load_component
from chorus.services.rating.rankers import PopularRanker, Ranked, Ranker
from chorus.services.rating.rankers.base import history_row
from chorus.services.rating.rankers.persistence import COMPONENT as RANKING
from chorus.services.rating.rankers.persistence import load_rankers
from chorus.services.rating.text.scorer import COMPONENT as TEXT
from chorus.services.rating.text.scorer import ReviewScorer, load_scorer
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.data.matrix import user_item_matrix

LATENT = "latent"
"""The method served by the rating model (top-N by predicted rating)."""


@dataclass(frozen=True)
class Recommendation:
    """One answer: who answered (``model``), the ranked items, and what was not known.

    Attributes
    ----------
    model : str
        A ranker's kind, or ``"latent"``.
    items : numpy.ndarray
        int64 (n,) item indices, best first.
    scores : numpy.ndarray
        float64 (n,); for ``latent`` the predicted rating.
    because : numpy.ndarray or None
        int64 (n, m) history items behind each score, -1 padded, or None.
    fallback : str or None
        ``"popular"`` for an unknown user or a basket with no known item.
    unknown_items, unknown_exclude : list of str
        Basket ids and ``exclude`` ids the catalog does not know (in the order given, without repeats).
    """

    model: str
    items: np.ndarray
    scores: np.ndarray
    because: np.ndarray | None
    fallback: str | None
    unknown_items: list[str] = field(default_factory=list)
    unknown_exclude: list[str] = field(default_factory=list)


@dataclass
class RatingService:
    """One served version.

    Attributes
    ----------
    version : str
    model : RatingModel
        The ``rating`` component's model.
    catalog : Catalog
        Raw ids and titles.
    reviews : scipy.sparse.csr_array
        float32 (n_users, n_items), every review's star rating in the version's data (a known user's history;
        what recommendations exclude), from :func:`~chorus.shared.data.matrix.user_item_matrix`.
    rankers : dict
        kind -> :class:`~chorus.services.rating.rankers.Ranker` of the ``ranking`` component (empty without one).
    default : str
        The method served when a request names none: the component's default ranker, else ``"latent"``.
    scorer : ReviewScorer or None
        The ``text`` component's review scorer (None for data without review text).
    """

    version: str
    model: RatingModel
    catalog: Catalog
    reviews: sp.csr_array
    rankers: dict[str, Ranker] = field(default_factory=dict)
    default: str = LATENT
    scorer: ReviewScorer | None = None

    @property
    def methods(self) -> list[str]:
        """Every method this version answers a user with: its rankers, then ``latent``."""
        return [*self.rankers, LATENT]

    def reviewed(self, u: int) -> np.ndarray:
        """The items user ``u`` reviewed: int32 (m,)."""
        m = self.reviews
        items: np.ndarray = m.indices[m.indptr[u] : m.indptr[u + 1]]
        return items

    def history(self, u: int) -> sp.csr_array:
        """User ``u``'s history: float64 (1, n_items), their star ratings."""
        m = self.reviews
        lo, hi = m.indptr[u], m.indptr[u + 1]
        return sp.csr_array(
            (m.data[lo:hi].astype(np.float64), m.indices[lo:hi], np.array([0, hi - lo])), shape=(1, m.shape[1])
        )

    def resolve(self, method: str | None, basket: bool = False) -> str:
        """The method that answers a request naming ``method`` (None: the default).

        Raises
        ------
        InvalidInput : a method this version does not serve (the message names those it does), or ``latent``
            for a basket.
        """
        if basket:
            allowed = list(self.rankers)
            if method is None:
                return self.default if self.default in self.rankers else LATENT
            if method == LATENT:
                raise InvalidInput(
                    "method 'latent' cannot score a basket (it predicts ratings of known users); "
                    + (f"choose one of {', '.join(allowed)}" if allowed else f"version {self.version} has no ranker")
                )
        else:
            allowed = self.methods
            if method is None:
                return self.default
        if method not in allowed:
            served = ", ".join(allowed) if allowed else "none"
            raise InvalidInput(f"method {method!r} is not served by version {self.version}: choose one of {served}")
        return method

    def _exclude(self, ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Known ``exclude`` ids as int64 item indices, and the unknown ids (in order, without repeats)."""
        idx = self.catalog.item_indices(list(ids)) if ids else np.zeros(0, dtype=np.int64)
        return idx[idx >= 0], _unique([i for i, k in zip(ids, idx.tolist(), strict=True) if k < 0])

    def _popular(self, k: int, banned: np.ndarray, **unknown: list[str]) -> Recommendation:
        """The popular list for a request nothing is known about (``banned``: int item indices)."""
        ranker = self.rankers.get(PopularRanker.kind)
        if ranker is not None:
            empty = history_row(np.zeros(0, dtype=np.int64), None, self.catalog.n_items)
            ranked = ranker.recommend(empty, k, exclude=banned)
            return Recommendation(ranker.kind, ranked.items, ranked.scores, None, POPULAR, **unknown)
        rec = self.model.recommend(-1, k, exclude=banned)
        return Recommendation(LATENT, rec.items, rec.ratings, None, POPULAR, **unknown)

    def recommend_user(self, user_id: str, k: int, method: str | None, exclude: Sequence[str]) -> Recommendation:
        """A user's top ``k`` by ``method`` (None: the default), never an item they reviewed or in ``exclude``.

        An unknown user gets the popular list (``fallback = "popular"``), whichever method was asked for.

        Raises
        ------
        InvalidInput : see :meth:`resolve`; ``k`` below 1.
        """
        answer = self.resolve(method)
        banned, unknown_exclude = self._exclude(exclude)
        u = int(self.catalog.user_indices([user_id])[0])
        if u < 0:
            return self._popular(k, banned, unknown_exclude=unknown_exclude)
        if answer == LATENT:
            seen = np.union1d(self.reviewed(u), banned).astype(np.int64)
            rec = self.model.recommend(u, k, exclude=seen)
            return Recommendation(LATENT, rec.items, rec.ratings, None, rec.fallback, [], unknown_exclude)
        ranked = self.rankers[answer].recommend(self.history(u), k, exclude=banned)
        return _ranked(answer, ranked, [], unknown_exclude)

    def recommend_basket(
        self, items: Sequence[str], k: int, method: str | None, exclude: Sequence[str]
    ) -> Recommendation:
        """The top ``k`` for an anonymous basket of item ids by a ranker (``method``, None: the default one),
        never a basket item or one in ``exclude``. The basket is a history of ones (who reviewed what, no
        ratings). Unknown ids are reported, not fatal; with no known item (or an empty basket), or a version
        without rankers, the answer is the popular list (``fallback = "popular"``).

        Raises
        ------
        InvalidInput : see :meth:`resolve`; ``k`` below 1.
        """
        answer = self.resolve(method, basket=True)
        banned, unknown_exclude = self._exclude(exclude)
        idx = self.catalog.item_indices(list(items)) if items else np.zeros(0, dtype=np.int64)
        unknown_items = _unique([i for i, x in zip(items, idx.tolist(), strict=True) if x < 0])
        known = np.unique(idx[idx >= 0])
        if known.shape[0] == 0 or answer == LATENT:
            return self._popular(
                k,
                np.union1d(banned, known).astype(np.int64),
                unknown_items=unknown_items,
                unknown_exclude=unknown_exclude,
            )
        history = history_row(known, None, self.catalog.n_items)
        return _ranked(
            answer, self.rankers[answer].recommend(history, k, exclude=banned), unknown_items, unknown_exclude
        )


def _ranked(kind: str, ranked: Ranked, unknown_items: list[str], unknown_exclude: list[str]) -> Recommendation:
    return Recommendation(kind, ranked.items, ranked.scores, ranked.because, None, unknown_items, unknown_exclude)


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def load_service(version: Version, verify: bool = True) -> RatingService:
    """The served state of a verified version with the ``data`` and ``rating`` components, and its ``ranking`` and
    ``text`` components when it has them (whose files are checked here when ``verify``: the loader verifies only the
    components every version has).

    Raises
    ------
    ArtifactError : a bad rating or ranking component, or one whose sizes differ from the data's.
    """
    catalog, ratings = Catalog.from_version(version)
    model = load_component(version)
    if model.n_items != catalog.n_items or model.n_users != catalog.n_users:
        raise ArtifactError(
            f"version {version.name}: the rating model has {model.n_users} users and "
            f"{model.n_items} items, the data {catalog.n_users} and {catalog.n_items}"
        )
    reviews = user_item_matrix(
        ratings.user, ratings.item, catalog.n_users, catalog.n_items, values=ratings.rating, dtype=np.float32
    )
    rankers: dict[str, Ranker] = {}
    default = LATENT
    if RANKING in version.components:
        version.load([RANKING])  # every file read and checked (its sha256 too when the version was opened to verify)
        rankers, default = load_rankers(version)
        for kind, ranker in rankers.items():
            if ranker.n_items != catalog.n_items:
                raise ArtifactError(
                    f"version {version.name}: the {kind} ranker has {ranker.n_items} items, the data {catalog.n_items}"
                )
    scorer = None
    if TEXT in version.components:
        version.load([TEXT])  # every file read and checked, as the ranking component's
        scorer = load_scorer(version)
        if scorer is not None and scorer.n_items != catalog.n_items:
            raise ArtifactError(
                f"version {version.name}: the text component has {scorer.n_items} items, the data {catalog.n_items}"
            )
    return RatingService(version.name, model, catalog, reviews, rankers, default, scorer)


def canary(svc: RatingService) -> None:
    """A query a new version must answer soundly before it is served: the first user's predicted rating of the
    first item, and their top 10 by every method of the version.

    Raises
    ------
    ArtifactError : a prediction off the rating scale or not finite, or a list naming an item that does not exist
        or scored NaN.
    """
    cat = svc.catalog
    if cat.n_users == 0 or cat.n_items == 0:
        raise ArtifactError(f"version {svc.version} has no users or no items")
    pred = svc.model.predict(np.array([0]), np.array([0]))
    r = float(pred.rating[0])
    if not (np.isfinite(r) and svc.model.low <= r <= svc.model.high):
        raise ArtifactError(f"version {svc.version}: the canary prediction is {r}")
    for method in svc.methods:
        rec = svc.recommend_user(str(cat.user_ids[0]), 10, method, [])
        if rec.items.size and (rec.items.min() < 0 or rec.items.max() >= cat.n_items):
            raise ArtifactError(f"version {svc.version}: method {method} recommends an item that does not exist")
        if not np.all(np.isfinite(rec.scores)):
            raise ArtifactError(f"version {svc.version}: method {method} gives non-finite scores")
