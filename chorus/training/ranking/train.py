"""Offline work of the ``ranking`` component: every ranker's hyperparameters chosen on validation data, the
ranker served by default, the refit on all rows, and the ranking evaluation (never imported by the service).

The protocol is ``docs/models.md``, "Ranking evaluation". Honesty rules, enforced here:

* Every point of ``GRIDS[kind]`` is fitted by ``FITTERS[kind]`` on the *fit* rows of
  :func:`~chorus.shared.data.splits.user_validation_split` and scored by NDCG@k on its *validation* rows; only
  the rows it is given are read, so test rows passed to nobody are never looked at.
* The best point of each kind, then the best kind, win on validation NDCG. Ties go to the earlier grid point,
  then to the kind listed first in ``FITTERS``, the order of the spec table
  (:data:`chorus.shared.contract.kinds.RANKERS`): a fixed order, so the same data always selects the same ranker.
* The chosen rankers are then refitted on every row the selection was given; :func:`evaluate` scores the
  held-out test rows once, with :func:`chorus.training.ranking.metrics.evaluate_rankings`.

A fitter that raises :class:`~chorus.shared.contract.errors.InvalidInput` (EASE above its catalogue limit, say) skips
its kind with a log line. Work is bounded: in evaluation a kind stops trying grid points once it has spent
``max_seconds`` (:data:`MAX_SECONDS`; the points already scored still count); ``chorus train`` tries the first
:data:`TRAIN_GRID_POINTS` points of each grid (the grids list their likeliest points first), a bound that does
not depend on the machine's speed, and scores a seeded sample of at most :data:`TRAIN_VALIDATION_USERS`
validation users.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.persistence import jsonable
from chorus.services.rating.rankers import Ranker
from chorus.services.rating.rankers.persistence import write_rankers
from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import check_k
from chorus.shared.data import Ratings
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.data.splits import user_holdout_split, user_validation_split
from chorus.shared.workers import resolve_workers, using_workers
from chorus.training.ranking.fit import FITTERS, GRIDS
from chorus.training.ranking.metrics import evaluate_rankings

log = logging.getLogger("chorus.training.train")

#: List length the selection scores and ``chorus train`` selects for.
DEFAULT_K = 10
#: Seconds of grid search per kind after which its remaining grid points are skipped (the first always runs);
#: the budget of :func:`evaluate`.
MAX_SECONDS = 60.0
#: Grid points per kind that ``chorus train`` (and so ``chorus up``'s first start) tries: the first ones, as the
#: grids list their likeliest points first. A count, not seconds, so the same data selects the same rankers on
#: any machine.
TRAIN_GRID_POINTS = 2
#: Validation users ``chorus train`` scores per grid point at most (a seeded sample); :func:`evaluate` scores all.
TRAIN_VALIDATION_USERS = 2_000
#: Score matrix cells computed at once when ranking a batch of users (rows per block = this / n_items).
SCORE_CELLS = 1 << 22

ANY = "any"
MIN_RATING = "min_rating="


def parse_relevance(value: str | float | None) -> float | None:
    """Which held-out items are relevant: ``"any"`` (or None) gives None, every held-out item;
    ``"min_rating=4"`` (or the number 4) gives 4.0, only held-out items rated at least 4.

    Raises
    ------
    InvalidInput : any other text, or a threshold that is not a finite number.
    """
    if value is None or value == ANY:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.startswith(MIN_RATING):
        try:
            number = float(value[len(MIN_RATING) :])
        except ValueError:
            number = math.nan
    else:
        raise InvalidInput(f"relevance must be 'any' or 'min_rating=<number>', got {value!r}")
    if not math.isfinite(number):
        raise InvalidInput(f"relevance must be 'any' or 'min_rating=<number>', got {value!r}")
    return number


def relevance_name(min_rating: float | None) -> str:
    """The text form of a parsed relevance: ``"any"`` or ``"min_rating=4"``."""
    return ANY if min_rating is None else f"{MIN_RATING}{min_rating:g}"


def recommend_lists(ranker: Ranker, history: sp.csr_array, users: np.ndarray, k: int) -> np.ndarray:
    """int64 (len(users), k): ``ranker``'s lists for the rows ``users`` (int (m,)) of ``history`` (n_users,
    n_items), in blocks of at most :data:`SCORE_CELLS` scores; -1 padded as ``Ranker.recommend_batch``."""
    users = np.asarray(users, dtype=np.int64)
    out = np.full((users.shape[0], k), -1, dtype=np.int64)
    rows = max(1, SCORE_CELLS // max(1, history.shape[1]))
    for lo in range(0, users.shape[0], rows):
        out[lo : lo + rows] = ranker.recommend_batch(sp.csr_array(history[users[lo : lo + rows]]), k)
    return out


@dataclass
class Scorer:
    """What lists are scored against: the held-out relevant items of the evaluated users, and the training
    statistics that coverage and novelty need.

    Attributes
    ----------
    history : CSR (n_users, n_items), the training reviews (the histories the rankers see).
    users : int64 (m,), the users with at least one relevant held-out item (the only ones scored).
    relevant : CSR (m, n_items), their relevant items.
    """

    history: sp.csr_array
    users: np.ndarray
    relevant: sp.csr_array

    @classmethod
    def build(
        cls,
        history: sp.csr_array,
        user: np.ndarray,
        item: np.ndarray,
        rating: np.ndarray,
        min_rating: float | None,
        max_users: int | None = None,
        seed: int = 0,
    ) -> Scorer:
        """From the held-out rows (int (n,) ``user``, ``item``, float (n,) ``rating``); with ``max_users``, a
        sample of that many evaluated users drawn by ``numpy.random.default_rng(seed)``."""
        keep = np.ones(user.shape[0], dtype=bool) if min_rating is None else rating >= min_rating - 1e-9
        n_users, n_items = history.shape
        rel = user_item_matrix(user[keep], item[keep], n_users, n_items)
        users = np.flatnonzero(np.diff(rel.indptr) > 0).astype(np.int64)
        if max_users is not None and users.shape[0] > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
        return cls(history, users, sp.csr_array(rel[users]))

    def score(self, ranker: Ranker, k: int) -> dict[str, float]:
        """:func:`~chorus.training.ranking.metrics.evaluate_rankings` of ``ranker``'s top-``k`` lists."""
        if self.users.shape[0] == 0:
            raise InvalidInput("no user has a relevant held-out item: nothing to evaluate")
        counts = np.bincount(self.history.indices, minlength=self.history.shape[1])
        n_users = int(np.count_nonzero(np.diff(self.history.indptr)))
        recommended = recommend_lists(ranker, self.history, self.users, k)
        return evaluate_rankings(recommended, self.relevant, counts, n_users, int(np.count_nonzero(counts)))


