"""Ranking benchmark: top-N accuracy of the peer rankers on the per-user 80/20 protocol, side by side.

For each dataset (MovieLens 100K ``u.data`` and the Amazon Musical Instruments 5-core file), on one split
(``chorus.shared.data.splits.user_holdout_split``, seed ``--seed``; protocol and metric formulas in
``docs/models.md``, "Ranking evaluation"):

* ``popular``: training counts, ties by item index;
* ``implicit-als``, ``implicit-bpr``, ``implicit-cosine``, ``implicit-itemitem``: implicit's
  ``AlternatingLeastSquares``, ``BayesianPersonalizedRanking``, ``CosineRecommender`` (item-item cosine) and
  ``ItemItemRecommender`` (item-item co-occurrence counts) on the user x item matrix, its entries 1 (``binary``)
  or the star rating (``rating``, a grid choice), recommending through the batch call
  ``recommend(userids, user_items, N, filter_already_liked_items=True)`` with the items that have no training
  rating in ``filter_items``;
* ``ease``: EASE^R (Steck, WWW 2019) in plain numpy, ``P = (XᵀX + λI)⁻¹``, ``B = I − P·diagMat(1/diag(P))``,
  scores ``x_u B``: the reference the Chorus rankers have to beat;
* ``chorus-popular``, ``chorus-item_knn``, ``chorus-rp3beta``, ``chorus-ease``, ``chorus-ials``: the Chorus rankers
  (``chorus.services.rating.rankers``), fitted by ``chorus.training.ranking.fit.FITTERS`` on the star
  ratings with the grids ``ranking_fit.GRIDS``, listing through ``Ranker.recommend_batch``. ``chorus default``
  is the Chorus ranker of best validation NDCG here;
* ``chorus-ease_ials``: the EASE + iALS blend over its weight grid with its parts at their first grid points
  (``blend_defaults``). ``chorus evaluate --task ranking`` instead blends the parts' chosen points, so what
  ``chorus train`` serves, and its test figure, come from ``chorus evaluate`` on the same split and seed.

``--latency`` also times ``Ranker.recommend(history, k)`` (with ``because``) one test user at a time for each
Chorus ranker, refitted with its chosen parameters on the training rows: p50, p99 and max milliseconds per
call, and the p99 over users of each user's median of 5 calls (see ``latency``). ``--models`` runs a subset
(e.g. only the ``chorus-*`` ones, for other seeds).

Candidates: the items with a training rating, minus the user's training items. Relevant: every held-out item.
Hyperparameters are chosen by NDCG@k on a validation carve-out of the training rows (the same protocol applied
to the training rows, ``user_validation_split``); the chosen configuration is refitted on all training rows and
the test rows are scored once. The grids are ``GRIDS`` below. Each grid runs until its share of ``--budget``
seconds is spent (the first configuration always runs; a truncated grid is reported), so the whole script stays
within about the budget; a hard stop at twice the budget (plus 5 s) ends it.

implicit's BPR (multithreaded SGD) is not bit-reproducible from its seed: its figures move in the third decimal
between runs. Everything else is.

Threads: every model gets ``--threads`` (default: all cores). implicit runs its own ``--threads`` OpenMP
threads with BLAS limited to one (what implicit asks for: ``OPENBLAS_NUM_THREADS=1``), numpy (EASE, popular)
runs BLAS with ``--threads``; both are printed.

Figures the issue quotes for peers on this protocol (NDCG@10): MovieLens 100K most popular 0.220, implicit ALS
0.365, implicit item-item cosine 0.374; Amazon 5-core most popular 0.056, implicit ALS 0.067, implicit ItemItem
(binary) 0.084; a plain EASE with λ picked in hindsight on the test split 0.454 and 0.0877. Measured here, the
two item-item figures are implicit's defaults (K=20): ``CosineRecommender`` on star ratings on MovieLens
(0.3736), ``ItemItemRecommender`` on the binary matrix on Amazon (0.0839); implicit's ALS defaults (100 factors,
λ=0.01, α=1, binary) give 0.304 and 0.046, below the quoted ALS figures, whose settings are not known.

    .venv/bin/python bench/ranking.py [--data-dir DIR] [--seed 0] [--k 10] [--threads N] [--budget 300]
                                      [--models NAME ...] [--latency] [--json out.json]

The data directory defaults to ``$CHORUS_DATA_DIR``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import implicit
import numpy as np
import scipy.sparse as sp
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_info, threadpool_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import machine, write_json  # noqa: E402
from chorus.services.rating.rankers import Ranker  # noqa: E402
from chorus.services.rating.rankers.base import history_row  # noqa: E402
from chorus.shared.contract.kinds import RANKERS, find  # noqa: E402
from chorus.shared.data import Ratings, load_ratings  # noqa: E402
from chorus.shared.data.matrix import user_item_matrix  # noqa: E402
from chorus.shared.data.splits import user_holdout_split, user_validation_split  # noqa: E402
from chorus.training.ranking.fit import GRIDS as CHORUS_GRIDS  # noqa: E402
from chorus.training.ranking.fit import fitter_of  # noqa: E402
from chorus.training.ranking.metrics import evaluate_rankings, top_k  # noqa: E402

DATASETS = {
    "movielens-100k": {
        "path": ("movielens-100k", "u.data"),
        "peers": {"popular": 0.220, "implicit-als": 0.365, "implicit-cosine": 0.374, "ease": 0.454},
        "target": 0.440,
    },
    "amazon-musical-instruments-5core": {
        "path": ("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz"),
        "peers": {"popular": 0.056, "implicit-als": 0.067, "implicit-itemitem": 0.084, "ease": 0.0877},
        "target": 0.088,
    },
}

CHORUS = "chorus-"

# The selection grids, smallest to largest model where that matters (a budget-truncated grid keeps its head).
# ``values``: the matrix entries implicit's models see, 1 per rating (``binary``) or the star rating (``rating``).
# implicit's ALS takes α times the entry as the confidence c_ui of an observed pair (unobserved pairs: confidence
# 1, preference 0), so binary with α=1 weighs both alike.
GRIDS: dict[str, list[dict]] = {
    "popular": [{}],
    "implicit-als": [
        {"values": v, "factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f in (32, 64, 128)
        for v in ("binary", "rating")
        for a in (1.0, 10.0)
        for r in (0.01, 0.1)
    ],
    "implicit-bpr": [
        {"values": "binary", "factors": f, "learning_rate": lr, "regularization": 0.01, "iterations": 100}
        for f in (32, 64, 128)
        for lr in (0.01, 0.05)
    ],
    "implicit-cosine": [{"values": v, "K": k} for k in (20, 50, 200, 500) for v in ("binary", "rating")],
    "implicit-itemitem": [{"values": v, "K": k} for k in (20, 50, 200, 500) for v in ("binary", "rating")],
    "ease": [{"lam": lam} for lam in (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)],
    # the Chorus rankers, served or not, with the grids of their specs (those the selection uses)
    **{f"{CHORUS}{spec.name}": [dict(p) for p in spec.grid] for spec in RANKERS},
}


@dataclass
class Fold:
    """One training part and the held-out part scored against it."""

    x: sp.csr_matrix  # binary user x item training matrix, float32
    x_rating: sp.csr_matrix  # the same with the star ratings as entries, float32
    users: np.ndarray  # int64: users with at least one relevant held-out item (the rows scored)
    relevant: sp.csr_array  # those users' held-out items, (len(users), n_items)
    candidates: np.ndarray  # bool (len(users), n_items): items with a training rating, minus the user's own
    item_counts: np.ndarray  # int64 (n_items,): training ratings per item
    n_train_users: int
    n_catalogue: int  # items with a training rating

    @classmethod
    def of(cls, data: Ratings, train: np.ndarray, held: np.ndarray) -> Fold:
        user, item, n_users, n_items = (
            data.user.astype(np.int64),
            data.item.astype(np.int64),
            data.n_users,
            data.n_items,
        )
        # the loader keeps one row per (user, item) pair, so these matrices have no duplicate entries to sum
        x = sp.csr_matrix((np.ones(train.size, dtype=np.float32), (user[train], item[train])), shape=(n_users, n_items))
        x_rating = sp.csr_matrix(
            (data.rating[train].astype(np.float32), (user[train], item[train])), shape=(n_users, n_items)
        )
        rel_all = user_item_matrix(user[held], item[held], n_users, n_items)
        users = np.flatnonzero(np.diff(rel_all.indptr) > 0).astype(np.int64)
        counts = np.bincount(item[train], minlength=n_items).astype(np.int64)
        known = counts > 0
        candidates = known[None, :] & (x[users].toarray() == 0)
        return cls(
            x=x,
            x_rating=x_rating,
            users=users,
            relevant=sp.csr_array(rel_all[users]),
            candidates=candidates,
            item_counts=counts,
            n_train_users=int(np.count_nonzero(np.diff(x.indptr))),
            n_catalogue=int(known.sum()),
        )

    def matrix(self, values: str) -> sp.csr_matrix:
        return {"binary": self.x, "rating": self.x_rating}[values]

    def evaluate(self, recommended: np.ndarray) -> dict[str, float]:
        return evaluate_rankings(recommended, self.relevant, self.item_counts, self.n_train_users, self.n_catalogue)


def clean(fold: Fold, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """implicit's lists as the metrics take them: keep only candidates, in implicit's order, -1 padded.

    implicit pads a short list with filtered items (score -FLT_MAX) or, for item-kNN, with arbitrary zero-score
    items that can include the user's own; both are dropped here."""
    ids = ids.astype(np.int64)
    ok = (ids >= 0) & (scores > -np.finfo(np.float32).max)
    rows = np.arange(ids.shape[0])[:, None]
    ok &= fold.candidates[rows, np.where(ok, ids, 0)]
    order = np.argsort(~ok, axis=1, kind="stable")
    return np.where(np.take_along_axis(ok, order, axis=1), np.take_along_axis(ids, order, axis=1), -1)


