"""The evaluation report: one self-contained HTML file with tables and plots of what an evaluation or a training
run measured.

``chorus evaluate --report FILE`` writes it from the evaluation it ran; ``chorus train`` writes it into the
version it publishes (the ``report`` component, :mod:`chorus.shared.report_component`), which the rating service
serves at ``/v1/report`` and the gateway at ``/report``. The file holds everything it shows: the plots are inline
SVG drawn by matplotlib (no display, text as paths, so no font either), the style is inline, and nothing in it
names a URL, so it opens offline and from any place it is copied to. The same figures give the same bytes (no
clock, no timings, fixed SVG ids).

Sections, each present when its figures are:

* **Data**: the popularity long tail of the reviews (reviews per item, items ranked by popularity).
* **Ranking**: NDCG and recall at every k up to :data:`K_MAX` for every ranker (curves), the table of every
  metric at the evaluation's k, coverage and novelty, and how the lists spread over the long tail (the share of
  list slots that go to the most popular items, beside the share of reviews they hold).
* **Rating**: RMSE, MSE and MAE of every rating model on each test fold.

The ranking curves come from the same lists as the table: each ranker fitted with its chosen hyperparameters on
the rows the figures were measured against, its top-:data:`K_MAX` list computed once, and each metric taken on the
list's first k items with :mod:`chorus.training.ranking.metrics` (so NDCG@10 on the curve is the table's NDCG@10).
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from chorus.services.rating.rankers import Ranker
from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import Ratings
from chorus.shared.data.matrix import user_item_matrix
from chorus.shared.data.splits import user_holdout_split
from chorus.shared.progress import Progress
from chorus.shared.report_component import save_report
from chorus.shared.workers import using_workers
from chorus.training.ranking.fit import FITTERS, PARTS, compose, mixes_chosen_parts
from chorus.training.ranking.metrics import evaluate_rankings, mean_over_users, ndcg_at_k, recall_at_k
from chorus.training.ranking.train import (
    PointCounter,
    Scorer,
    parse_relevance,
    recommend_lists,
    run_tasks,
)
from chorus.training.say import label, params

#: Longest list the curves reach (shorter when the catalogue is smaller).
K_MAX = 50
#: The list lengths the curves are drawn at (with the evaluation's own k added).
CURVE_KS = (1, 2, 3, 5, 10, 15, 20, 30, 40, 50)
#: The share of the catalogue counted as the popular head in the long-tail table.
HEAD_SHARE = 0.2

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


# --- figures ------------------------------------------------------------------------------------------------------


#: The kinds whose report figures take longest on large catalogues, slowest last (handed out first).
SLOWEST = ("ease", "ials", "ease_ials", "rp3beta", "item_knn")


def ranking_figures(
    ratings: Ratings,
    fit_rows: np.ndarray,
    scored_rows: np.ndarray,
    chosen: Mapping[str, Mapping[str, Any]],
    *,
    k: int,
    min_rating: float | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Every ranker of ``chosen`` (kind -> hyperparameters) fitted on ``fit_rows`` and scored on the relevant
    items of ``scored_rows`` at every k of :data:`CURVE_KS` (and ``k``) up to :data:`K_MAX` or the catalogue;
    the kinds in up to ``workers`` forked processes (:func:`~chorus.training.ranking.train.run_tasks`).

    Returns
    -------
    dict
        ``{"ks": [...], "k": k, "models": {kind: {"ndcg": [...], "recall": [...], "at_k": every metric of
        :func:`~chorus.training.ranking.metrics.evaluate_rankings` at ``k``, "slots": int (n_items,) list, the
        times each item appears in the top-k lists}}, "item_counts": int (n_items,) list, the training reviews
        per item, "users": evaluated users}``.
    """
    user, item = np.asarray(ratings.user), np.asarray(ratings.item)
    rating = np.asarray(ratings.rating, dtype=np.float64)
    history = user_item_matrix(
        user[fit_rows], item[fit_rows], ratings.n_users, ratings.n_items, values=rating[fit_rows]
    )
    scorer = Scorer.build(history, user[scored_rows], item[scored_rows], rating[scored_rows], min_rating)
    if scorer.users.shape[0] == 0:
        raise InvalidInput("no user has a relevant held-out item: the report has no ranking figures to show")
    deepest = max(1, min(max(K_MAX, k), ratings.n_items))
    ks = sorted({x for x in (*CURVE_KS, k) if x <= deepest})
    counts = np.bincount(history.indices, minlength=ratings.n_items)
    trained_users = int(np.count_nonzero(np.diff(history.indptr)))

    def scored(ranker: Ranker) -> dict[str, Any]:
        lists = recommend_lists(ranker, history, scorer.users, deepest)
        at_k = lists[:, : min(k, deepest)]
        counter.tick()
        return {
            "ndcg": [mean_over_users(ndcg_at_k(lists[:, :x], scorer.relevant)) for x in ks],
            "recall": [mean_over_users(recall_at_k(lists[:, :x], scorer.relevant)) for x in ks],
            # the figures Scorer.score gives (the evaluation's table), from the same lists
            "at_k": evaluate_rankings(at_k, scorer.relevant, counts, trained_users, int(np.count_nonzero(counts))),
            "slots": np.bincount(at_k[at_k >= 0], minlength=ratings.n_items).tolist(),
        }

    def figures(group: tuple[str, ...]) -> list[dict[str, Any]]:
        """The kinds of ``group`` fitted and scored, on one thread wherever they run (the same figures for any
        workers); a group's last kind may be a blend of the others, mixed from their fits."""
        out: list[dict[str, Any]] = []
        fitted: dict[str, Ranker] = {}
        with using_workers(1), threadpool_limits(1, "blas"):
            for kind in group:
                if kind in PARTS and all(part in fitted for part in PARTS[kind]):
                    fitted[kind] = compose(kind, [fitted[part] for part in PARTS[kind]], chosen[kind])
                else:
                    fitted[kind] = FITTERS[kind](history, dict(chosen[kind]))
                out.append(scored(fitted[kind]))
        return out

    # the kinds side by side in forked workers, the slowest to fit and score first (the order changes no figure);
    # a blend whose parts' params are those it was chosen with runs with them, mixed from their fits
    groups = _groups(chosen)
    with PointCounter(progress, workers) as counter:
        done = dict(
            zip(
                [kind for group in groups for kind in group],
                [one for result in run_tasks(figures, groups, workers, counter.report) for one in result],
                strict=True,
            )
        )
    models = {kind: done[kind] for kind in chosen}
    return {
        "ks": ks,
        "k": k,
        "models": models,
        "item_counts": counts.tolist(),
        "users": int(scorer.users.shape[0]),
    }


