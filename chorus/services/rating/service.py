"""What the rating service serves for one artifact version, and the recommendation logic of its routes.

A version holds the rating model (``rating`` component), the catalog, every review with its rating, and, when
the version has a ``ranking`` component, its top-N rankers and the default one. The methods here choose who
answers a request (:meth:`RatingService.resolve`), build the history a ranker scores (a known user's reviews, or
an anonymous basket) and apply the fallbacks; they import neither FastAPI nor pydantic.

Methods: every ranker kind of the version, and ``latent`` (the rating model's highest predicted ratings), which
cannot score a basket. An unknown user, or a basket with no known item, gets the ``popular`` ranker's list (or,
without one, the rating model's popular, well-rated items) with ``fallback = "popular"``.

Live events (with an event store, :mod:`chorus.services.rating.live`): a request about one user is answered from
their history as the store has it now (:meth:`RatingService.user_history`): their rows in the version unless they
were forgotten after its cutoff, with the rows of their events after the cutoff laid over them. Every ranker scores
that history, so an unknown user with live rows gets a personal list; every item the events name (views included)
is left out of their lists; ``latent`` and the predictions fold a user the rating model does not know into it
from those ratings (:meth:`chorus.services.rating.models.RatingModel.fold_in`), while a user it knows keeps their
trained parameters. Without a store (``live`` None) the answers are the version's alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.live import UserHistory, merge_history
from chorus.services.rating.models import RatingModel
from chorus.services.rating.models.base import POPULAR, Predictions
from chorus.services.rating.models.fold_in import FoldedUser, UserRidge
from chorus.services.rating.persistence import load_component
from chorus.services.rating.rankers import PopularRanker, Ranked, Ranker
from chorus.services.rating.rankers.base import history_row
from chorus.services.rating.rankers.persistence import COMPONENT as RANKING
from chorus.services.rating.rankers.persistence import load_live, load_rankers
from chorus.services.rating.text.scorer import COMPONENT as TEXT
from chorus.services.rating.text.scorer import ReviewScorer, load_scorer
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.events.rows import cutoff_of, purchase_rating
from chorus.shared.events.store import Live
from chorus.shared.report_component import load_report

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
    cutoff : int
        The highest event ``seq`` the version was trained on: only later events are live (0: none was).
    ridge : UserRidge or None
        The rating model's ridges for folding a user in (:meth:`RatingModel.user_ridge`); None: it folds no one
        in (its unknown users keep their fallbacks).
    report : bytes or None
        The version's evaluation report, an HTML page (:mod:`chorus.shared.report_component`); None without one.
    live_default : str or None
        The ranker a user with live events gets when the request names no method (chosen on a time-ordered
        replay: ``chorus.training.ranking.recency``); None: :attr:`default`.
    recency : float
        The decay a user's history is weighted by once they have live events (:meth:`UserHistory.recency`):
        their latest actions count most. 1: every item alike.
    """

    version: str
    model: RatingModel
    catalog: Catalog
    reviews: sp.csr_array
    rankers: dict[str, Ranker] = field(default_factory=dict)
    default: str = LATENT
    scorer: ReviewScorer | None = None
    cutoff: int = 0
    ridge: UserRidge | None = None
    report: bytes | None = None
    live_default: str | None = None
    recency: float = 1.0

    @property
    def methods(self) -> list[str]:
        """Every method this version answers a user with: its rankers, then ``latent``."""
        return [*self.rankers, LATENT]

    def user_history(self, user_id: str, live: Live | None) -> UserHistory:
        """``user_id``'s history: their rows in the version with their ``live`` events laid over them (see
        :func:`~chorus.services.rating.live.merge_history`; ``live`` None: the version's rows alone)."""
        u = int(self.catalog.user_indices([user_id])[0])
        if u >= 0:
            m = self.reviews
            lo, hi = m.indptr[u], m.indptr[u + 1]
            items, ratings = m.indices[lo:hi], m.data[lo:hi]
        else:
            items, ratings = np.zeros(0, dtype=np.int64), np.zeros(0)
        purchase = purchase_rating(self.model.low, self.model.high)
        return merge_history(u, items, ratings, live, self.catalog.item_indices, purchase)

    def _trained(self, u: int) -> bool:
        """Whether the rating model has trained parameters for user index ``u`` (-1: no)."""
        return u >= 0 and int(self.model.user_count[u]) > 0

    def fold(self, history: UserHistory) -> FoldedUser | None:
        """The rating model's parameters for ``history``'s ratings (:meth:`RatingModel.fold_in`); None when the
        model folds no one in or no rating names an item it knows."""
        if self.ridge is None or history.items.shape[0] == 0:
            return None
        return self.model.fold_in(history.items, history.ratings, self.ridge)

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

    def recommend_user(
        self, user_id: str, k: int, method: str | None, exclude: Sequence[str], live: Live | None = None
    ) -> Recommendation:
        """A user's top ``k`` by ``method`` (None: the default, or :attr:`live_default` for a user with live
        rows), never an item of their history, one their live events name (views included), or one in
        ``exclude``. A user with live rows has their history weighted by :attr:`recency`.

        ``live``: the user's events after :attr:`cutoff` (None: no event store). Rankers score the user's history
        (:meth:`user_history`); ``latent`` ranks by the model's predicted ratings, a user the model has no
        parameters for folded in from that history when ``live`` is given. A user with no history (unknown to
        the version and no live row naming one of its items, or forgotten) gets the popular list
        (``fallback = "popular"``), whichever method was asked for.

        Raises
        ------
        InvalidInput : see :meth:`resolve`; ``k`` below 1.
        """
        answer = self.resolve(method)
        banned, unknown_exclude = self._exclude(exclude)
        history = self.user_history(user_id, live)
        if method is None and history.live_rows and self.live_default in self.rankers:
            answer = str(self.live_default)
        banned = np.union1d(banned, history.acted).astype(np.int64)
        if history.items.shape[0] == 0:
            return self._popular(k, banned, unknown_exclude=unknown_exclude)
        if answer == LATENT:
            seen = np.union1d(history.items, banned).astype(np.int64)
            folded = None if live is None or self._trained(history.user) else self.fold(history)
            if folded is not None:
                rec = self.model.recommend_folded(folded, k, exclude=seen)
            elif history.user < 0:
                return self._popular(k, seen, unknown_exclude=unknown_exclude)
            else:
                rec = self.model.recommend(history.user, k, exclude=seen)
            return Recommendation(LATENT, rec.items, rec.ratings, None, rec.fallback, [], unknown_exclude)
        row = history_row(history.items, history.ratings, self.catalog.n_items)
        ranked = self.rankers[answer].recommend(row, k, exclude=banned, weights=history.recency(self.recency))
        return _ranked(answer, ranked, [], unknown_exclude)

    def predict(
        self, users: Sequence[str], items: Sequence[str], lives: Mapping[str, Live | None] | None = None
    ) -> Predictions:
        """Predicted ratings of (user, item) pairs by raw id, clipped, with their fallback codes
        (:meth:`RatingModel.predict`).

        ``lives``: each user's events after :attr:`cutoff` (None, or a user missing: no event store). A user the
        model has parameters for keeps them, unless forgotten after the cutoff; a user it has none for (new, or
        forgotten) with ratings in their history is folded in (:meth:`fold`), so their pairs are predicted
        from those ratings (``fallback`` None for a known item, ``"user_bias"`` for an unknown one)."""
        users = list(users)
        u = self.catalog.user_indices(users)
        i = self.catalog.item_indices(list(items))
        if not lives:
            return self.model.predict(u, i)
        ids, inverse = np.unique(np.asarray(users, dtype=str), return_inverse=True)
        forgotten = np.array([(lv := lives.get(str(x))) is not None and lv.forgotten for x in ids], dtype=bool)
        pred = self.model.predict(np.where(forgotten[inverse], -1, u), i)
        rating, fallback = pred.rating.copy(), pred.fallback.copy()
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(inverse, minlength=ids.shape[0]))[:-1])
        for user_id, rows in zip(ids.tolist(), groups, strict=True):
            live = lives.get(user_id)
            if live is None or (not live.forgotten and self._trained(int(u[rows[0]]))):
                continue
            folded = self.fold(self.user_history(user_id, live))
            if folded is not None:
                rating[rows], fallback[rows] = self.model.predict_folded(folded, i[rows])
        return Predictions(rating, fallback)

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
    live_default, recency = None, 1.0
    if RANKING in version.components:
        version.load([RANKING])  # every file read and checked (its sha256 too when the version was opened to verify)
        rankers, default = load_rankers(version)
        live_default, recency = load_live(version)
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
    hyper = version.component_meta("rating").get("hyperparameters", {})
    return RatingService(
        version.name,
        model,
        catalog,
        reviews,
        rankers,
        default,
        scorer,
        cutoff=cutoff_of(version.manifest),
        ridge=model.user_ridge(hyper),
        report=load_report(version),
        live_default=live_default,
        recency=recency,
    )


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
