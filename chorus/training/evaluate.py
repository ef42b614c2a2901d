"""``chorus evaluate``: test-set error of every rating predictor (``--task rating``) or top-N quality of every
ranker (``--task ranking``) Chorus has, on one dataset.

The rating models are ``mean``, ``bias`` and ``latent`` (``chorus.training.rating.train.evaluate``: selection on a
validation split carved out of the training rows only, refit, score on test) and ``similarity``, the
similarity-weighted rating heuristic from ``chorus.services.similarity.predict``, fitted on the same training rows.
The rankers are every served ranker of the spec table (``chorus.training.ranking.fit.FITTERS``), evaluated by
``chorus.training.ranking.train.evaluate`` (the per-user holdout protocol of ``docs/models.md``, "Ranking
evaluation"). The text tasks (``--task verified``, ``--task text-rating``) are
``chorus.training.text.fit.evaluate_verified`` and ``evaluate_text_rating``; where the data has review text,
the rating task adds ``text_aware`` (``chorus.training.text.aware.TextAwareFit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from chorus.services.similarity.index import SimilarityIndex
from chorus.shared.data import Ratings
from chorus.shared.progress import Progress
from chorus.shared.workers import resolve_workers
from chorus.training.ranking.train import evaluate as evaluate_ranking
from chorus.training.rating.config import TEXT_AWARE_MAX_ROWS
from chorus.training.rating.train import evaluate as evaluate_rating
from chorus.training.rating.train import evaluation_steps
from chorus.training.say import choice, label, named, params, table
from chorus.training.text.aware import TextAwareFit
from chorus.training.text.fit import TEXT_RATING_STEPS, VERIFIED_STEPS, evaluate_text_rating, evaluate_verified


def similarity_fit(
    user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int, n_items: int, low: float, high: float
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Fit the similarity heuristic on training rows (int (n,), int (n,), float (n,)); return
    ``predict(users, items) -> float64 (n,)``, clipped to ``[low, high]``."""
    index = SimilarityIndex.from_arrays(user, item, rating, n_users, n_items)
    return lambda users, items: index.predict(users, items, low=low, high=high).rating