class Popular:
    def __init__(self, threads: int) -> None:
        self.threads = threads

    def fit(self, fold: Fold) -> None:
        self.counts = fold.item_counts.astype(np.float64)

    def recommend(self, fold: Fold, k: int) -> np.ndarray:
        scores = np.broadcast_to(self.counts, fold.candidates.shape)
        return top_k(scores, k, fold.candidates)


class Ease:
    def __init__(self, threads: int, lam: float) -> None:
        self.threads, self.lam = threads, lam

    def fit(self, fold: Fold) -> None:
        with threadpool_limits(self.threads, "blas"):
            x = fold.x.toarray().astype(np.float64)
            gram = x.T @ x
            gram[np.diag_indices_from(gram)] += self.lam
            p = np.linalg.inv(gram)
            self.b = -p / np.diag(p)[None, :]
            self.b[np.diag_indices_from(self.b)] = 0.0

    def recommend(self, fold: Fold, k: int) -> np.ndarray:
        with threadpool_limits(self.threads, "blas"):
            scores = fold.x[fold.users].toarray().astype(np.float64) @ self.b
        return top_k(scores, k, fold.candidates)


class Implicit:
    """One of implicit's models behind the same two calls; BLAS held to one thread, as implicit asks."""

    def __init__(self, make: Callable, dtype: type, threads: int, seed: int, values: str, **params: float) -> None:
        self.make, self.dtype, self.threads, self.seed = make, dtype, threads, seed
        self.values, self.params = values, params

    def fit(self, fold: Fold) -> None:
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit warns about BLAS threads (held to one here) and converts the cosine's COO input itself
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", ParameterWarning)
            self.model = self.make(num_threads=self.threads, seed=self.seed, **self.params)
            self.model.fit(self.user_items(fold), show_progress=False)

    def user_items(self, fold: Fold) -> sp.csr_matrix:
        # implicit's item-item models take float64, its factor models float32
        return fold.matrix(self.values).astype(self.dtype)

    def recommend(self, fold: Fold, k: int) -> np.ndarray:
        unknown = np.flatnonzero(fold.item_counts == 0).astype(np.int32)
        with threadpool_limits(1, "blas"):
            # 2k, so that dropping a padded or non-candidate entry (see ``clean``) cannot shorten a list
            ids, scores = self.model.recommend(
                fold.users.astype(np.int32),
                self.user_items(fold)[fold.users],
                N=2 * k,
                filter_already_liked_items=True,
                filter_items=unknown if unknown.size else None,
            )
        return clean(fold, np.asarray(ids), np.asarray(scores))[:, :k]