@dataclass
class KindSelection:
    """One kind's grid search: its best point (``params``, ``validation`` metrics), every point tried, and
    whether the whole grid ran (``complete``; False when ``max_seconds`` cut it short)."""

    kind: str
    params: dict[str, Any]
    validation: dict[str, float]
    points: list[dict[str, Any]]
    complete: bool
    seconds: float

    @property
    def ndcg(self) -> float:
        value = self.validation["ndcg"]
        return -math.inf if math.isnan(value) else value


@dataclass
class Selection:
    """Outcome of :func:`select`: per kind its best grid point (in ``FITTERS`` order), the kinds skipped and
    why, and the selected kind (best validation NDCG@k; ties to the kind listed first in ``FITTERS``)."""

    k: int
    seed: int
    relevance: str
    kinds: dict[str, KindSelection]
    skipped: dict[str, str]
    validation_users: int
    seconds: float
    order: list[str] = field(default_factory=list)

    @property
    def selected(self) -> str:
        return self.order[0]

    def ranked(self) -> list[str]:
        """The selected kinds, best validation NDCG first (ties: ``FITTERS`` order)."""
        return list(self.order)

    def metrics(self) -> dict[str, Any]:
        """A JSON-ready record for the artifact manifest."""
        record: dict[str, Any] = jsonable(
            {
                "k": self.k,
                "seed": self.seed,
                "relevance": self.relevance,
                "selected": self.selected,
                "validation_users": self.validation_users,
                "kinds": {
                    kind: {
                        "params": s.params,
                        "validation": s.validation,
                        "grid": s.points,
                        "complete": s.complete,
                        "seconds": round(s.seconds, 3),
                    }
                    for kind, s in self.kinds.items()
                },
                "skipped": self.skipped,
                "seconds": round(self.seconds, 3),
            }
        )
        return record


