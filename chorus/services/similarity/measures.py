"""The similarity measures: each defined once, as the sums it needs and the score computed from them.

Item-item shown; user-user swaps the roles. ``U_a`` is the set of users who rated item ``a``, ``C = U_a ∩ U_b``
the users two items share, ``R_ua`` a rating and ``R̄_a`` the mean of *all* ratings of ``a`` (formulas and
sources in ``docs/models.md``):

* Jaccard(a, b) = |U_a ∩ U_b| / |U_a ∪ U_b|
* Cosine(a, b)  = Σ_u R_ua R_ub / (√Σ_u R_ua² · √Σ_u R_ub²) over full vectors (missing ratings are 0)
* Pearson(a, b) = min(|C|, γ)/γ · Σ_{u∈C} (R_ua − R̄_a)(R_ub − R̄_b) / (√Σ_{u∈C} (R_ua − R̄_a)² · √Σ_{u∈C} (R_ub − R̄_b)²),
  and 0 where a root is 0: the correlation over the common raters, devalued when they are fewer than
  γ = :data:`PEARSON_SIGNIFICANCE` (Herlocker et al.'s significance weighting), so that two items sharing one or two
  raters cannot outrank two that hundreds of raters agree on.

A :class:`MeasureSpec` names the :class:`Term` values its score needs; :class:`chorus.services.similarity.side.Side`
computes exactly those (by sparse products for candidate rows, by merging rows for arbitrary pairs) and calls
:attr:`MeasureSpec.score`. Adding a measure is a :class:`chorus.shared.contract.names.Measure` member and one
:data:`REGISTRY` entry (a new sum also needs its computation in ``side.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import Measure


class Term(StrEnum):
    """A number a score is computed from, per pair of rows ``(a, b)``; ``C`` is the columns both have an entry in
    (users two items share), ``R`` the values, ``z = R − R̄`` the values centred on their row's mean."""

    common = "common"
    """|C|, the number of shared columns."""
    count_a = "count_a"
    """|U_a|, entries of row ``a`` (the query row)."""
    count_b = "count_b"
    """|U_b|, entries of row ``b`` (the candidate)."""
    norm_a = "norm_a"
    """‖R_a‖ = √Σ R_ua² over all entries of ``a``."""
    norm_b = "norm_b"
    """‖R_b‖ over all entries of ``b``."""
    dot = "dot"
    """Σ_{u∈C} R_ua R_ub."""
    centred_dot = "centred_dot"
    """Σ_{u∈C} z_ua z_ub."""
    centred_squares_a = "centred_squares_a"
    """Σ_{u∈C} z_ua² (over the shared columns only)."""
    centred_squares_b = "centred_squares_b"
    """Σ_{u∈C} z_ub²."""


Terms = Mapping[Term, np.ndarray]
"""The terms of ``m`` pairs, each float64 (m,) (a per-row statistic may be (1,), the same for every pair)."""


@dataclass(frozen=True)
class MeasureSpec:
    """One similarity measure: its formula, the terms it needs, its score, and its range.

    Attributes
    ----------
    measure : Measure
    formula : str
        The formula, for documentation and error messages.
    needs : frozenset of Term
        Terms :attr:`score` reads (:attr:`Term.common` is always computed).
    score : callable(Terms) -> float64 (m,)
        The raw (unrounded) score of each pair.
    lowest : float
        The smallest score it can take (the largest is 1).
    """

    measure: Measure
    formula: str
    needs: frozenset[Term]
    score: Callable[[Terms], np.ndarray]
    lowest: float


def _ratio(num: np.ndarray, den: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """``num / den`` where ``defined``, 0 elsewhere: float64 (m,)."""
    ratio: NDArray[np.float64] = np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=defined)
    return ratio


def _jaccard(t: Terms) -> np.ndarray:
    common = t[Term.common]
    # the union is at least 1 wherever common is (and 0 / 1 = 0 where two empty rows share nothing)
    score: NDArray[np.float64] = common / np.maximum(t[Term.count_a] + t[Term.count_b] - common, 1.0)
    return score


def _cosine(t: Terms) -> np.ndarray:
    den = t[Term.norm_a] * t[Term.norm_b]
    return _ratio(t[Term.dot], den, den > 0)


PEARSON_SIGNIFICANCE = 50
"""γ of Pearson's significance weighting: a correlation over n < γ common raters is multiplied by n/γ (the value
Herlocker, Konstan, Borchers and Riedl, SIGIR 1999, found best on MovieLens)."""


def _pearson(t: Terms) -> np.ndarray:
    a1, a2 = t[Term.centred_squares_a], t[Term.centred_squares_b]
    r = _ratio(t[Term.centred_dot], np.sqrt(a1) * np.sqrt(a2), (a1 > 0) & (a2 > 0))
    return r * (np.minimum(t[Term.common], PEARSON_SIGNIFICANCE) / PEARSON_SIGNIFICANCE)


REGISTRY: Mapping[Measure, MeasureSpec] = MappingProxyType(
    {
        Measure.jaccard: MeasureSpec(
            Measure.jaccard,
            "|U_a ∩ U_b| / |U_a ∪ U_b|",
            frozenset({Term.common, Term.count_a, Term.count_b}),
            _jaccard,
            lowest=0.0,
        ),
        Measure.cosine: MeasureSpec(
            Measure.cosine,
            "Σ_u R_ua R_ub / (‖R_a‖ ‖R_b‖)",
            frozenset({Term.dot, Term.norm_a, Term.norm_b}),
            _cosine,
            lowest=0.0,  # for the non-negative ratings Chorus reads
        ),
        Measure.pearson: MeasureSpec(
            Measure.pearson,
            "min(|C|, 50)/50 · Σ_{u∈C} z_ua z_ub / (√Σ_{u∈C} z_ua² · √Σ_{u∈C} z_ub²), z = R − R̄ over all ratings of "
            "the row",
            frozenset({Term.common, Term.centred_dot, Term.centred_squares_a, Term.centred_squares_b}),
            _pearson,
            lowest=-1.0,
        ),
    }
)
"""Every similarity measure Chorus computes, by name."""


def measure_spec(measure: str) -> MeasureSpec:
    """The specification of ``measure`` (a :class:`Measure` or its name).

    Raises
    ------
    InvalidInput : a name that is no measure, or a measure without a :data:`REGISTRY` entry.
    """
    try:
        return REGISTRY[measure]  # type: ignore[index]  # a Measure is a str, so its name finds it too
    except (KeyError, TypeError):
        known = ", ".join(m.value for m in REGISTRY)
        raise InvalidInput(f"unknown measure {measure!r}: expected one of {known}") from None


def measure_specs(measures: Iterable[str]) -> tuple[MeasureSpec, ...]:
    """:func:`measure_spec` of each of ``measures``, in order."""
    return tuple(measure_spec(m) for m in measures)


def terms_needed(specs: Iterable[MeasureSpec]) -> frozenset[Term]:
    """Every term the ``specs`` need, :attr:`Term.common` included."""
    needs = {Term.common}
    for spec in specs:
        needs |= spec.needs
    return frozenset(needs)