class Chorus:
    """A Chorus ranker: the trainer of its spec on the star ratings, lists from ``Ranker.recommend_batch`` (which
    leaves out the history and the items without training ratings: exactly the non-candidates)."""

    def __init__(self, kind: str, threads: int, seed: int, **params: float | str) -> None:
        self.kind, self.threads = kind, threads
        uses_implicit = kind in ("ials", "ease_ials")
        self.params = {**params, "seed": seed, "num_threads": threads} if uses_implicit else dict(params)

    def fit(self, fold: Fold) -> None:
        with threadpool_limits(self.threads, "blas"):
            fit = fitter_of(find(RANKERS, self.kind))
            self.ranker: Ranker = fit(sp.csr_array(fold.x_rating), self.params)

    def recommend(self, fold: Fold, k: int) -> np.ndarray:
        with threadpool_limits(self.threads, "blas"):
            return self.ranker.recommend_batch(sp.csr_array(fold.x_rating[fold.users]), k)


def make_als(num_threads: int, seed: int, **p: float):
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(**p, num_threads=num_threads, random_state=seed)


def make_bpr(num_threads: int, seed: int, **p: float):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking(**p, num_threads=num_threads, random_state=seed)


def make_cosine(num_threads: int, seed: int, **p: float):
    from implicit.nearest_neighbours import CosineRecommender

    return CosineRecommender(**p, num_threads=num_threads)