def _groups(chosen: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """The kinds of ``chosen`` in tasks, slowest first: one per kind, but a blend with its parts (fitted once, the
    blend mixed from them) where their params are the blend's part params."""
    kinds = sorted(chosen, key=lambda kind: -SLOWEST.index(kind) if kind in SLOWEST else 0)
    blended = {kind: PARTS[kind] for kind in kinds if kind in PARTS and mixes_chosen_parts(kind, chosen)}
    joined = {part for parts in blended.values() for part in parts}
    groups = [(*blended[kind], kind) if kind in blended else (kind,) for kind in kinds if kind not in joined]
    return sorted(groups, key=len, reverse=True)  # stable: a blend with its parts (the longest task) first


def holdout_ranking_figures(
    ratings: Ratings,
    chosen: Mapping[str, Mapping[str, Any]],
    *,
    k: int,
    seed: int = 0,
    relevance: str | float | None = "any",
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """:func:`ranking_figures` on the per-user hold-out of the ranking protocol (``user_holdout_split`` with
    ``seed``), whose training rows alone chose the hyperparameters, in ``chorus evaluate --task ranking`` and in
    ``chorus train`` alike: test figures of the chosen rankers."""
    train, test = user_holdout_split(np.asarray(ratings.user), ratings.n_users, seed)
    return ranking_figures(
        ratings, train, test, chosen, k=k, min_rating=parse_relevance(relevance), progress=progress, workers=workers
    )


def evaluation_ranking_figures(
    ratings: Ratings, result: Mapping[str, Any], progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """:func:`holdout_ranking_figures` for a ranking evaluation's ``result`` (``chorus evaluate --task
    ranking``): its seed, relevance, k and each ranker's chosen hyperparameters."""
    chosen = {kind: result.get("params", {}).get(kind, {}) for kind in result["models"]}
    return holdout_ranking_figures(
        ratings,
        chosen,
        k=int(result["k"]),
        seed=int(result.get("seed", 0)),
        relevance=result.get("relevance", "any"),
        progress=progress,
    )


def rating_folds(result: Mapping[str, Any]) -> list[dict[str, dict[str, float]]]:
    """Per test fold, each rating model's ``{"mse", "rmse", "mae"}``: a rating evaluation's ``per_fold``."""
    folds: list[dict[str, dict[str, float]]] = result["per_fold"]
    return folds


# --- plots --------------------------------------------------------------------------------------------------------


def _svg(figure: Any) -> str:
    """The figure as an ``<svg>`` element to put inside HTML: no XML prologue, doctype, metadata or namespace
    declarations (HTML needs none, and each names a URL), ids fixed by a salt so the same plot is the same bytes."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "chorus", "svg.fonttype": "path"}):
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.strip()


def _figure(width: float = 6.4, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _curve_plot(figures: Mapping[str, Any], metric: str) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    for n, (kind, m) in enumerate(figures["models"].items()):
        ax.plot(
            figures["ks"], m[metric], marker="o", markersize=3, color=_COLOURS[n % len(_COLOURS)], label=label(kind)
        )
    ax.axvline(figures["k"], color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("list length k")
    ax.set_ylabel(f"{'NDCG' if metric == 'ndcg' else 'recall'}@k")
    ax.set_title(f"{'NDCG' if metric == 'ndcg' else 'Recall'} at k")
    ax.set_xscale("log")
    ax.set_xticks(figures["ks"], [str(x) for x in figures["ks"]])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _svg(fig)


def _bars(ax: Any, names: Sequence[str], values: Sequence[float], title: str, digits: int) -> None:
    bars = ax.bar(range(len(names)), values, color=[_COLOURS[n % len(_COLOURS)] for n in range(len(names))])
    ax.bar_label(bars, labels=[f"{v:.{digits}f}" for v in values], fontsize="small")
    ax.set_xticks(range(len(names)), [label(n) for n in names], rotation=20)
    ax.set_title(title)
    ax.margins(y=0.15)


def _coverage_novelty_plot(models: Mapping[str, Mapping[str, float]], k: int) -> str:
    fig = _figure(7.2, 3.4)
    names = list(models)
    left, right = fig.subplots(1, 2)
    _bars(left, names, [models[n]["coverage"] for n in names], f"Catalogue coverage@{k}", 3)
    _bars(right, names, [models[n]["novelty"] for n in names], f"Novelty@{k} (bits)", 2)
    return _svg(fig)


def _samples(n: int, most: int = 300) -> np.ndarray:
    """Sorted positions in ``[0, n)`` to draw a curve over ``n`` items at: ``most`` spaced evenly and ``most``
    spaced logarithmically (the head and the tail both keep their shape), so a plot's size does not grow with
    the catalogue."""
    if n <= 2 * most:
        return np.arange(n)
    even = np.linspace(0, n - 1, most)
    log = np.geomspace(1, n, most) - 1
    return np.unique(np.concatenate((even, log)).round().astype(np.int64))


def _long_tail_plot(counts: np.ndarray) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    ranked = np.sort(counts)[::-1]
    at = _samples(ranked.size)
    ax.fill_between(at + 1, ranked[at], alpha=0.35, color=_COLOURS[0], linewidth=0)
    ax.plot(at + 1, ranked[at], color=_COLOURS[0], linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("items, most reviewed first")
    ax.set_ylabel("reviews per item")
    ax.set_title("Popularity long tail of the data")
    ax.grid(alpha=0.3)
    return _svg(fig)


def _lorenz(shares: np.ndarray, order: np.ndarray) -> np.ndarray:
    total = shares.sum()
    return np.concatenate(([0.0], np.cumsum(shares[order]) / total)) if total else np.zeros(order.size + 1)


def _list_tail_plot(figures: Mapping[str, Any]) -> str:
    counts = np.asarray(figures["item_counts"], dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    # from the single most reviewed item on, in log scale: the lists crowd into the first few percent
    at = _samples(counts.size) + 1
    x = at / counts.size
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(x, _lorenz(counts, order)[at], color="#000000", linewidth=2, label="reviews (the data)")
    for n, (kind, m) in enumerate(figures["models"].items()):
        slots = np.asarray(m["slots"], dtype=np.float64)
        ax.plot(x, _lorenz(slots, order)[at], color=_COLOURS[n % len(_COLOURS)], label=f"{label(kind)} lists")
    ax.set_xscale("log")
    ax.set_xlabel("share of items, most reviewed first (log scale)")
    ax.set_ylabel("cumulative share")
    ax.set_title(f"Where the top-{figures['k']} lists go on the long tail")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _svg(fig)


def _rating_plot(folds: Sequence[Mapping[str, Mapping[str, float]]]) -> str:
    names = list(folds[0])
    fig = _figure()
    ax = fig.add_subplot()
    width = 0.8 / len(folds)
    for f, fold in enumerate(folds):
        xs = np.arange(len(names)) + (f - (len(folds) - 1) / 2) * width
        ax.bar(xs, [fold[n]["rmse"] for n in names], width, label=f"fold {f + 1}", color=_COLOURS[f % len(_COLOURS)])
    ax.set_xticks(range(len(names)), [label(n) for n in names])
    ax.set_ylabel("RMSE (stars)")
    ax.set_title("Rating error on each test fold" if len(folds) > 1 else "Rating error on the test rows")
    ax.grid(alpha=0.3, axis="y")
    if len(folds) > 1:
        ax.legend(fontsize="small", ncols=min(len(folds), 5))
    return _svg(fig)


# --- the page -----------------------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:0.8rem 0;font-variant-numeric:tabular-nums}
th,td{padding:0.25rem 0.7rem;text-align:right;border-bottom:1px solid #eee}
th:first-child,td:first-child,td.words{text-align:left}td.words{min-width:12rem}
div.table{overflow-x:auto;max-width:100%}
figure{margin:1rem 0}svg{max-width:100%;height:auto}p.note{color:#555;font-size:0.92rem}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return html.escape(str(value))

    def td(value: Any, last: bool) -> str:
        # a text in the last column (the hyperparameters) wraps as words, left-aligned
        words = last and isinstance(value, str)
        return f'<td class="words">{cell(value)}</td>' if words else f"<td>{cell(value)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(td(v, n == len(row) - 1 and n > 0) for n, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _plot(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _data_section(dataset: Mapping[str, Any], item_counts: np.ndarray) -> str:
    counts = np.sort(item_counts)[::-1]
    head = max(1, int(np.ceil(HEAD_SHARE * counts.size)))
    share = counts[:head].sum() / max(1, counts.sum())
    rows = [
        ("reviews", int(dataset["reviews"])),
        ("users", int(dataset["users"])),
        ("items", int(dataset["items"])),
        (f"reviews of the {HEAD_SHARE:.0%} most reviewed items", f"{share:.1%}"),
        ("items with one review", int(np.count_nonzero(counts == 1))),
    ]
    return _section(
        "Data",
        _table(["", ""], rows),
        _plot(_long_tail_plot(item_counts), "Reviews per item, items ranked from the most reviewed (log scale)."),
    )


def _ranking_section(result: Mapping[str, Any], figures: Mapping[str, Any], where: str) -> str:
    k = int(result["k"])
    models: Mapping[str, Mapping[str, float]] = result["models"]
    columns = ("precision", "recall", "ndcg", "map", "coverage", "novelty")
    headers = [
        "ranker",
        *(c if c == "novelty" else f"{c}@{k}" for c in columns),
        f"validation ndcg@{k}",
        "hyperparameters",
    ]
    chosen, validation = result.get("params", {}), result.get("validation", {})
    rows = [
        [label(kind) + (" (chosen)" if kind == result.get("selected") else ""), *(m[c] for c in columns)]
        + [validation.get(kind, {}).get("ndcg", float("nan")), params(chosen.get(kind, {})) or "none"]
        for kind, m in models.items()
    ]
    counts = np.asarray(figures["item_counts"], dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    head = order[: max(1, int(np.ceil(HEAD_SHARE * counts.size)))]
    tail_rows = [["the data (reviews)", counts[head].sum() / max(1.0, counts.sum())]]
    for kind, m in figures["models"].items():
        slots = np.asarray(m["slots"], dtype=np.float64)
        tail_rows.append([f"{label(kind)} lists", slots[head].sum() / max(1.0, slots.sum())])
    parts = [
        _note(
            f"{where}; {figures['users']:,} users scored, relevance {result.get('relevance', 'any')}, "
            f"seed {result.get('seed', 0)}."
        ),
        _table(headers, rows),
        _plot(_curve_plot(figures, "ndcg"), "NDCG at each list length (log scale of k)."),
        _plot(_curve_plot(figures, "recall"), "Recall at each list length (log scale of k)."),
        _plot(
            _coverage_novelty_plot(models, k),
            "Coverage: the share of the catalogue that appears in some list. Novelty: the mean self-information "
            "-log2(share of users who reviewed the item) of the listed items.",
        ),
        _note(
            f"The chosen ranker is the one with the best validation NDCG@{k}, on validation rows carved from the "
            "training rows; the test columns are measured once, after the choice."
        ),
        _plot(
            _list_tail_plot(figures),
            "Items ranked from the most reviewed; a curve above the data's gives the popular items more of the "
            "list slots than their share of reviews.",
        ),
        _table(["whose", f"share on the {HEAD_SHARE:.0%} most reviewed items"], tail_rows, digits=3),
    ]
    for kind, reason in result.get("skipped", {}).items():
        parts.append(_note(f"{label(kind)} skipped: {reason}"))
    return _section("Ranking", *parts)


def _rating_section(folds: Sequence[Mapping[str, Mapping[str, float]]], where: str) -> str:
    names = list(folds[0])
    rows: list[list[Any]] = []
    for f, fold in enumerate(folds):
        rows += [[label(n), f + 1, fold[n]["rmse"], fold[n]["mse"], fold[n]["mae"]] for n in names]
    if len(folds) > 1:
        rows += [
            [label(n), "mean", *(float(np.mean([fd[n][m] for fd in folds])) for m in ("rmse", "mse", "mae"))]
            for n in names
        ]
    return _section(
        "Rating",
        _note(where),
        _table(["model", "fold", "RMSE", "MSE", "MAE"], rows),
        _plot(_rating_plot(folds), "Root mean squared error of each model's predicted stars, per test fold."),
    )


def render(
    title: str,
    dataset: Mapping[str, Any],
    item_counts: np.ndarray,
    *,
    ranking: tuple[Mapping[str, Any], Mapping[str, Any], str] | None = None,
    rating: tuple[Sequence[Mapping[str, Mapping[str, float]]], str] | None = None,
) -> str:
    """The report as one HTML document.

    Parameters
    ----------
    title : str
        The page's heading (the data file's name, say).
    dataset : mapping
        ``reviews``, ``users`` and ``items`` (:func:`chorus.shared.data.dataset_stats`).
    item_counts : int (n_items,)
        Reviews per item over the whole data.
    ranking : (result, figures, where), optional
        A ranking evaluation's result (``k``, ``models`` with every metric at k, ``selected``, ``params``), its
        :func:`ranking_figures`, and a sentence saying what rows the figures were measured on.
    rating : (folds, where), optional
        :func:`rating_folds` and a sentence saying what the folds are.
    """
    sections = [_data_section(dataset, np.asarray(item_counts))]
    if ranking is not None:
        sections.append(_ranking_section(*ranking))
    if rating is not None:
        sections.append(_rating_section(*rating))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Chorus report: {html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Chorus report: {html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )
    return page


def write(path: str | os.PathLike[str], page: str) -> Path:
    """Write ``page`` to ``path`` atomically (a temporary file beside it, then a rename), so a reader never sees
    half a report; return the path."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def evaluation_report(
    ratings: Ratings, title: str, results: Mapping[str, Mapping[str, Any]], progress: bool = True
) -> str:
    """The report of ``chorus evaluate``: ``results`` holds the ``rating`` and/or ``ranking`` evaluation's result
    (:func:`chorus.training.evaluate.evaluate`, :func:`chorus.training.evaluate.ranking`) on ``ratings``."""
    ranking = rating = None
    if "ranking" in results:
        result = results["ranking"]
        with Progress("report: ranking curves", total=len(result["models"])) as bar:
            bar.enabled = bar.enabled and progress
            figures = evaluation_ranking_figures(ratings, result, progress=bar.update)
        where = (
            "Test figures: each ranker fitted with its chosen hyperparameters on 80% of each user's reviews "
            "and scored on the other 20%"
        )
        ranking = (result, figures, where)
    if "rating" in results:
        result = results["rating"]
        n = result["folds"]
        where = (
            f"Test error on each of {n} folds (hyperparameters chosen on validation rows of each training fold)."
            if n > 1
            else "Test error on a seeded 10% of the reviews (hyperparameters chosen on another 10%)."
        )
        rating = (rating_folds(result), where)
    stats = {"reviews": ratings.n, "users": ratings.n_users, "items": ratings.n_items}
    return render(title, stats, item_popularity(ratings), ranking=ranking, rating=rating)


def item_popularity(ratings: Ratings) -> np.ndarray:
    """int64 (n_items,): reviews per item over every row."""
    counts: np.ndarray = np.bincount(np.asarray(ratings.item), minlength=ratings.n_items).astype(np.int64)
    return counts


def version_report(
    ratings: Ratings, writer: VersionWriter, title: str, *, seed: int = 0, progress: bool = True, workers: int = 1
) -> str:
    """The report of ``chorus train``, from what the version being written records (its ``ranking`` and
    ``rating`` components' metrics, trained now or kept), written into it; returns the page.

    The ranking figures are those of ``chorus evaluate --task ranking`` with the same seed: the selection the
    version records was made on the training rows of the protocol's hold-out, so its test rows give test figures
    (:func:`holdout_ranking_figures`); the rating error is the rating component's test error on its seeded
    holdout."""
    components = writer.manifest["components"]
    ranking = rating = None
    metrics = components.get("ranking", {}).get("metrics", {})
    if metrics.get("kinds"):
        refused = metrics.get("refused_on_refit", {})
        chosen = {kind: s["params"] for kind, s in metrics["kinds"].items() if kind not in refused}
        k, relevance = int(metrics.get("k", 10)), metrics.get("relevance", "any")
        with Progress("report: ranking curves", total=len(chosen)) as bar:
            bar.enabled = bar.enabled and progress
            figures = holdout_ranking_figures(
                ratings,
                chosen,
                k=k,
                seed=int(metrics.get("seed", seed)),
                relevance=relevance,
                progress=bar.update,
                workers=workers,
            )
        result = {
            "k": k,
            "seed": metrics.get("seed", seed),
            "relevance": relevance,
            "models": {kind: figures["models"][kind]["at_k"] for kind in chosen},
            "selected": metrics.get("default", metrics.get("selected")),
            "params": chosen,
            "validation": {kind: metrics["kinds"][kind]["validation"] for kind in chosen},
            "skipped": metrics.get("skipped", {}) | refused,
        }
        where = (
            "Test figures: each ranker fitted with its chosen hyperparameters on 80% of each user's reviews and "
            "scored on the other 20%, which the selection never saw (the served rankers are refitted on every review)"
        )
        ranking = (result, figures, where)
    test = components.get("rating", {}).get("metrics", {}).get("test")
    if test:
        split = components["rating"]["metrics"].get("split", {})
        rating = (
            [test],
            f"Test error on a seeded {split.get('test', 0):,} reviews held out from the served model's training "
            "(hyperparameters chosen on another share of the reviews).",
        )
    stats = {"reviews": ratings.n, "users": ratings.n_users, "items": ratings.n_items}
    page = render(title, stats, item_popularity(ratings), ranking=ranking, rating=rating)
    save_report(writer, page)
    return page
