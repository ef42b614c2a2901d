"""Offline work of the ``ranking`` component: every ranker's hyperparameters chosen on validation data, the
ranker served by default, the refit on all rows, and the ranking evaluation (never imported by the service).

The protocol is ``docs/models.md``, "Ranking evaluation". One selection, :func:`choose`, serves ``chorus train``
(so ``chorus up``) and ``chorus evaluate --task ranking`` alike, so the ranker ``evaluate`` marks is the one
``train`` serves. Honesty rules, enforced here:

* :func:`choose` holds out the test rows of :func:`~chorus.shared.data.splits.user_holdout_split` and runs
  :func:`select` on the rest; every point of ``GRIDS[kind]`` is fitted by ``FITTERS[kind]`` on the *fit* rows of
  :func:`~chorus.shared.data.splits.user_validation_split` and scored by NDCG@k on its *validation* rows (a
  seeded sample of at most :data:`VALIDATION_USERS` users); only the rows it is given are read.
* The best point of each kind, then the best kind, win on validation NDCG. Ties go to the earlier grid point,
  then to the kind listed first in ``FITTERS``, the order of the spec table
  (:data:`chorus.shared.contract.kinds.RANKERS`): a fixed order, so the same data always selects the same ranker.
* Every point of every grid is tried: nothing depends on the clock, the machine's speed or the number of
  workers, so the same data and seed give the same choice and the same artifact bytes anywhere.
* The chosen rankers are then refitted: on every row by ``chorus train``; on the training rows by
  :func:`evaluate`, which scores the held-out test rows once with
  :func:`chorus.training.ranking.metrics.evaluate_rankings`.

The grid points run as independent tasks (:func:`plan`: item-kNN's points that share a similarity product form
one task), in forked worker processes when there are several workers (:func:`run_tasks`; the refits through
:func:`chorus.shared.workers.map_processes`); every task runs with one BLAS thread and one implicit thread in any
case, so what it computes does not depend on where it runs. A fitter that raises
:class:`~chorus.shared.contract.errors.InvalidInput` (item-kNN above its catalogue limit, say) skips its kind with
a log line.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from chorus.services.rating.persistence import jsonable
from chorus.services.rating.rankers import ItemKnnRanker, Ranker, Rp3BetaRanker
from chorus.services.rating.rankers.persistence import write_rankers
from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import check_k
from chorus.shared.data import Ratings
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.data.splits import user_holdout_split, user_validation_split
from chorus.shared.workers import can_fork, map_processes, resolve_workers, using_workers
from chorus.training.malloc import heap_blocks
from chorus.training.ranking.fit import (
    FITTERS,
    GRIDS,
    PARTS,
    KnnCandidates,
    check_knn,
    check_knn_size,
    check_rp3,
    compose,
    fit_item_knn,
    fit_rp3beta,
    item_counts,
    knn_candidates_per_shrink,
    knn_truncate,
    mixes_chosen_parts,
    part_params,
    rp3_candidates_per_beta,
    weights_of,
)
from chorus.training.ranking.kernels import top_rows
from chorus.training.ranking.metrics import evaluate_rankings

log = logging.getLogger("chorus.training.train")

T = TypeVar("T")
R = TypeVar("R")

#: List length the selection scores and ``chorus train`` selects for.
DEFAULT_K = 10
#: Validation users the selection scores at most: a sample drawn by ``numpy.random.default_rng(seed)`` when there
#: are more (every one on MovieLens 100K and the Amazon 5-core file, 943 and 871). A count, not a time, so it is
#: the same choice on every machine; scoring costs users × items × grid points (106 points), which on the
#: 200,000 demo reviews (7,987 items, 5,951 validation users) was over half of the selection's time before the cap.
VALIDATION_USERS = 1_000
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
    n_items), in blocks of at most :data:`SCORE_CELLS` scores; the lists of ``Ranker.recommend_batch`` (never a
    history item or an item without training reviews, ties to the lower index, -1 padded)."""
    users = np.asarray(users, dtype=np.int64)
    out = np.full((users.shape[0], k), -1, dtype=np.int64)
    rows = max(1, SCORE_CELLS // max(1, history.shape[1]))
    unseen = ranker.item_count == 0
    for lo in range(0, users.shape[0], rows):
        block = sp.csr_array(history[users[lo : lo + rows]])
        banned = np.repeat(unseen[None, :], block.shape[0], axis=0)
        banned[np.repeat(np.arange(block.shape[0]), np.diff(block.indptr)), block.indices] = True
        out[lo : lo + rows] = top_lists(np.asarray(ranker.score(block)), banned, k)
    return out


def top_lists(scores: np.ndarray, banned: np.ndarray, k: int) -> np.ndarray:
    """int64 (m, k): per row of ``scores`` (float (m, n)) the ``k`` highest that are not ``banned`` (bool (m, n)),
    best first, ties to the lower index, -1 padded: the lists of
    :func:`~chorus.services.rating.rankers.base.top_items` row by row, from one pass over each row
    (:func:`~chorus.training.ranking.kernels.top_rows`).

    Raises
    ------
    InvalidInput : a NaN score of an allowed item.
    """
    scores = np.asarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    out, has_nan = top_rows(np.ascontiguousarray(scores), np.ascontiguousarray(banned, dtype=bool), int(k))
    if has_nan:
        raise InvalidInput("a ranker produced NaN scores")
    lists: np.ndarray = out
    return lists


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
    """One kind's grid search: its best point (``params``, ``validation`` metrics) and every point tried (all
    of its grid, or only the first when no validation user can tell the points apart)."""

    kind: str
    params: dict[str, Any]
    validation: dict[str, float]
    points: list[dict[str, Any]]
    seconds: float
    #: the index of the best point in the kind's grid
    index: int = 0

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


#: kind -> the params whose values a task shares work over: item-kNN's points with the same weights share the
#: item×item product and, per shrink, its ranking of each row's neighbours
#: (:func:`~chorus.training.ranking.fit.knn_candidates_per_shrink`), each point then only truncating and
#: normalising the ranked neighbours.
SHARED: dict[str, tuple[str, ...]] = {"item_knn": ("values",), "rp3beta": ("alpha",)}


@dataclass(frozen=True)
class Task:
    """Grid points of one kind fitted and scored together: indices into ``GRIDS[kind]``, ascending."""

    kind: str
    points: tuple[int, ...]


def plan(names: Sequence[str], first_only: bool = False) -> list[Task]:
    """The tasks of a grid search over the kinds ``names``: one per grid point, except that the points of a
    kind in :data:`SHARED` with the same shared values form one task; with ``first_only``, only the first
    point of each grid. The tasks come longest first (:func:`_cost`); the order fixes nothing about the outcome,
    which is put together by kind and point index."""
    tasks: list[Task] = []
    for kind in names:
        grid = GRIDS[kind][:1] if first_only else GRIDS[kind]
        if kind in PARTS:  # a blend's points in pairs (its parts come fitted): two tasks side by side
            tasks.extend(Task(kind, tuple(range(i, min(i + 2, len(grid))))) for i in range(0, len(grid), 2))
            continue
        keys = SHARED.get(kind)
        if not keys:
            tasks.extend(Task(kind, (i,)) for i in range(len(grid)))
            continue
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, params in enumerate(grid):
            groups.setdefault(tuple(params.get(key) for key in keys), []).append(i)
        tasks.extend(Task(kind, tuple(points)) for points in groups.values())
    # the longest tasks first, so that no worker starts a long one while the others run out of work: the
    # shared item-kNN tasks, then iALS by factors (its fit grows with them), then one point at a time
    return sorted(tasks, key=_cost, reverse=True)


def _cost(task: Task) -> float:
    """A rough relative cost of ``task`` for ordering (not timing): points, weighted by iALS's factors."""
    grid = GRIDS[task.kind]
    return float(sum(1 + int(grid[i].get("factors", 0)) / 8 for i in task.points))


def fit_points(
    kind: str, history: sp.csr_array, grid: Sequence[dict[str, Any]], parts: Sequence[Ranker] | None = None
) -> Iterator[Ranker]:
    """The rankers of the grid points ``grid`` of ``kind`` on ``history``, in order: ``FITTERS[kind]`` point
    by point, or for item-kNN the same similarity arrays from one shared product (:data:`SHARED`). A blend mixes
    ``parts`` (its parts fitted on ``history`` with the points' part params), or fits them once here. Raises what
    the fitter raises (InvalidInput: the kind is skipped)."""
    if kind in PARTS:  # a blend: its parts fitted once (every point shares their params), then mixed per point
        if parts is None:
            parts = [FITTERS[part](history, part_params(part, grid[0])) for part in PARTS[kind]]
        for params in grid:
            yield compose(kind, parts, params)
        return
    if kind == "rp3beta" and FITTERS[kind] is fit_rp3beta and len(grid) > 1 and len({p["alpha"] for p in grid}) == 1:
        yield from _rp3_points(history, grid)
        return
    shared = len({p.get("values", "binary") for p in grid}) == 1  # one product serves one weighting
    if kind != "item_knn" or FITTERS[kind] is not fit_item_knn or len(grid) < 2 or not shared:
        for params in grid:
            yield FITTERS[kind](history, dict(params))
        return
    for params in grid:
        check_knn(int(params["neighbours"]), float(params["shrink"]), params.get("normalise", "none"))
    check_knn_size(history)
    x = weights_of(history, grid[0].get("values", "binary"))
    yield from _from_ranked(
        history, grid, "shrink", lambda shrinks, width: knn_candidates_per_shrink(x, shrinks, width), ItemKnnRanker
    )


def _rp3_points(history: sp.csr_array, grid: Sequence[dict[str, Any]]) -> Iterator[Ranker]:
    """RP3beta's points of one ``alpha`` from one product, ranked once per ``beta`` (:func:`fit_rp3beta`'s
    arrays for each point)."""
    for params in grid:
        check_rp3(float(params["alpha"]), float(params["beta"]), int(params["neighbours"]))
    check_knn_size(history, "rp3beta")
    alpha = float(grid[0]["alpha"])
    yield from _from_ranked(
        history, grid, "beta", lambda betas, width: rp3_candidates_per_beta(history, alpha, betas, width), Rp3BetaRanker
    )


def _from_ranked(
    history: sp.csr_array,
    grid: Sequence[dict[str, Any]],
    key: str,
    ranked: Callable[[list[float], int], list[KnnCandidates]],
    cls: type[ItemKnnRanker],
) -> Iterator[Ranker]:
    """The neighbour rankers (``cls``) of the points ``grid`` of one shared product: ``ranked(values, width)``
    ranks every row's neighbours once per value of ``key`` among the points, as wide as the widest point, and
    each point keeps its first ``neighbours`` (normalised as it says)."""
    values = list(dict.fromkeys(float(p[key]) for p in grid))
    candidates = dict(zip(values, ranked(values, max(int(p["neighbours"]) for p in grid)), strict=True))
    counts = item_counts(history)
    for params in grid:
        indptr, indices, data = knn_truncate(
            candidates[float(params[key])], int(params["neighbours"]), params.get("normalise", "none")
        )
        yield cls(item_count=counts, params=dict(params), sim_indptr=indptr, sim_indices=indices, sim_data=data)


def _search_task(
    history: sp.csr_array,
    scorer: Scorer,
    k: int,
    tick: Callable[..., None],
    base: Mapping[str, dict[str, Any]] | None = None,
    keep: Collection[str] = (),
    parts: Mapping[str, Sequence[Ranker]] | None = None,
) -> Callable[[Task], list[dict[str, Any]]]:
    """``run(task)``: one record per point of ``task`` (``{"point", "figures", "seconds"}``, and ``"ranker"``
    for a kind in ``keep``), or one ``{"point", "refused"}`` record where the fitter refused, computed with one
    BLAS and one implicit thread; ``tick()`` after each point. ``base[kind]``: params under every point of
    ``kind`` (a blend's parts'); ``parts[kind]``: a blend's fitted parts (:func:`fit_points`)."""

    def run(task: Task) -> list[dict[str, Any]]:
        grid = [(base or {}).get(task.kind, {}) | GRIDS[task.kind][i] for i in task.points]
        given = (parts or {}).get(task.kind)
        out: list[dict[str, Any]] = []
        with using_workers(1):
            t = time.perf_counter()
            try:
                for i, ranker in zip(task.points, fit_points(task.kind, history, grid, given), strict=True):
                    figures = scorer.score(ranker, k) if scorer.users.shape[0] else {"ndcg": math.nan}
                    now = time.perf_counter()
                    out.append({"point": i, "figures": figures, "seconds": round(now - t, 3)})
                    if task.kind in keep:
                        out[-1]["ranker"] = ranker
                    t = now
                    tick()
            except InvalidInput as exc:
                tick(len(task.points) - len(out))  # the points not tried count as done: the bar ends at its total
                return [{"point": task.points[len(out)], "refused": exc.detail}]
        return out

    return run


class PointCounter:
    """Grid points scored so far, counted by whichever process scores them (a counter in shared memory when
    ``workers`` > 1), and passed to ``progress`` as they are: the bar moves point by point, not task by task."""

    def __init__(self, progress: Callable[[int], None] | None, workers: int) -> None:
        self._progress = progress
        self._shared = multiprocessing.get_context("fork").Value("q", 0) if workers > 1 and can_fork() else None
        self._done = 0

    def tick(self, points: int = 1) -> None:
        """``points`` more (in a worker or here)."""
        if self._shared is not None:
            with self._shared.get_lock():
                self._shared.value += points
        else:
            self._done += points
            self.report()

    def report(self) -> None:
        """Pass the count to ``progress`` (here, in the parent)."""
        if self._progress is not None:
            self._progress(int(self._shared.value) if self._shared is not None else self._done)

    def __enter__(self) -> PointCounter:
        self.report()  # the bar shows at once
        return self

    def __exit__(self, *exc: object) -> None:
        self.report()


_RUN: Callable[[Any], Any] | None = None


def _run_one(item: Any) -> Any:
    assert _RUN is not None  # set before the workers are forked
    return _RUN(item)


def _one_thread() -> None:
    threadpool_limits(1, "blas")


def run_tasks(
    fn: Callable[[T], R], items: Sequence[T], workers: int, wait: Callable[[], None] | None = None
) -> list[R]:
    """``[fn(x) for x in items]``, computed by up to ``workers`` forked processes (each on one BLAS thread),
    handed out in ``items`` order; ``wait()`` runs here every half second while they work (a progress bar).
    ``fn`` may close over large arrays: the workers are forked after it is set, so nothing is pickled on the
    way in. With one worker, or without fork, the items are computed here in order."""
    global _RUN
    if workers <= 1 or len(items) <= 1 or not can_fork():
        return [fn(x) for x in items]
    _RUN = fn
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=ctx, initializer=_one_thread) as pool:
            futures = [pool.submit(_run_one, x) for x in items]
            pending = set(futures)
            while pending:
                _, pending = concurrent.futures.wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                if wait:
                    wait()
            return [f.result() for f in futures]
    finally:
        _RUN = None