def make_itemitem(num_threads: int, seed: int, **p: float):
    from implicit.nearest_neighbours import ItemItemRecommender

    return ItemItemRecommender(**p, num_threads=num_threads)


def build(name: str, params: dict, threads: int, seed: int):
    if name == "popular":
        return Popular(threads)
    if name == "ease":
        return Ease(threads, **params)
    if name.startswith(CHORUS):
        return Chorus(name.removeprefix(CHORUS), threads, seed, **params)
    makers = {
        "implicit-als": (make_als, np.float32),
        "implicit-bpr": (make_bpr, np.float32),
        "implicit-cosine": (make_cosine, np.float64),
        "implicit-itemitem": (make_itemitem, np.float64),
    }
    make, dtype = makers[name]
    return Implicit(make, dtype, threads, seed, **params)


# Rough seconds per grid point relative to each other (measured on MovieLens 100K); with the grid's size and the
# dataset's ratings they set a (dataset, model) slot's share of the budget.
COST = {
    "popular": 0.1,
    "implicit-als": 1.0,
    "implicit-bpr": 3.0,
    "implicit-cosine": 0.4,
    "implicit-itemitem": 0.4,
    "chorus-popular": 0.1,
    "chorus-item_knn": 0.2,
    "chorus-ials": 1.0,
    "chorus-ease_ials": 1.5,
}


class Budget:
    """Shares of the remaining seconds for the (dataset, model) slots still to run, by their expected cost."""

    def __init__(self, seconds: float, weights: list[float]) -> None:
        self.end = time.perf_counter() + seconds
        self.weights = weights

    def next_slot(self) -> float:
        """The deadline of the next slot: its weight's share of what is left."""
        now = time.perf_counter()
        weight = self.weights.pop(0)
        share = max(0.0, self.end - now) * weight / (weight + sum(self.weights))
        return now + share


def weight(name: str, ratings: int) -> float:
    return len(GRIDS[name]) * COST.get(name, 1.0) * max(0.1, ratings / 100_000)


def grid_summary(name: str) -> str:
    """``param {values}`` for every parameter of a grid."""
    keys: dict[str, list] = {}
    for point in GRIDS[name]:
        for p, v in point.items():
            if v not in keys.setdefault(p, []):
                keys[p].append(v)
    inner = ", ".join(f"{p} {{{', '.join(str(v) for v in vs)}}}" for p, vs in keys.items())
    return f"{name}: {inner or '-'} ({len(GRIDS[name])} points)"


