"""Offline work of the rating component: hyperparameter selection on validation data, refit, evaluation, and
the ``chorus train`` entry point that writes the selected model (never imported by the service).

Honesty rules, enforced here:

* K and λ are chosen on a validation split only; the test ratings are touched once, by the final model.
* The latent model is selected only if it beats the bias-only model on validation; otherwise the "latent"
  model *is* the bias-only model, so it is never worse than bias-only on validation by construction.
* In k-fold evaluation the selection runs inside each training fold (split again into train/validation).

Selection (:func:`select`): first λ_b of the bias-only model over ``SelectionConfig.reg_bias``; then, with
that λ_b, every (K, λ_f) of the grid is fitted by ALS with early stopping on validation RMSE; the best
(K, λ_f, number of sweeps) wins. The refit on train + validation runs that many sweeps from the same seeded
initialisation.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from chorus.services.rating.models import RatingModel
from chorus.services.rating.persistence import write_component
from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import TEXT_FORMATS, Ratings, holdout_split, kfold_split
from chorus.shared.workers import map_processes, resolve_workers
from chorus.training.rating.accuracy import metrics, rmse
from chorus.training.rating.als import Sweeper, fit_als, fit_als_params
from chorus.training.rating.baseline import fit_bias, fit_mean
from chorus.training.rating.config import TEXT_AWARE_MAX_ROWS, LatentConfig
from chorus.training.rating.fitting import Trainset

#: ``similarity_predict`` plug-in: ``fit(user, item, rating, n_users, n_items, low, high)`` on training arrays
#: returns ``predict(users, items) -> float ratings (n,)``.
SimilarityFit = Callable[..., Callable[[np.ndarray, np.ndarray], np.ndarray]]


class TextAwareFitter(Protocol):
    """The ``text_aware`` plug-in (:class:`chorus.training.text.aware.TextAwareFit`)."""

    def __call__(
        self,
        data: Trainset,
        rows: np.ndarray,
        val: np.ndarray,
        reg_bias: float,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[RatingModel, dict[str, Any]]:
        """Select on (rows, val) reading only those reviews' text, refit on both; return ``(model, {"chosen",
        "validation_rmse", "seconds"})``, calling ``progress(done)`` as each of its :meth:`steps` ends."""
        ...

    def steps(self) -> int:
        """How many steps a call counts."""
        ...


@dataclass(frozen=True)
class SelectionConfig:
    """The selection grid and the split used for it (defaults in one place).

    Attributes
    ----------
    base : every other hyperparameter (:class:`~chorus.training.rating.config.LatentConfig`); its ``n_factors``,
        ``reg_factors`` and ``reg_bias`` are replaced by the grid values.
    factors : K values tried.
    reg_factors : λ_f values tried (for each K).
    reg_bias : λ_b values tried for the bias-only model; the winner is used by the latent model too.
    inner_validation : fraction of a training fold held out for validation in k-fold evaluation.
    """

    base: LatentConfig = LatentConfig()
    factors: tuple[int, ...] = (50,)
    reg_factors: tuple[float, ...] = (0.04, 0.045, 0.05)
    reg_bias: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    inner_validation: float = 0.1

    def __post_init__(self) -> None:
        if not self.factors or not self.reg_factors or not self.reg_bias:
            raise InvalidInput("the selection grid needs at least one K, one λ_f and one λ_b")
        if any(k < 1 for k in self.factors):
            raise InvalidInput("grid values of K must be >= 1 (K = 0 is the bias-only model, always tried)")
        if not 0 < self.inner_validation < 1:
            raise InvalidInput(f"inner_validation must be in (0, 1), got {self.inner_validation}")


@dataclass
class Selection:
    """Outcome of :func:`select`: the bias-only and the selected latent configuration, the sweeps to refit
    with (0 when the bias-only model was selected), and every grid point's validation RMSE."""

    bias: LatentConfig
    latent: LatentConfig
    sweeps: int
    selected: str  # "latent" or "bias"
    validation_rmse: dict[str, float]
    grid: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    text_aware: dict[str, Any] | None = None  # the text-aware model's chosen grid point, when one was fitted

    def hyperparameters(self) -> dict[str, Any]:
        if self.selected == "text_aware" and self.text_aware is not None:
            # its point twice: spread, as the served model's, and under "text_aware", as when it is not served
            return {
                "selected": "text_aware",
                "trainer": "text_aware",
                **self.text_aware,
                "seed": self.bias.seed,
                "text_aware": self.text_aware,
            }
        chosen = self.latent if self.selected == "latent" else self.bias
        return {
            "selected": self.selected,
            "trainer": "als",
            "n_factors": chosen.n_factors,
            "reg_bias": chosen.reg_bias,
            "reg_factors": chosen.reg_factors if self.selected == "latent" else None,
            "weighting": chosen.weighting,
            "smoothing_bias": chosen.smoothing_bias,
            "smoothing_factors": chosen.smoothing_factors,
            "init_scale": chosen.init_scale,
            "sweeps": self.sweeps,
            "seed": chosen.seed,
        } | ({} if self.text_aware is None else {"text_aware": self.text_aware})