def _kinds(kinds: Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(FITTERS)
    unknown = [k for k in kinds if k not in FITTERS]
    if unknown:
        raise InvalidInput(f"unknown ranker {unknown[0]!r}: expected one of {', '.join(FITTERS)}")
    return [k for k in FITTERS if k in kinds]  # FITTERS order, the tie-break order


def select(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    rows: np.ndarray | None = None,
    k: int = DEFAULT_K,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    relevance: str | float | None = ANY,
    max_seconds: float | None = MAX_SECONDS,
    max_points: int | None = None,
    max_users: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Selection:
    """Choose every kind's hyperparameters, and the best kind, by NDCG@k on a validation split of ``rows``.

    Parameters
    ----------
    user, item : int (n,)
        Every review's user and item index, in file order (the split permutes each user's rows in file order).
    rating : float (n,)
        Star ratings (the rankers' input values; relevance with ``min_rating``).
    n_users, n_items : int
        Vocabulary sizes.
    rows : int (n_rows,), optional
        Sorted indices of the rows to select on (the training rows); default every row. No other row is read.
    k : int
        List length of the NDCG.
    seed : int
        Seed of the validation split (and of the sample of validation users).
    kinds : list of str, optional
        Kinds to try (default every kind of ``FITTERS``).
    relevance : ``"any"``, ``"min_rating=<r>"`` or a number
        Which validation items count as relevant (:func:`parse_relevance`).
    max_seconds : float, optional
        Grid-search budget per kind; None for no limit.
    max_points : int, optional
        Try at most the first this many points of each grid (default all).
    max_users : int, optional
        Score a seeded sample of this many validation users (default all).
    progress : callable, optional
        ``progress(done)`` after each grid point.

    Raises
    ------
    InvalidInput : ``k`` below 1, an unknown kind, a bad relevance, or every kind skipped.
    """
    t0 = time.perf_counter()
    k = check_k(k)
    min_rating = parse_relevance(relevance)
    names = _kinds(kinds)
    user = np.asarray(user)
    rows = np.arange(user.shape[0], dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    fit, val = user_validation_split(user, rows, n_users, seed)
    history = user_item_matrix(user[fit], item[fit], n_users, n_items, values=rating[fit])
    scorer = Scorer.build(history, user[val], item[val], np.asarray(rating)[val], min_rating, max_users, seed)
    if scorer.users.shape[0] == 0:
        log.warning("ranking selection: no validation user has a relevant item; every kind keeps its first grid point")
    chosen: dict[str, KindSelection] = {}
    skipped: dict[str, str] = {}
    done = 0
    for kind in names:
        t_kind = time.perf_counter()
        points: list[dict[str, Any]] = []
        best: tuple[float, dict[str, Any], dict[str, float]] | None = None
        grid = GRIDS[kind]
        for n, params in enumerate(grid):
            t = time.perf_counter()
            try:
                ranker = FITTERS[kind](history, dict(params))
            except InvalidInput as exc:
                skipped[kind] = exc.detail
                log.warning("ranking selection: %s skipped: %s", kind, exc.detail)
                break
            if scorer.users.shape[0]:
                figures = scorer.score(ranker, k)
            else:
                figures = {"ndcg": math.nan}
            points.append(
                {"params": dict(params), "ndcg": figures["ndcg"], "seconds": round(time.perf_counter() - t, 3)}
            )
            done += 1
            if progress:
                progress(done)
            value = -math.inf if math.isnan(figures["ndcg"]) else figures["ndcg"]
            if best is None or value > best[0]:  # strict: ties keep the earlier grid point
                best = (value, dict(params), figures)
            if scorer.users.shape[0] == 0:
                break  # nothing to compare the points on: the first one stands
            if max_points is not None and n + 1 >= max_points:
                break  # the grids list their likeliest points first
            spent = time.perf_counter() - t_kind
            if max_seconds is not None and spent >= max_seconds and n + 1 < len(grid):
                log.warning(
                    "ranking selection: %s stopped after %d of %d grid points (%.1f s, budget %.1f s)",
                    kind,
                    n + 1,
                    len(grid),
                    spent,
                    max_seconds,
                )
                break
        if kind in skipped or best is None:
            continue
        chosen[kind] = KindSelection(
            kind=kind,
            params=best[1],
            validation=best[2],
            points=points,
            complete=len(points) == len(grid),
            seconds=time.perf_counter() - t_kind,
        )
    if not chosen:
        raise InvalidInput(f"no ranker could be fitted: {'; '.join(f'{k}: {r}' for k, r in skipped.items())}")
    # sorted() is stable: equal NDCG keeps FITTERS order
    order = sorted(chosen, key=lambda kind: -chosen[kind].ndcg)
    return Selection(
        k=k,
        seed=seed,
        relevance=relevance_name(min_rating),
        kinds=chosen,
        skipped=skipped,
        validation_users=int(scorer.users.shape[0]),
        seconds=time.perf_counter() - t0,
        order=order,
    )


def refit(history: sp.csr_array, selection: Selection) -> tuple[dict[str, Ranker], dict[str, float], dict[str, str]]:
    """Every selected kind fitted on ``history`` (CSR (n_users, n_items), star ratings) with its chosen
    params, in ``FITTERS`` order; the seconds each fit took; and the kinds whose fitter refused the larger
    data (InvalidInput), with the reason."""
    rankers: dict[str, Ranker] = {}
    seconds: dict[str, float] = {}
    refused: dict[str, str] = {}
    for kind, chosen in selection.kinds.items():
        t = time.perf_counter()
        try:
            rankers[kind] = FITTERS[kind](history, dict(chosen.params))
        except InvalidInput as exc:
            refused[kind] = exc.detail
            log.warning("ranking refit: %s skipped: %s", kind, exc.detail)
            continue
        seconds[kind] = time.perf_counter() - t
    if not rankers:
        raise InvalidInput(f"no ranker could be refitted: {'; '.join(f'{k}: {r}' for k, r in refused.items())}")
    return rankers, seconds, refused


def _best_fitted(selection: Selection, rankers: Mapping[str, Ranker]) -> str:
    return next(kind for kind in selection.ranked() if kind in rankers)


def train_component(
    ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True, workers: int | None = None
) -> dict[str, Any]:
    """``chorus train`` entry point: select on a validation split of every row (NDCG@10 on a sample of at most
    :data:`TRAIN_VALIDATION_USERS` validation users; the first :data:`TRAIN_GRID_POINTS` points of each grid, so
    that the choice does not depend on the machine's speed), refit every kind with its chosen params on *all*
    rows, and write the ``ranking`` component, the best validation kind as its default. ``workers``
    (:func:`chorus.shared.workers.resolve_workers`): implicit's threads and BLAS's. Returns a short summary."""
    with using_workers(resolve_workers(workers)):
        return _train_component(ratings, writer, seed=seed, progress=progress)


def _train_component(ratings: Ratings, writer: VersionWriter, *, seed: int, progress: bool) -> dict[str, Any]:
    from chorus.shared.progress import Progress

    t0 = time.perf_counter()
    with Progress("ranking selection", total=sum(min(len(GRIDS[kind]), TRAIN_GRID_POINTS) for kind in FITTERS)) as bar:
        bar.enabled = bar.enabled and progress
        selection = select(
            ratings.user,
            ratings.item,
            ratings.rating,
            ratings.n_users,
            ratings.n_items,
            seed=seed,
            max_seconds=None,
            max_points=TRAIN_GRID_POINTS,
            max_users=TRAIN_VALIDATION_USERS,
            progress=bar.update,
        )
    everything = user_item_matrix(ratings.user, ratings.item, ratings.n_users, ratings.n_items, values=ratings.rating)
    rankers, fit_seconds, refused = refit(everything, selection)
    default = _best_fitted(selection, rankers)
    seconds = time.perf_counter() - t0
    metrics = selection.metrics() | {
        "default": default,
        "refused_on_refit": refused,
        "fit_seconds": {kind: round(s, 3) for kind, s in fit_seconds.items()},
        "seconds": round(seconds, 3),
    }
    write_rankers(writer, rankers, default, metrics)
    return {
        "default": default,
        "validation_ndcg": {kind: round(s.validation["ndcg"], 4) for kind, s in selection.kinds.items()},
        "params": {kind: s.params for kind, s in selection.kinds.items()},
        "skipped": selection.skipped | refused,
        "seconds": round(seconds, 2),
    }


def evaluate(
    ratings: Ratings,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    relevance: str | float | None = ANY,
    kinds: Sequence[str] | None = None,
    max_seconds: float | None = MAX_SECONDS,
) -> dict[str, Any]:
    """The ranking protocol (``docs/models.md``, "Ranking evaluation") on one dataset.

    ``user_holdout_split(user, n_users, seed)`` gives the test rows; :func:`select` runs on the training rows
    only; each kind is refitted on all training rows with its chosen params (timed: ``fit_seconds``); the test
    rows are scored once. ``relevance``: ``"any"`` (every test item is relevant) or ``"min_rating=<r>"`` (only
    test items rated at least ``r``); users with no relevant test item take no part in any metric.

    Returns
    -------
    dict
        ``{"task": "ranking", "k", "models": {kind: {"precision", "recall", "ndcg", "map", "coverage",
        "novelty", "fit_seconds"}}, "selected", "seconds"}`` plus ``"seed"``, ``"relevance"``, ``"params"``
        (per kind), ``"validation"`` (per kind, the selection's figures for the chosen point), ``"skipped"``
        (kind -> reason) and ``"split"`` (row and user counts).
    """
    t0 = time.perf_counter()
    k = check_k(k)
    min_rating = parse_relevance(relevance)
    user, item = np.asarray(ratings.user), np.asarray(ratings.item)
    rating = np.asarray(ratings.rating, dtype=np.float64)
    train, test = user_holdout_split(user, ratings.n_users, seed)
    selection = select(
        user,
        item,
        rating,
        ratings.n_users,
        ratings.n_items,
        rows=train,
        k=k,
        seed=seed,
        kinds=kinds,
        relevance=min_rating,
        max_seconds=max_seconds,
    )
    history = user_item_matrix(user[train], item[train], ratings.n_users, ratings.n_items, values=rating[train])
    scorer = Scorer.build(history, user[test], item[test], rating[test], min_rating)
    rankers, fit_seconds, refused = refit(history, selection)
    models = {kind: scorer.score(ranker, k) | {"fit_seconds": fit_seconds[kind]} for kind, ranker in rankers.items()}
    record: dict[str, Any] = jsonable(
        {
            "task": "ranking",
            "k": k,
            "seed": seed,
            "relevance": relevance_name(min_rating),
            "models": models,
            "selected": _best_fitted(selection, rankers),
            "params": {kind: selection.kinds[kind].params for kind in rankers},
            "validation": {
                kind: selection.kinds[kind].validation | {"grid_points": len(selection.kinds[kind].points)}
                for kind in rankers
            },
            "skipped": selection.skipped | refused,
            "split": {
                "train": int(train.shape[0]),
                "test": int(test.shape[0]),
                "test_users": int(scorer.users.shape[0]),
                "validation_users": selection.validation_users,
            },
            "seconds": time.perf_counter() - t0,
        }
    )
    return record