def select_and_test(
    name: str, val: Fold, test: Fold, k: int, threads: int, seed: int, slot_end: float
) -> tuple[dict, list[dict]]:
    """Grid search on ``val`` by NDCG@k, then refit the best on the training rows and score ``test`` once."""
    start = time.perf_counter()
    tried: list[dict] = []
    best: tuple[float, dict] | None = None
    grid = GRIDS[name]
    for params in grid:
        t0 = time.perf_counter()
        model = build(name, params, threads, seed)
        model.fit(val)
        ndcg = val.evaluate(model.recommend(val, k))["ndcg"]
        seconds = time.perf_counter() - t0
        tried.append({"params": params, "validation_ndcg": ndcg, "seconds": seconds})
        if best is None or ndcg > best[0]:
            best = (ndcg, params)
        # the refit of the winner on the (larger) training rows still has to fit into the slot
        if time.perf_counter() + 2 * seconds > slot_end:
            break
    assert best is not None
    select_seconds = time.perf_counter() - start
    model = build(name, best[1], threads, seed)
    t0 = time.perf_counter()
    model.fit(test)
    fit_seconds = time.perf_counter() - t0
    recommended = model.recommend(test, k)
    result = {
        **test.evaluate(recommended),
        "fit_seconds": fit_seconds,
        "select_seconds": select_seconds,
        "params": best[1],
        "validation_ndcg": best[0],
        "grid_tried": len(tried),
        "grid_size": len(grid),
    }
    return result, tried


def latency(name: str, params: dict, fold: Fold, k: int, threads: int, seed: int, repeats: int = 5) -> dict:
    """Milliseconds of ``Ranker.recommend(history, k)`` per evaluated user (history built beforehand), the
    ranker refitted with ``params`` on ``fold``'s training rows. Every user is timed ``repeats`` times in
    ``repeats`` passes over all users: ``p50_ms``/``p99_ms``/``max_ms`` are over every single call, and
    ``p99_median_ms`` is the 99th percentile over users of each user's median call, which a busy machine's
    scheduling hiccups move much less."""
    model = build(name, params, threads, seed)
    model.fit(fold)
    ranker = model.ranker
    x = sp.csr_array(fold.x_rating)
    histories = [history_row(x[[u]].indices, x[[u]].data, x.shape[1]) for u in fold.users]
    times = np.empty((repeats, len(histories)))
    with threadpool_limits(1, "blas"):
        for h in histories[:50]:
            ranker.recommend(h, k)
        for r in range(repeats):
            for j, h in enumerate(histories):
                t0 = time.perf_counter()
                ranker.recommend(h, k)
                times[r, j] = time.perf_counter() - t0
    ms = times * 1e3
    return {
        "users": len(histories),
        "calls": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "p99_median_ms": float(np.percentile(np.median(ms, axis=0), 99)),
    }