def evaluate(
    ratings: Ratings,
    protocol: str = "holdout",
    folds: int = 5,
    seed: int = 0,
    with_similarity: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``{"protocol", "folds", "models": {name: {"mse", "rmse", "mae"}}, "model_seconds", "hyperparameters",
    "seconds", ...}`` (see ``chorus.training.rating.train.evaluate``); ``models.text_aware`` where the ratings
    carry review text (loaded ``with_text``) and number at most ``TEXT_AWARE_MAX_ROWS``, else ``skipped`` says why.
    ``workers``: :func:`chorus.shared.workers.resolve_workers`; ``progress``: a bar on a terminal over each
    fold's grid points and fits (``chorus.training.rating.train.evaluation_steps``)."""
    text_aware, skipped = None, {}
    if ratings.text is None:
        skipped["text_aware"] = "the data has no review text"
    elif ratings.n > TEXT_AWARE_MAX_ROWS:
        skipped["text_aware"] = f"more than {TEXT_AWARE_MAX_ROWS:,} reviews"
    else:
        text_aware = TextAwareFit(ratings.text, seed=seed)
    total = evaluation_steps(protocol, folds, similarity=with_similarity, text_aware=text_aware)
    with Progress("rating evaluation", total=total) as bar:
        bar.enabled = bar.enabled and progress
        result = evaluate_rating(
            ratings.user,
            ratings.item,
            ratings.rating,
            ratings.n_users,
            ratings.n_items,
            ratings.scale.low,
            ratings.scale.high,
            protocol=protocol,
            folds=folds,
            seed=seed,
            similarity_predict=similarity_fit if with_similarity else None,
            workers=resolve_workers(workers),
            text_aware=text_aware,
            progress=bar.update,
        )
    return result | ({"skipped": skipped} if skipped else {})


#: The hyperparameters of the rating selection's choice that its sentence names.
RATING_PARAMS = ("trainer", "n_factors", "reg_factors", "reg_bias", "sweeps")


def format_report(result: dict[str, Any]) -> str:
    """The rating task's table (one row per model, the mean over folds in k-fold), then per fold the model the
    selection chose with its hyperparameters and validation RMSE, in words."""
    folds = result["folds"]
    lines = [
        f"Rating error, {result['protocol']} ({folds} fold{'s' if folds > 1 else ''}"
        f"{', mean over folds' if folds > 1 else ''}), {result['seconds']:.1f} s in all:",
        table(
            ["model", "MSE", "RMSE", "MAE", "seconds"],
            [
                [name, m["mse"], m["rmse"], m["mae"], f"{result['model_seconds'].get(name, float('nan')):.1f}"]
                for name, m in result["models"].items()
            ],
        ),
    ]
    rmse = result.get("validation_rmse", [])
    for k, hp in enumerate(result["hyperparameters"]):
        chosen = hp.get("selected", "latent")
        if chosen == "bias":
            values = {"reg_bias": hp["reg_bias"]} if "reg_bias" in hp else {}
        else:
            values = {key: hp[key] for key in RATING_PARAMS if hp.get(key) is not None}
        # the selection chooses between bias and latent; the text-aware model is measured beside them
        figures = {name: v for name, v in (rmse[k] if k < len(rmse) else {}).items() if name in ("bias", "latent")}
        lines.append(choice(f"Fold {k + 1}", chosen, values, "validation RMSE", figures))
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{label(name)}: skipped ({reason}).")
    return "\n".join(lines)


def ranking(
    ratings: Ratings,
    k: int = 10,
    seed: int = 0,
    relevance: str = "any",
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``{"task": "ranking", "k", "models": {kind: {"precision", "recall", "ndcg", "map", "coverage", "novelty",
    "fit_seconds"}}, "selected", "seconds", ...}`` (see ``chorus.training.ranking.train.evaluate``; the selection
    ``chorus train`` serves from). ``workers``: :func:`chorus.shared.workers.resolve_workers`; ``progress``: a
    bar on a terminal."""
    return evaluate_ranking(ratings, k=k, seed=seed, relevance=relevance, workers=workers, progress=progress)


RANKING_COLUMNS = ("precision", "recall", "ndcg", "map", "coverage", "novelty")


def format_ranking_report(result: dict[str, Any]) -> str:
    """One row per ranker at k, named as the API's ``method`` names it (``*`` marks the one selected on validation
    NDCG), then the choice in words."""
    k = result["k"]
    headers = ["model", *(c if c == "novelty" else f"{c}@{k}" for c in RANKING_COLUMNS), "fit s"]
    rows = [
        [("*" if name == result["selected"] else " ") + name, *(m[c] for c in RANKING_COLUMNS)]
        + [f"{m['fit_seconds']:.2f}"]
        for name, m in result["models"].items()
    ]
    validation = {kind: v["ndcg"] for kind, v in result.get("validation", {}).items()}
    lines = [
        f"Ranking at k={k} on a per-user 80/20 hold-out, relevance {result.get('relevance', 'any')}, "
        f"seed {result.get('seed', 0)}, {result['seconds']:.1f} s in all:",
        table(headers, rows),
        choice(
            "Ranking",
            result["selected"],
            result.get("params", {}).get(result["selected"]),
            f"validation NDCG@{k}",
            validation,
        ),
    ]
    for name, values in result.get("params", {}).items():
        if values and name != result["selected"]:
            lines.append(f"{named(name, values)}: its best hyperparameters on validation.")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{label(name)}: skipped ({reason}).")
    return "\n".join(lines)


def format_text_report(result: dict[str, Any]) -> str:
    """The text tasks' table: each model's test figures (``*`` marks the one selected on validation)."""
    columns = ("ber", "accuracy", "tpr", "tnr") if result["task"] == "verified" else ("mse", "rmse", "mae")
    split = result["split"]
    rows = [
        [("*" if name == result["selected"] else " ") + name, *(m[c] for c in columns)]
        for name, m in result["models"].items()
    ]
    chosen = params({k: v for k, v in result["chosen"].items() if k != "grid"})
    return "\n".join(
        [
            f"{result['task']}: seeded 80/10/10 split (seed {split['seed']}: {split['train']:,} / "
            f"{split['validation']:,} / {split['test']:,} reviews), {result['seconds']:.1f} s in all:",
            table(["model", *(c.upper() for c in columns)], rows),
            f"* selected on validation{'; chosen ' + chosen if chosen else ''}.",
        ]
    )


def _text_task(
    name: str, run: Callable[[Ratings, int, Callable[[int], None]], dict[str, Any]], steps: int
) -> Callable[..., tuple[dict[str, Any], Callable[[dict[str, Any]], str]]]:
    """``chorus evaluate --task name``: ``run`` with a bar over its ``steps`` on a terminal (``progress``)."""

    def task(
        ratings: Ratings, seed: int = 0, progress: bool = False
    ) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
        with Progress(f"{name} evaluation", total=steps) as bar:
            bar.enabled = bar.enabled and progress
            return run(ratings, seed, bar.update), format_text_report

    return task


#: ``chorus evaluate --task NAME`` for the text tasks: NAME -> ``task(ratings, seed, progress) -> (result,
#: report)``.
TEXT_TASKS: dict[str, Callable[..., tuple[dict[str, Any], Callable[[dict[str, Any]], str]]]] = {
    "verified": _text_task("verified", evaluate_verified, VERIFIED_STEPS),
    "text-rating": _text_task("text-rating", evaluate_text_rating, TEXT_RATING_STEPS),
}