def blend_base(kind: str, chosen: Mapping[str, KindSelection]) -> dict[str, Any]:
    """The params under every grid point of a blend ``kind``: each part's chosen params where the selection
    chose them, else that part's first grid point (:func:`~chorus.shared.contract.kinds.blend_defaults`); {}
    for a plain kind."""
    out: dict[str, Any] = {}
    for part in PARTS.get(kind, ()):
        out |= dict(chosen[part].params) if part in chosen else dict(GRIDS[part][0])
    return out


def _best_point(kind: str, by_point: Mapping[int, dict[str, Any]], base: Mapping[str, Any]) -> KindSelection | str:
    """The best scored point of ``kind`` (ties to the earlier point), or the reason its fitter refused."""
    refused = [by_point[i]["refused"] for i in sorted(by_point) if "refused" in by_point[i]]
    if refused:
        return str(refused[0])
    points: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    for i in sorted(by_point):
        figures = by_point[i]["figures"]
        points.append(
            {"params": dict(base) | GRIDS[kind][i], "ndcg": figures["ndcg"], "seconds": by_point[i]["seconds"]}
        )
        value = -math.inf if math.isnan(figures["ndcg"]) else figures["ndcg"]
        if best is None or value > best[0]:  # strict: ties keep the earlier grid point
            best = (value, i)
    assert best is not None  # every kind has at least one grid point
    return KindSelection(
        kind=kind,
        params=dict(base) | GRIDS[kind][best[1]],
        validation=by_point[best[1]]["figures"],
        points=points,
        seconds=sum(p["seconds"] for p in points),
        index=best[1],
    )


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
    workers: int = 1,
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
        Seed of the validation split (and of the sample of at most :data:`VALIDATION_USERS` validation users).
    kinds : list of str, optional
        Kinds to try (default every kind of ``FITTERS``).
    relevance : ``"any"``, ``"min_rating=<r>"`` or a number
        Which validation items count as relevant (:func:`parse_relevance`).
    workers : int
        Processes the grid points run in (:func:`run_tasks`); the outcome is the same for any number.
    progress : callable, optional
        ``progress(done)`` as grid points are scored (``done`` counts points).

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
    scorer = Scorer.build(history, user[val], item[val], np.asarray(rating)[val], min_rating, VALIDATION_USERS, seed)
    if scorer.users.shape[0] == 0:
        log.warning("ranking selection: no validation user has a relevant item; every kind keeps its first grid point")
    first_only = scorer.users.shape[0] == 0
    chosen: dict[str, KindSelection] = {}
    skipped: dict[str, str] = {}
    # the plain stage hands back its rankers of the blends' parts, so the blends mix the chosen points' rankers
    # instead of fitting them again (the same arrays: the same rows and params, one thread); every point's ranker
    # is held until the stage's best is known (EASE's B is at most EASE_FIT_ITEMS² float32: 16 MB)
    keep = {part for kind in names if kind in PARTS for part in PARTS[kind]}
    fitted: dict[str, dict[int, Ranker]] = {}
    with PointCounter(progress, workers) as counter:
        # the plain kinds, then the blends with the params chosen for their parts
        for stage in ([kind for kind in names if kind not in PARTS], [kind for kind in names if kind in PARTS]):
            base: dict[str, dict[str, Any]] = {}
            for kind in list(stage):
                missing = [part for part in PARTS.get(kind, ()) if part in skipped]
                if missing:
                    skipped[kind] = f"its part {missing[0]} was skipped"
                    log.warning("ranking selection: %s skipped: %s", kind, skipped[kind])
                    stage.remove(kind)
                    counter.tick(len(GRIDS[kind]))
                else:
                    base[kind] = blend_base(kind, chosen)
            tasks = plan(stage, first_only=first_only)
            parts = {
                kind: [fitted[part][chosen[part].index] for part in PARTS[kind]]
                for kind in stage
                if kind in PARTS and all(part in chosen for part in PARTS[kind])
            }
            run = _search_task(history, scorer, k, counter.tick, base, keep, parts)
            results = run_tasks(run, tasks, workers, counter.report)
            del parts, run
            records: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in stage}
            for task, result in zip(tasks, results, strict=True):
                for record in result:
                    records[task.kind][record["point"]] = record
                    if "ranker" in record:
                        fitted.setdefault(task.kind, {})[record["point"]] = record.pop("ranker")
            for kind in stage:
                picked = _best_point(kind, records[kind], base.get(kind, {}))
                if isinstance(picked, str):
                    skipped[kind] = picked
                    log.warning("ranking selection: %s skipped: %s", kind, picked)
                else:
                    chosen[kind] = picked
            # only the chosen points' rankers are mixed
            fitted = {
                kind: {chosen[kind].index: by[chosen[kind].index]} for kind, by in fitted.items() if kind in chosen
            }
    del fitted
    chosen = {kind: chosen[kind] for kind in names if kind in chosen}  # FITTERS order, the tie-break order
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


