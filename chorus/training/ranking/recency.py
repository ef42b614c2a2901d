"""Users who act while a version is served: which ranker answers them by default, and how much more their latest
actions count (the recency decay), both chosen on a time-ordered replay.

When a user acts (``POST /v1/events``), the served rankers weight each item of their history by
``decay ** age`` (``age`` 0 for the latest live row; the version's rows, which keep no order, one step older than
the oldest live row: :class:`chorus.services.rating.live.UserHistory`). What a user did last says most about
what they do next: on a time-ordered replay of MovieLens 100K, EASE's hit rate at 10 over the last 20% of the
events rises from 0.148 with every item counted alike to 0.204 at ``decay = 0.9``.

Both are chosen per version, on the rows it is trained on, by :func:`choose_live`:

* the rows sorted by timestamp (ties in file order); the first :data:`FIT_SHARE` fit the default ranker and the
  next best on validation (:data:`LIVE_KINDS` in all) with their chosen params, the rest are *streamed*;
* for at most :data:`EVENTS` streamed events whose item the fit rows know (evenly spaced over the stream, so the
  same rows give the same sample), the user's history just before the event is what the service would hold: their
  fit rows (age = their streamed rows before the event) and their earlier streamed rows (the latest age 0);
* each ranker with each decay of :data:`DECAYS` ranks every item for each such history
  (:meth:`Ranker.score_weighted`, the history's items and unreviewed items excluded, as served); the hit rate at
  ``k`` is the share of events whose item is in the top ``k``. The best (ranker, decay) wins, ties to the ranker
  served by default, then to the earlier decay (1, no recency, first).

The default ranker is chosen on a per-user hold-out (:func:`chorus.training.ranking.train.choose`), which
measures how well a ranker completes a history it mostly knows; a user acting now is most often one the version
never saw, with a short history whose order matters, which the replay measures.

Nothing depends on the clock or the number of workers. Rankers that do not sum over the history items (popular,
iALS) ignore the weights; a blend weights its EASE part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.rankers import Ranker
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import Ratings
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.workers import using_workers
from chorus.training.ranking.fit import FITTERS
from chorus.training.ranking.train import DEFAULT_K, Selection, top_lists

#: The decays tried, the first preferred on a tie (1: every history item counts alike).
DECAYS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.5)
#: Kinds the replay tries at most: the default and the next best on validation (a kind that validates far below
#: the best is not served to anyone; each kind tried costs a fit and its scoring).
LIVE_KINDS = 3
#: Share of the rows, oldest first, the replay's ranker is fitted on.
FIT_SHARE = 0.8
#: Streamed events scored at most (a count, so the same data gives the same choice on any machine).
EVENTS = 2_000
#: Histories scored per matrix product.
BATCH = 512
#: Steps :func:`choose_live` reports to a progress bar: the fit, then the scoring.
STEPS = 2


@dataclass
class Replay:
    """The streamed events of :func:`choose_decay`: one history row each (CSR, ``ages`` as its values' ages) and
    the item that came next."""

    history: sp.csr_array
    ages: np.ndarray
    target: np.ndarray

    @classmethod
    def build(cls, ratings: Ratings, fitted: sp.csr_array, stream: np.ndarray) -> Replay:
        """From ``fitted``, the user×item matrix of the oldest rows, and the time-ordered ``stream`` row indices;
        only events whose item ``fitted`` holds are scored, at most :data:`EVENTS` of them, evenly spaced."""
        user, item = np.asarray(ratings.user), np.asarray(ratings.item)
        known = np.bincount(fitted.indices, minlength=ratings.n_items) > 0
        hittable = np.flatnonzero(known[item[stream]])
        spaced = np.unique(np.linspace(0, max(0, hittable.shape[0] - 1), EVENTS).astype(np.int64))
        picked: set[int] = set(hittable[spaced].tolist()) if hittable.shape[0] else set()
        streamed: dict[int, list[int]] = {}
        indptr: list[int] = [0]
        indices: list[int] = []
        ages: list[int] = []
        target: list[int] = []
        for position, row in enumerate(stream):
            u, i = int(user[row]), int(item[row])
            if position in picked:
                later = streamed.get(u, [])
                age = {int(j): len(later) for j in fitted.indices[fitted.indptr[u] : fitted.indptr[u + 1]]}
                for n, j in enumerate(later):  # oldest first: the latest occurrence of an item sets its age
                    age[j] = len(later) - 1 - n
                items = sorted(age)
                indices.extend(items)
                ages.extend(age[j] for j in items)
                indptr.append(len(indices))
                target.append(i)
            streamed.setdefault(u, []).append(i)
        shape = (len(target), ratings.n_items)
        history = sp.csr_array(
            (np.ones(len(indices)), np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int64)),
            shape=shape,
        )
        return cls(history, np.asarray(ages, dtype=np.float64), np.asarray(target, dtype=np.int64))

    def hit_rates(self, ranker: Ranker, decays: Sequence[float], k: int) -> list[float]:
        """Per decay, the share of the events whose item is in the top ``k`` of ``ranker`` with the history
        weighted by ``decay ** age`` (:meth:`Ranker.weighted_scorer`: what no weight changes is scored once)."""
        hits = [0] * len(decays)
        banned_base = ranker.item_count == 0
        for lo in range(0, self.target.shape[0], BATCH):
            hi = min(self.target.shape[0], lo + BATCH)
            rows = sp.csr_array(self.history[lo:hi])
            ages = self.ages[self.history.indptr[lo] : self.history.indptr[hi]]
            banned = np.broadcast_to(banned_base, (hi - lo, ranker.n_items)).copy()
            banned[np.repeat(np.arange(hi - lo), np.diff(rows.indptr)), rows.indices] = True
            scorer = ranker.weighted_scorer(rows)
            for d, decay in enumerate(decays):
                scores = np.asarray(scorer(np.power(decay, ages)), dtype=np.float64)
                lists = top_lists(scores, banned, k)
                hits[d] += int((lists == self.target[lo:hi, None]).any(axis=1).sum())
        return [h / max(1, self.target.shape[0]) for h in hits]


def time_split(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """(fit, stream) row indices: the rows by timestamp, ties in file order, cut at :data:`FIT_SHARE`."""
    order = np.argsort(np.asarray(ratings.timestamp), kind="stable")
    cut = int(FIT_SHARE * order.shape[0])
    return order[:cut], order[cut:]


def choose_live(
    ratings: Ratings,
    selection: Selection,
    default: str,
    *,
    k: int = DEFAULT_K,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The ranker and the recency decay for users with live rows (module docstring): ``default`` and the next
    best kinds of ``selection`` by validation NDCG (:data:`LIVE_KINDS` in all), each fitted with its chosen params
    on the oldest rows and scored with every decay on the streamed events, one kind per task in up to
    ``workers`` forked processes (:func:`~chorus.training.ranking.train.run_tasks`). The best hit rate wins; ties
    go to ``default`` (the kind served to everyone else), then to the validation order, then to the earlier
    decay.

    Returns
    -------
    dict
        ``{"method", "decay", "hit_rate": {kind: {str(decay): HR@k}}, "events", "k", "seconds"}``; ``default``
        with decay 1 and no hit rates when no streamed event can be scored (too few rows, or no streamed item
        the oldest rows know). ``progress(done)`` after the fit and at the end (:data:`STEPS` steps).
    """
    from chorus.training.ranking.train import run_tasks

    t0 = time.perf_counter()
    fit, stream = time_split(ratings)
    history = user_item_matrix(
        ratings.user[fit], ratings.item[fit], ratings.n_users, ratings.n_items, values=ratings.rating[fit]
    )
    replay = Replay.build(ratings, history, stream)
    figures: dict[str, dict[str, float]] = {}
    best = (default, 1.0, -1.0)
    if replay.target.shape[0] and fit.shape[0]:

        def score(kind: str) -> list[float] | None:
            """The kind fitted on the oldest rows and scored with every decay (None: its fitter refused)."""
            with using_workers(1):
                try:
                    ranker = FITTERS[kind](history, dict(selection.kinds[kind].params))
                except InvalidInput:
                    return None
                return replay.hit_rates(ranker, DECAYS, k)

        # one task per kind, side by side in forked workers (each on one thread: the same figures anywhere): the
        # default, then the next best validated kinds, LIVE_KINDS in all
        kinds = [default, *[kind for kind in selection.ranked() if kind != default]][:LIVE_KINDS]
        results = run_tasks(score, kinds, workers)
        if progress:
            progress(1)
        for kind, rates in zip(kinds, results, strict=True):
            if rates is None:
                continue
            figures[kind] = {str(decay): rate for decay, rate in zip(DECAYS, rates, strict=True)}
            for decay, rate in zip(DECAYS, rates, strict=True):
                if rate > best[2]:  # strict: ties keep the earlier kind and decay
                    best = (kind, decay, rate)
    if progress:
        progress(STEPS)
    return {
        "method": best[0],
        "decay": best[1],
        "hit_rate": figures,
        "events": int(replay.target.shape[0]),
        "k": k,
        "seconds": round(time.perf_counter() - t0, 3),
    }