def select(
    data: Trainset,
    train: np.ndarray,
    val: np.ndarray,
    config: SelectionConfig = SelectionConfig(),
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> Selection:
    """Choose λ_b, then (K, λ_f, sweeps) on validation rows only.

    ``train``, ``val``: int row indices into ``data`` (disjoint); test rows must not be among them.
    ``progress(done)`` is called after each grid point. ``workers``: processes for the bias-only grid (one
    λ_b each) and for each ALS half-sweep (:class:`~chorus.training.rating.als.Sweeper`); the selection is the
    same for any number.
    """
    t0 = time.perf_counter()
    fit_on = data.subset(train)
    vu, vi, vr = validation = (data.user[val], data.item[val], data.rating[val])
    grid: list[dict[str, Any]] = []

    def bias_error(lb: float) -> float:
        cfg = replace(config.base, n_factors=0, reg_bias=lb)
        return rmse(fit_bias(fit_on, cfg).predict(vu, vi).rating, vr)

    best_bias: tuple[float, LatentConfig] | None = None
    # each λ_b is an independent exact fit: one forked process each
    for lb, error in zip(config.reg_bias, map_processes(bias_error, config.reg_bias, workers), strict=True):
        cfg = replace(config.base, n_factors=0, reg_bias=lb)
        grid.append({"model": "bias", "reg_bias": lb, "validation_rmse": error})
        if progress:
            progress(len(grid))
        if best_bias is None or error < best_bias[0]:
            best_bias = (error, cfg)
    assert best_bias is not None  # the grid is not empty (SelectionConfig)
    bias_rmse, bias_cfg = best_bias
    t_bias = time.perf_counter() - t0
    best_latent: tuple[float, LatentConfig, int] | None = None
    for k in config.factors:
        # one sweeper per K: the batches are grouped and the workers forked once for all the λ_f
        # only each point's validation score and best sweep are needed: no model is built, and no parameters are
        # kept or copied (the sweeper holds no early-stopping copy: two factor-sized float64 arrays fewer)
        with Sweeper(fit_on, k, config.base.dtype, workers, validation, keep_best=False) as sweeper:
            for lf in config.reg_factors:
                cfg = replace(config.base, n_factors=k, reg_factors=lf, reg_bias=bias_cfg.reg_bias)
                info = fit_als_params(fit_on, cfg, validation=validation, sweeper=sweeper, keep=False)[1]
                latent_error = info.best_validation_rmse
                assert latent_error is not None  # fitted with a validation set
                grid.append(
                    {
                        "model": "latent",
                        "n_factors": k,
                        "reg_factors": lf,
                        "reg_bias": cfg.reg_bias,
                        "validation_rmse": latent_error,
                        "best_sweep": info.best_sweep,
                        "sweeps_run": info.sweeps,
                        "seconds": round(info.seconds, 3),
                    }
                )
                if progress:
                    progress(len(grid))
                if best_latent is None or latent_error < best_latent[0]:
                    best_latent = (latent_error, cfg, info.best_sweep)
    assert best_latent is not None
    latent_rmse, latent_cfg, sweeps = best_latent
    # Factors must earn their place on validation; a latent fit stopped at sweep 0 is just the init.
    selected = "latent" if latent_rmse < bias_rmse and sweeps > 0 else "bias"
    return Selection(
        bias=bias_cfg,
        latent=latent_cfg if selected == "latent" else bias_cfg,
        sweeps=sweeps if selected == "latent" else 0,
        selected=selected,
        validation_rmse={"bias": bias_rmse, "latent": min(latent_rmse, bias_rmse)},
        grid=grid,
        seconds={"bias": t_bias, "latent": time.perf_counter() - t0 - t_bias},
    )


def refit(data: Trainset, selection: Selection, workers: int = 1) -> tuple[dict[str, RatingModel], dict[str, float]]:
    """Fit the mean, bias and selected latent models on ``data`` (train + validation) with the selected
    hyperparameters; also the seconds each took. ``models["latent"]`` is the bias model itself when
    bias-only was selected. ``workers``: processes per ALS half-sweep."""
    seconds: dict[str, float] = {}

    def timed(name: str, fit: Callable[[], RatingModel]) -> RatingModel:
        t = time.perf_counter()
        model = fit()
        seconds[name] = time.perf_counter() - t
        return model

    latent = selection.latent
    # one BLAS thread, as in the selection's processes: with N threads OpenBLAS splits the bias solve's sums by
    # thread count (the result then follows N), and on 1M reviews 2 threads spent 0.8-0.9 CPU-s against 0.3-0.4
    with threadpool_limits(1, "blas"), contextlib.ExitStack() as stack:
        sweeper = None
        if selection.selected == "latent":  # its workers are forked first, while this process has one thread
            sweeper = stack.enter_context(Sweeper(data, latent.n_factors, latent.dtype, workers))
        # the mean and bias models on a thread beside the latent refit, whose workers take up the slack
        beside = stack.enter_context(ThreadPoolExecutor(1))
        mean = beside.submit(timed, "mean", lambda: fit_mean(data))
        bias = beside.submit(timed, "bias", lambda: fit_bias(data, selection.bias))
        if sweeper is not None:
            models_latent = timed(
                "latent", lambda: fit_als(data, latent, n_sweeps=selection.sweeps, sweeper=sweeper)[0]
            )
        models: dict[str, RatingModel] = {"mean": mean.result(), "bias": bias.result()}
    if sweeper is not None:
        models["latent"] = models_latent
    else:
        models["latent"], seconds["latent"] = models["bias"], 0.0
    return models, seconds


@dataclass
class TrainResult:
    """What :func:`train` produces: the models refitted on train + validation, the selection, and the
    component metadata (hyperparameters; validation and test metrics)."""

    models: dict[str, RatingModel]
    selection: Selection
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    seconds: float
    served: str = "latent"  # "text_aware" when the text-aware model won on validation

    @property
    def model(self) -> RatingModel:
        """The model to serve: the selected latent model (or bias-only, when it won on validation), or the
        text-aware model when it beat that one on validation."""
        return self.models[self.served]


def train(
    data: Trainset,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    config: SelectionConfig = SelectionConfig(),
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    text_aware: TextAwareFitter | None = None,
) -> TrainResult:
    """What ``chorus train --components rating`` runs: a seeded holdout split (``chorus.shared.data.holdout_split``),
    selection on validation, refit on train + validation, metrics on test.

    ``progress(done)`` is called as each of the ``fold_steps(config, False, text_aware)`` steps ends (the grid
    points, the refit, the text-aware fit's steps). With ``text_aware``, the
    text-aware model is selected on the same validation rows, reported as ``models["text_aware"]``, and served
    (``served = "text_aware"``) when its validation RMSE beats the selected model's. ``workers``: worker processes
    of the selection and the refit (the result is the same for any number).
    """
    t0 = time.perf_counter()
    tr, va, te = holdout_split(data.n, seed, fractions)
    if tr.size == 0 or va.size == 0:
        raise InvalidInput(f"{data.n} ratings are too few to split into train and validation")
    config = replace(config, base=replace(config.base, seed=seed))
    sel = select(data, tr, va, config, progress, workers)
    models, _ = refit(data.subset(np.concatenate([tr, va])), sel, workers)
    if progress:
        progress(grid_size(config) + 1)
    served = "latent"
    if text_aware is not None:
        models["text_aware"], info = text_aware(
            data, tr, va, sel.bias.reg_bias, _after(progress, grid_size(config) + 1)
        )
        sel.text_aware = info["chosen"]
        sel.grid.append({"model": "text_aware", **info["chosen"], "validation_rmse": info["validation_rmse"]})
        sel.validation_rmse["text_aware"] = info["validation_rmse"]
        if info["validation_rmse"] < sel.validation_rmse[sel.selected]:
            sel.selected = served = "text_aware"
    test: dict[str, dict[str, float]] = {}
    if te.size:
        test = {name: _test_metrics(m, data, te) for name, m in models.items()}
    result_metrics = {
        "validation_rmse": sel.validation_rmse,
        "test": test,
        "split": {
            "train": int(tr.size),
            "validation": int(va.size),
            "test": int(te.size),
            "seed": seed,
            "fractions": list(fractions),
        },
    }
    hyper = sel.hyperparameters() | {
        "grid": {
            "factors": list(config.factors),
            "reg_factors": list(config.reg_factors),
            "reg_bias": list(config.reg_bias),
        }
    }
    return TrainResult(models, sel, hyper, result_metrics, time.perf_counter() - t0, served)


def grid_size(config: SelectionConfig) -> int:
    """Number of fits :func:`select` runs."""
    return len(config.reg_bias) + len(config.factors) * len(config.reg_factors)


def train_component(
    ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True, workers: int | None = None
) -> dict[str, Any]:
    """``chorus train`` entry point: :func:`train` on the ratings and write the ``rating`` component into the
    version being written. ``workers``: :func:`chorus.shared.workers.resolve_workers`. Returns a short summary
    for the CLI.

    With review text (loaded ``with_text``) and at most ``TEXT_AWARE_MAX_ROWS`` reviews, the text-aware model
    competes on validation too (:class:`chorus.training.text.aware.TextAwareFit`); above that it is skipped,
    whether the text was loaded or not (``chorus train`` does not load it then:
    :func:`chorus.training.train.text_loading`)."""
    from chorus.shared.progress import Progress

    workers = resolve_workers(workers)
    config = SelectionConfig()
    scale = ratings.scale
    data = Trainset(ratings.user, ratings.item, ratings.rating, ratings.n_users, ratings.n_items, scale.low, scale.high)
    text_aware, text_note = None, "no review text"
    if ratings.report.format in TEXT_FORMATS and ratings.n > TEXT_AWARE_MAX_ROWS:  # its text need not be loaded
        text_note = f"skipped: more than {TEXT_AWARE_MAX_ROWS:,} reviews"
    elif ratings.text is not None:
        from chorus.training.text.aware import TextAwareFit

        text_aware, text_note = TextAwareFit(ratings.text, seed=seed), "fitted"
    with Progress("rating selection", total=fold_steps(config, False, text_aware)) as bar:
        bar.enabled = bar.enabled and progress
        result = train(data, seed=seed, config=config, progress=bar.update, text_aware=text_aware, workers=workers)
    write_train_result(writer, result)
    h, test = result.hyperparameters, result.metrics["test"]
    return {
        "selected": h["selected"],
        "K": h["n_factors"],
        "reg_factors": h.get("reg_factors"),
        "reg_bias": h["reg_bias"],
        "sweeps": h.get("sweeps"),
        "test_rmse": {name: round(m["rmse"], 4) for name, m in test.items()},
        "text_aware": text_note,
        "seconds": round(result.seconds, 2),
    }


def write_train_result(writer: VersionWriter, result: TrainResult) -> None:
    """:func:`~chorus.services.rating.persistence.write_component` for the output of :func:`train`: the served
    model, the selection's hyperparameters, the metrics and the seconds."""
    write_component(
        writer,
        result.model,
        {"hyperparameters": result.hyperparameters, "metrics": result.metrics | {"seconds": result.seconds}},
    )


def _test_metrics(model: RatingModel, data: Trainset, test: np.ndarray) -> dict[str, float]:
    """MSE, RMSE and MAE of ``model`` on the rows ``test`` (int (m,)) of ``data``."""
    return metrics(model.predict(data.user[test], data.item[test]).rating, data.rating[test])


def _fit_and_score(
    data: Trainset,
    rows: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    config: SelectionConfig,
    similarity: SimilarityFit | None,
    text_aware: TextAwareFitter | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, dict[str, float]], Selection, dict[str, float]]:
    """Select on (rows, val), refit on rows ∪ val, score every model on test; seconds per model (the
    selection time counted to the model it selects for). ``workers``: processes of the selection and the refit.
    ``progress(done)`` after each of the :func:`fold_steps` steps: the grid points, the refit, then the
    similarity and the text-aware fits where they are given."""
    sel = select(data, rows, val, config, progress=progress, workers=workers)
    done = grid_size(config)
    fit_on = data.subset(np.concatenate([rows, val]))
    models, seconds = refit(fit_on, sel, workers)
    done += 1
    if progress:
        progress(done)
    seconds["bias"] += sel.seconds["bias"]
    seconds["latent"] += sel.seconds["latent"]
    out = {name: _test_metrics(m, data, test) for name, m in models.items()}
    if similarity is not None:
        t = time.perf_counter()
        f = fit_on
        predict = similarity(f.user, f.item, f.rating, f.n_users, f.n_items, f.low, f.high)
        predicted = np.clip(np.asarray(predict(data.user[test], data.item[test]), np.float64), f.low, f.high)
        out["similarity"] = metrics(predicted, data.rating[test])
        seconds["similarity"] = time.perf_counter() - t
        done += 1
        if progress:
            progress(done)
    if text_aware is not None:
        model, info = text_aware(data, rows, val, sel.bias.reg_bias, _after(progress, done))
        out["text_aware"] = _test_metrics(model, data, test)
        seconds["text_aware"] = info["seconds"]
        sel.validation_rmse["text_aware"] = info["validation_rmse"]
        sel.text_aware = info["chosen"]
    return out, sel, seconds


