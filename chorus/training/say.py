"""Output for people: aligned tables and one-line sentences about what was trained and chosen (the progress bars
are :class:`chorus.shared.progress.Progress`).

``chorus train`` and ``chorus evaluate`` print through these functions unless ``--json`` is given; nothing here
prints a Python ``repr`` of a dict or a list. What each component's summary holds is its trainer's business
(``train_component`` in the module beside the service that serves it); :data:`SENTENCES` says, per component,
how its summary reads as a sentence, and :func:`plain` writes any other value as ``name value`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from chorus.shared.contract.kinds import RANKERS

#: How people write the kinds in prose (a kind missing here is written as its name).
LABELS: dict[str, str] = {
    "popular": "popular",
    "item_knn": "item-kNN",
    "rp3beta": "RP3beta",
    "ease": "EASE",
    "ials": "iALS",
    "ease_ials": "EASE+iALS",
    "mean": "mean",
    "bias": "bias",
    "latent": "latent factors",
    "text_aware": "text-aware",
    "similarity": "similarity",
}

#: Hyperparameter names as written in a sentence (a name missing here is written as it is).
SYMBOLS: dict[str, str] = {
    "lam": "λ",
    "alpha": "α",
    "regularization": "reg",
    "reg_factors": "λ factors",
    "reg_bias": "λ bias",
    "n_factors": "factors",
}


def label(kind: str) -> str:
    """``ease`` -> ``EASE``: a kind as people write it."""
    return LABELS.get(kind, kind)


def number(value: Any) -> str:
    """A number as a person reads it: whole numbers with thousands separators, others to 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def plain(value: Any) -> str:
    """Any JSON-like value in words: ``{"a": 1, "b": [2, 3]}`` -> ``a 1, b 2 and 3``; never a repr."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {plain(v)}" for key, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        items = [plain(v) for v in value]
        if len(items) < 2:
            return items[0] if items else "none"
        return f"{', '.join(items[:-1])} and {items[-1]}"
    if value is None:
        return "none"
    return number(value)


def params(values: Mapping[str, Any]) -> str:
    """Hyperparameters as ``λ=500, factors=32``; empty for none."""
    return ", ".join(f"{SYMBOLS.get(name, name)}={number(v)}" for name, v in values.items())


def named(kind: str, values: Mapping[str, Any] | None) -> str:
    """``EASE (λ=500)``: a kind with its hyperparameters."""
    text = params(values or {})
    return f"{label(kind)} ({text})" if text else label(kind)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 4) -> str:
    """An aligned text table: the first column left-aligned, the others right-aligned; floats to ``digits``
    decimals, whole numbers with thousands separators, None as ``n/a``."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    cells = [[str(h) for h in headers], *([cell(v) for v in row] for row in rows)]
    widths = [max(len(row[c]) for row in cells) for c in range(len(headers))]
    lines = []
    for row in cells:
        parts = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def choice(
    what: str | None,
    chosen: str,
    values: Mapping[str, Any] | None,
    measure: str,
    figures: Mapping[str, float],
    verb: str = "chosen",
) -> str:
    """``Ranking: EASE (λ=500) chosen, validation NDCG@10 0.4431 (iALS 0.4312, popular 0.2011)``: the chosen
    kind with its figure first, then the others' in the order given (``what`` None: no ``Ranking:``)."""
    others = ", ".join(f"{label(k)} {v:.4f}" for k, v in figures.items() if k != chosen)
    mine = figures.get(chosen)
    line = f"{what + ': ' if what else ''}{named(chosen, values)} {verb}"
    if mine is not None:
        line += f", {measure} {mine:.4f}"
    return line + (f" ({others})" if others else "")


# --- what each component's summary says ------------------------------------------------------------------------
# Each function answers the sentence's body first (``chorus train`` puts "trained <component> in <s> s: " before
# it), then any further sentences whole.


def _similarity(summary: Mapping[str, Any]) -> list[str]:
    return [f"{summary['pairs']:,} neighbour pairs for {summary['items']:,} items (up to {summary['K']} per item)."]


def _rating(summary: Mapping[str, Any]) -> list[str]:
    chosen = summary["selected"]
    keys = {"bias": (("reg_bias", "reg_bias"),), "latent": (("n_factors", "K"), ("reg_factors", "reg_factors"))}
    values = {name: summary[key] for name, key in keys.get(chosen, ()) if summary.get(key) is not None}
    test = summary.get("test_rmse", {})
    lines = [choice(None, chosen, values, "test RMSE", test, verb="chosen on validation") + "."]
    if str(summary.get("text_aware", "")).startswith("skipped"):  # data without text has nothing to say
        lines.append(f"The text-aware rating model was not fitted: {summary['text_aware']}.")
    return lines


def _ranking(summary: Mapping[str, Any]) -> list[str]:
    default = summary["default"]
    measure = f"validation NDCG@{summary.get('k', 10)}"
    values = own_params(default, summary.get("params", {}).get(default) or {})
    lines = [choice(None, default, values, measure, summary["validation_ndcg"]) + "."]
    live = summary.get("live_default")
    if live:
        decay = float(summary.get("recency", 1.0))
        weighted = f", each action counting {number(decay)} times the one after it" if decay < 1 else ""
        lines.append(f"Users with live events get {label(live)}{weighted}.")
    for kind, reason in summary.get("skipped", {}).items():
        lines.append(f"Ranker {label(kind)} skipped: {reason}.")
    return lines


def own_params(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A blend's own hyperparameters only (its parts' are theirs, said with them); any other kind's all."""
    spec = next((spec for spec in RANKERS if spec.name == kind), None)
    if spec is None or not spec.parts:
        return dict(values)
    own = {name for point in spec.grid for name in point}
    return {name: v for name, v in values.items() if name in own}


def _text(summary: Mapping[str, Any]) -> list[str]:
    line = (
        f"review scorer over {summary['terms']:,} terms, validation rating MSE {summary['rating_validation_mse']:.4f}"
    )
    ber = summary.get("verified_validation_ber")
    return [line + (f", verified-purchase BER {ber:.4f}." if ber is not None else ".")]


#: component -> its summary as sentences (``chorus.training.train.COMPONENTS`` names the components)
SENTENCES: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "similarity": _similarity,
    "rating": _rating,
    "ranking": _ranking,
    "text": _text,
}


def describe(component: str, summary: Mapping[str, Any]) -> list[str]:
    """The sentences of a component's training summary, the first one's body only; a summary whose shape is
    unknown is written as ``name value`` pairs (:func:`plain`) rather than failing the training it describes."""
    try:
        return SENTENCES[component](summary)
    except (KeyError, TypeError, ValueError, AttributeError):
        return [plain({k: v for k, v in summary.items() if k != "seconds"}) + "."]


def trained(component: str, seconds: float, summary: Mapping[str, Any]) -> list[str]:
    """``trained ranking in 12.3 s: EASE (λ=500) chosen, validation NDCG@10 0.4431 (iALS 0.4312, ...).`` and any
    further sentences of :func:`describe`."""
    first, *rest = describe(component, summary)
    return [f"trained {component} in {seconds:.1f} s: {first}", *rest]