def run_dataset(name: str, data: Ratings, load_seconds: float, args: argparse.Namespace, budget: Budget) -> dict:
    t0 = time.perf_counter() - load_seconds
    train, test_rows = user_holdout_split(data.user, data.n_users, seed=args.seed)
    fit_rows, val_rows = user_validation_split(data.user, train, data.n_users, seed=args.seed)
    val = Fold.of(data, fit_rows, val_rows)
    test = Fold.of(data, train, test_rows)
    prep_seconds = time.perf_counter() - t0
    print(
        f"\n== {name}: {data.n:,} ratings, {data.n_users:,} users, {data.n_items:,} items "
        f"(loaded and split in {prep_seconds:.2f} s)\n"
        f"split seed {args.seed}: train {train.size:,} rows (validation carve-out: fit {fit_rows.size:,}, "
        f"validation {val_rows.size:,}), test {test_rows.size:,} rows; {test.users.size:,} users evaluated, "
        f"{test.n_catalogue:,} candidate items"
    )
    models, grids = {}, {}
    for model_name in args.models:
        models[model_name], grids[model_name] = select_and_test(
            model_name, val, test, args.k, args.threads, args.seed, budget.next_slot()
        )
    k = args.k
    header = (
        f"{'model':<17}{f'NDCG@{k}':>9}{f'recall@{k}':>11}{f'prec@{k}':>9}{f'MAP@{k}':>8}{'cover':>7}{'novelty':>9}"
        f"{'fit s':>7}{'select s':>9}  chosen on validation (val NDCG, grid tried/size)"
    )
    print(header)
    for model_name, m in models.items():
        chosen = " ".join(f"{p}={v:g}" if not isinstance(v, str) else f"{p}={v}" for p, v in m["params"].items()) or "-"
        print(
            f"{model_name:<17}{m['ndcg']:>9.4f}{m['recall']:>11.4f}{m['precision']:>9.4f}{m['map']:>8.4f}"
            f"{m['coverage']:>7.3f}{m['novelty']:>9.2f}{m['fit_seconds']:>7.2f}{m['select_seconds']:>9.2f}  "
            f"{chosen} ({m['validation_ndcg']:.4f}, {m['grid_tried']}/{m['grid_size']})"
        )
    selected = max(models, key=lambda n: models[n]["validation_ndcg"])
    peers = DATASETS[name]["peers"]
    quoted = [f"{p} {v:g} (here {models[p]['ndcg']:.4f})" for p, v in peers.items() if p in models]
    if quoted:
        print(f"issue's figures, NDCG@{k} (EASE's with λ picked on the test split): " + "; ".join(quoted))
    print(f"best on validation: {selected}")
    ours = [n for n in models if n.startswith(CHORUS)]
    served = [n for n in ours if n.removeprefix(CHORUS) in CHORUS_GRIDS]
    chorus_default = max(served, key=lambda n: models[n]["validation_ndcg"]) if served else None
    if chorus_default is not None:
        target = DATASETS[name]["target"]
        got = models[chorus_default]["ndcg"]
        print(
            f"chorus default (best Chorus ranker on validation): {chorus_default}, test NDCG@{k} {got:.4f}; "
            f"target {target:g}: {'met' if got >= target else 'NOT met'}"
        )
    timings = {}
    if args.latency:
        for n in ours:
            timings[n] = latency(n, models[n]["params"], test, k, args.threads, args.seed)
            t = timings[n]
            print(
                f"latency {n:<17} recommend(history, k={k}), {t['calls']} calls over {t['users']} users: p50 "
                f"{t['p50_ms']:.3f} ms, p99 {t['p99_ms']:.3f} ms, max {t['max_ms']:.3f} ms; p99 over users of "
                f"their median {t['p99_median_ms']:.3f} ms"
            )
    return {
        "dataset": name,
        "ratings": data.n,
        "users": data.n_users,
        "items": data.n_items,
        "train_rows": int(train.size),
        "test_rows": int(test_rows.size),
        "users_evaluated": int(test.users.size),
        "candidate_items": test.n_catalogue,
        "task": "ranking",
        "k": k,
        "seed": args.seed,
        "models": models,
        "selected": selected,
        "chorus_default": chorus_default,
        "latency": timings,
        "grids": grids,
        "peers_quoted": peers,
        "seconds": time.perf_counter() - t0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = os.environ.get("CHORUS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=default_dir, help=f"folder of the datasets (default {default_dir})")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--seed", type=int, default=0, help="split seed (also the models' seed)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads every model gets")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds the grids share (hard stop at twice it)")
    ap.add_argument("--models", nargs="+", choices=list(GRIDS), default=list(GRIDS), help="models to run")
    ap.add_argument("--latency", action="store_true", help="time per-user recommend of the Chorus rankers")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    # The hard stop: from a C thread, so it fires inside a long native call too (prints the stack, exits 1).
    faulthandler.dump_traceback_later(2 * args.budget + 5, exit=True)
    start = time.perf_counter()
    blas = ", ".join(sorted({f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()}))
    print(f"machine: {machine()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"numpy {np.__version__}, implicit {implicit.__version__}; threads per model {args.threads} "
        f"(implicit: num_threads={args.threads}, BLAS 1; numpy: BLAS {args.threads}); thread pools at start: {blas}"
    )
    print(f"k={args.k}, seed={args.seed}, budget {args.budget:g} s; grids (chosen by validation NDCG@{args.k}):")
    for name in args.models:
        print(f"  {grid_summary(name)}")
    paths = {n: Path(args.data_dir).joinpath(*DATASETS[n]["path"]) for n in args.datasets}
    present = [n for n in args.datasets if paths[n].exists()]
    for n in args.datasets:
        if n not in present:
            print(f"\n== {n}: skipped, {paths[n]} not found (set --data-dir or CHORUS_DATA_DIR)")
    loaded = {}
    for n in present:
        t0 = time.perf_counter()
        loaded[n] = (load_ratings(paths[n]), time.perf_counter() - t0)
    budget = Budget(args.budget, [weight(m, loaded[n][0].n) for n in present for m in args.models])
    results = [run_dataset(n, *loaded[n], args, budget) for n in present]
    seconds = time.perf_counter() - start
    print(f"\nwhole run {seconds:.1f} s")
    write_json(args.json, {"machine": machine(), "threads": args.threads, "seconds": seconds, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