def choose(
    ratings: Ratings,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    relevance: str | float | None = ANY,
    kinds: Sequence[str] | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[Selection, np.ndarray, np.ndarray]:
    """The one ranking selection of ``chorus train`` and ``chorus evaluate``: the rows of
    ``user_holdout_split(user, n_users, seed)``, then :func:`select` on its training rows. Returns the selection
    and the (train, test) rows, so that ``evaluate`` scores those test rows and ``train`` serves the same
    choice (refitted on every row)."""
    user = np.asarray(ratings.user)
    train, test = user_holdout_split(user, ratings.n_users, seed)
    selection = select(
        user,
        ratings.item,
        np.asarray(ratings.rating, dtype=np.float64),
        ratings.n_users,
        ratings.n_items,
        rows=train,
        k=k,
        seed=seed,
        kinds=kinds,
        relevance=relevance,
        workers=workers,
        progress=progress,
    )
    return selection, train, test


def grid_points(kinds: Sequence[str] | None = None) -> int:
    """How many grid points :func:`select` tries for ``kinds`` (default every kind): the progress total."""
    return sum(len(GRIDS[kind]) for kind in _kinds(kinds))


def refit(
    history: sp.csr_array, selection: Selection, workers: int = 1, progress: Callable[[int], None] | None = None
) -> tuple[dict[str, Ranker], dict[str, float], dict[str, str]]:
    """Every selected kind fitted on ``history`` (CSR (n_users, n_items), star ratings) with its chosen
    params, the kinds side by side in up to ``workers`` processes (each with one BLAS and one implicit thread,
    so the arrays do not depend on ``workers``); the seconds each fit took; and the kinds whose fitter refused
    the larger data (InvalidInput), with the reason. ``progress(done)`` after each kind."""

    def fit_one(kind: str) -> tuple[Ranker | None, float, str]:
        with using_workers(1):
            t = time.perf_counter()
            try:
                ranker = FITTERS[kind](history, dict(selection.kinds[kind].params))
            except InvalidInput as exc:
                return None, 0.0, exc.detail
            return ranker, time.perf_counter() - t, ""

    rankers: dict[str, Ranker] = {}
    seconds: dict[str, float] = {}
    refused: dict[str, str] = {}
    # a blend whose parts are refitted with its own part params is put together from them afterwards (no fit)
    composed = [kind for kind in selection.kinds if kind in PARTS and _parts_refitted(kind, selection)]
    names = [kind for kind in selection.kinds if kind not in composed]
    for n, (kind, (ranker, took, reason)) in enumerate(
        zip(names, map_processes(fit_one, names, workers), strict=True), 1
    ):
        if ranker is None:
            refused[kind] = reason
            log.warning("ranking refit: %s skipped: %s", kind, reason)
        else:
            rankers[kind], seconds[kind] = ranker, took
        if progress:
            progress(n)
    for n, kind in enumerate(composed, len(names) + 1):
        missing = [part for part in PARTS[kind] if part not in rankers]
        if missing:
            refused[kind] = f"its part {missing[0]} was skipped"
            log.warning("ranking refit: %s skipped: %s", kind, refused[kind])
        else:
            rankers[kind] = compose(kind, [rankers[part] for part in PARTS[kind]], selection.kinds[kind].params)
            seconds[kind] = sum(seconds[part] for part in PARTS[kind])
        if progress:
            progress(n)
    rankers = {kind: rankers[kind] for kind in selection.kinds if kind in rankers}  # selection order
    if not rankers:
        raise InvalidInput(f"no ranker could be refitted: {'; '.join(f'{k}: {r}' for k, r in refused.items())}")
    return rankers, seconds, refused


def _parts_refitted(kind: str, selection: Selection) -> bool:
    """Whether every part of the blend ``kind`` is refitted with the part params the blend was chosen with."""
    return mixes_chosen_parts(kind, {name: s.params for name, s in selection.kinds.items()})


def _best_fitted(selection: Selection, rankers: Mapping[str, Ranker]) -> str:
    return next(kind for kind in selection.ranked() if kind in rankers)


def train_component(
    ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True, workers: int | None = None
) -> dict[str, Any]:
    """``chorus train`` entry point: :func:`choose` (NDCG@10, every grid point), refit every kind with its
    chosen params on *all* rows, and write the ``ranking`` component, the best validation kind as its default.
    ``workers`` (:func:`chorus.shared.workers.resolve_workers`): the processes grid points and refits run in.
    Returns a short summary."""
    from chorus.shared.progress import Progress

    t0 = time.perf_counter()
    n = resolve_workers(workers)
    points = grid_points()
    # one bar for the grid points, the refits and the writing (a dense EASE matrix takes a moment to write)
    from chorus.training.ranking.recency import STEPS, choose_live

    steps = points + len(FITTERS) + STEPS + 1
    with heap_blocks(), Progress("ranking selection", total=steps) as bar:
        bar.enabled = bar.enabled and progress
        selection, _, _ = choose(ratings, seed=seed, workers=n, progress=bar.update)
        everything = user_item_matrix(
            ratings.user, ratings.item, ratings.n_users, ratings.n_items, values=ratings.rating
        )
        rankers, fit_seconds, refused = refit(everything, selection, n, lambda done: bar.update(points + done))
        default = _best_fitted(selection, rankers)
        served = dataclasses.replace(
            selection,
            kinds={kind: s for kind, s in selection.kinds.items() if kind in rankers},
            order=[kind for kind in selection.order if kind in rankers],
        )
        live = choose_live(
            ratings, served, default, workers=n, progress=lambda done: bar.update(points + len(FITTERS) + done)
        )
        seconds = time.perf_counter() - t0
        metrics = selection.metrics() | {
            "default": default,
            "refused_on_refit": refused,
            "fit_seconds": {kind: round(s, 3) for kind, s in fit_seconds.items()},
            "live": live,
            "seconds": round(seconds, 3),
        }
        write_rankers(writer, rankers, default, metrics, live_default=live["method"], recency=live["decay"])
        bar.update(steps)
    return {
        "default": default,
        "live_default": live["method"],
        "recency": live["decay"],
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
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The ranking protocol (``docs/models.md``, "Ranking evaluation") on one dataset.

    :func:`choose` gives the test rows and the selection (on the training rows only; with the default ``k``,
    relevance and every kind, the very selection ``chorus train`` serves from); each kind is refitted on all
    training rows with its chosen params (timed: ``fit_seconds``); the test rows are scored once.
    ``relevance``: ``"any"`` (every test item is relevant) or ``"min_rating=<r>"`` (only test items rated at
    least ``r``); users with no relevant test item take no part in any metric. ``workers``: as
    :func:`train_component`'s. ``progress``: a bar on a terminal over the grid points and the refits.

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
    n = resolve_workers(workers)
    user, item = np.asarray(ratings.user), np.asarray(ratings.item)
    rating = np.asarray(ratings.rating, dtype=np.float64)
    from chorus.shared.progress import Progress

    points = grid_points(kinds)
    with heap_blocks(), Progress("ranking evaluation", total=points + len(_kinds(kinds))) as bar:
        bar.enabled = bar.enabled and progress
        selection, train, test = choose(
            ratings, k=k, seed=seed, relevance=min_rating, kinds=kinds, workers=n, progress=bar.update
        )
        history = user_item_matrix(user[train], item[train], ratings.n_users, ratings.n_items, values=rating[train])
        scorer = Scorer.build(history, user[test], item[test], rating[test], min_rating)
        rankers, fit_seconds, refused = refit(history, selection, n, lambda done: bar.update(points + done))
        models = {
            kind: scorer.score(ranker, k) | {"fit_seconds": fit_seconds[kind]} for kind, ranker in rankers.items()
        }
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