def _after(progress: Callable[[int], None] | None, done: int) -> Callable[[int], None] | None:
    """``progress`` for work that counts from 0 after ``done`` steps."""
    if progress is None:
        return None
    report = progress

    def after(steps: int) -> None:
        report(done + steps)

    return after


def fold_steps(config: SelectionConfig, similarity: bool, text_aware: TextAwareFitter | None) -> int:
    """Steps :func:`_fit_and_score` (and :func:`train`, without ``similarity``) reports: the ``grid_size(config)``
    grid points, the refit, one for the similarity fit when it runs, and the text-aware fit's own steps."""
    return grid_size(config) + 1 + int(similarity) + (0 if text_aware is None else text_aware.steps())


def evaluation_steps(
    protocol: str,
    folds: int,
    config: SelectionConfig = SelectionConfig(),
    *,
    similarity: bool,
    text_aware: TextAwareFitter | None,
) -> int:
    """The ``progress`` total of :func:`evaluate`: :func:`fold_steps` for each fold (one fold in a holdout)."""
    return (1 if protocol == "holdout" else folds) * fold_steps(config, similarity, text_aware)


def evaluate(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    low: float,
    high: float,
    *,
    protocol: str = "holdout",
    folds: int = 5,
    seed: int = 0,
    similarity_predict: SimilarityFit | None = None,
    config: SelectionConfig = SelectionConfig(),
    text_aware: TextAwareFitter | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Test-set MSE, RMSE and MAE of ``mean``, ``bias``, ``latent`` (and ``similarity`` when a fit callable
    is given), the hyperparameters chosen, and the seconds taken.

    Parameters
    ----------
    user, item : int (n,) dense indices; rating : float (n,); low, high : the rating scale.
    protocol : ``"holdout"`` (80/10/10 train/validation/test by ``holdout_split(n, seed)``: select on
        validation, refit on train + validation, score on test) or ``"kfold"`` (``kfold_split(n, folds,
        seed)``; inside each training fold a further ``config.inner_validation`` share, drawn with
        ``seed + 1 + fold``, is the validation split for selection; the refit uses the whole training fold).
    similarity_predict : ``fit(user, item, rating, n_users, n_items, low, high) -> predict(users, items)``,
        fitted on the same rows as the refit; its predictions are clipped to the scale.
    text_aware : the text-aware model's selection and refit (:data:`TextAwareFitter`), reported as
        ``models["text_aware"]``; it reads the text of each fold's training rows only.
    workers : k-fold folds run in that many forked processes at once (each fold's ALS on one thread); a
        holdout's single run uses them in its selection and refit. The figures are the same for any number
        (``seconds`` aside).
    progress : ``progress(done)``, called in this process, up to :func:`evaluation_steps` steps: each fold's
        grid points and fits where the folds run here (one worker, or a holdout), each finished fold's steps
        at once where they run in worker processes.

    Returns
    -------
    dict
        ``{"protocol", "folds", "models": {name: {"mse", "rmse", "mae"}}, "model_seconds": {name: s},
        "hyperparameters": [per fold], "validation_rmse": [per fold], "per_fold": [...], "seconds"}``.
        In k-fold mode each metric is the mean over folds (as Surprise reports it).
    """
    t0 = time.perf_counter()
    data = Trainset(user, item, rating, n_users, n_items, low, high)
    n = data.n
    config = replace(config, base=replace(config.base, seed=seed))
    if protocol == "holdout":
        tr, va, te = holdout_split(n, seed, (0.8, 0.1, 0.1))
        runs = [(tr, va, te)]
    elif protocol == "kfold":
        runs = []
        for f, (tr_all, te) in enumerate(kfold_split(n, folds, seed)):
            inner_tr, inner_va, _ = holdout_split(
                tr_all.size, seed + 1 + f, (1 - config.inner_validation, config.inner_validation, 0.0)
            )
            runs.append((tr_all[inner_tr], tr_all[inner_va], te))
    else:
        raise InvalidInput(f"protocol must be 'holdout' or 'kfold', got {protocol!r}")
    per_fold, selections, seconds = [], [], []
    inner = workers if len(runs) == 1 else 1
    steps = fold_steps(config, similarity_predict is not None, text_aware)
    parent, reported = os.getpid(), [0]

    def report(done: int) -> None:
        # here only: a fold run by a worker process is counted whole when its result is back
        if progress and os.getpid() == parent and done > reported[0]:
            reported[0] = done
            progress(done)

    def run(split: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[Any, Selection, dict[str, float]]:
        fold, (rows, val, test) = split

        def step(done: int) -> None:
            report(fold * steps + done)

        return _fit_and_score(data, rows, val, test, config, similarity_predict, text_aware, inner, step)

    for out, sel, secs in map_processes(run, list(enumerate(runs)), workers if len(runs) > 1 else 1):
        per_fold.append(out)
        selections.append(sel)
        seconds.append(secs)
        report(len(per_fold) * steps)
    names = list(per_fold[0])
    models = {
        name: {m: float(np.mean([f[name][m] for f in per_fold])) for m in ("mse", "rmse", "mae")} for name in names
    }
    return {
        "protocol": protocol,
        "folds": len(runs),
        "models": models,
        "model_seconds": {name: float(sum(s[name] for s in seconds)) for name in names},
        "hyperparameters": [s.hyperparameters() for s in selections],
        "validation_rmse": [s.validation_rmse for s in selections],
        "per_fold": per_fold,
        "seconds": time.perf_counter() - t0,
    }
