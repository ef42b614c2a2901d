"""Folding a user the model never saw into a fitted rating model, with every item's parameters fixed.

The models' objective (:mod:`chorus.training.rating.objective`, docs/models.md) restricted to one user's terms is

    L_u(β_u, γ_u) = Σ_{i∈I_u} (α + β_u + β_i + γ_u·γ_i − R_ui)² + ρᵇ(n_u) β_u² + ρᶠ(n_u) ‖γ_u‖²

(the 1/N of ``L`` does not move its minimiser), ``I_u`` the user's ratings of items the model knows and ``n_u``
their number. It is a ridge regression of ``y = R − α − β_i`` on ``[1, γ_i]``, minimised in closed form::

    (β_u, γ_u) = (XᵀX + D)⁻¹ Xᵀy,    X = [1 | Γ_I] (n_u × (1+K)),    D = diag(ρᵇ, ρᶠ, …, ρᶠ)

the same step ALS takes for every user in training (so a user's own rows fold in to what a training sweep against
the final item parameters would give). The ridges are the model's own, read from the version's manifest
(:class:`UserRidge`): ``"count"`` weighting ``ρ(n) = λ (n + c)``, ``"uniform"`` weighting ``ρ = N λ`` with ``N``
the model's training ratings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class UserRidge:
    """The penalties of a user's parameters in the model's objective, as functions of the user's rating count
    ``n`` (sum-of-squares units): ``ρᵇ(n) = bias_per_rating·n + bias_base`` and ``ρᶠ(n) = factors_per_rating·n
    + factors_base``."""

    bias_per_rating: float
    bias_base: float
    factors_per_rating: float
    factors_base: float

    @classmethod
    def of(
        cls,
        weighting: str,
        reg_bias: float,
        reg_factors: float,
        smoothing_bias: float,
        smoothing_factors: float,
        n_ratings: int,
    ) -> UserRidge:
        """The ridges of ``weighting`` (``"count"``: ``λ (n + c)``; ``"uniform"``: ``N λ``, ``N = n_ratings``).

        Raises
        ------
        ValueError : another weighting.
        """
        if weighting == "count":
            return cls(reg_bias, reg_bias * smoothing_bias, reg_factors, reg_factors * smoothing_factors)
        if weighting == "uniform":
            return cls(0.0, n_ratings * reg_bias, 0.0, n_ratings * reg_factors)
        raise ValueError(f"unknown weighting {weighting!r}")

    @classmethod
    def from_hyperparameters(cls, hyper: Mapping[str, Any], n_ratings: int, factors: bool) -> UserRidge | None:
        """The ridges a version's ``rating`` component records in its ``hyperparameters`` (``weighting``,
        ``reg_bias``, ``smoothing_bias`` and, when ``factors``, ``reg_factors``, ``smoothing_factors``); None when
        one is missing (a version written without them cannot fold users in)."""
        names = ["weighting", "reg_bias", "smoothing_bias"] + (["reg_factors", "smoothing_factors"] if factors else [])
        if any(hyper.get(name) is None for name in names):
            return None
        try:
            return cls.of(
                str(hyper["weighting"]),
                float(hyper["reg_bias"]),
                float(hyper["reg_factors"]) if factors else 0.0,
                float(hyper["smoothing_bias"]),
                float(hyper["smoothing_factors"]) if factors else 0.0,
                n_ratings,
            )
        except (TypeError, ValueError):
            return None

    def penalties(self, n: int) -> tuple[float, float]:
        """``(ρᵇ(n), ρᶠ(n))``."""
        return self.bias_per_rating * n + self.bias_base, self.factors_per_rating * n + self.factors_base


@dataclass(frozen=True)
class FoldedUser:
    """A user folded into a model: β_u, γ_u float64 (K,), and how many ratings they were solved from."""

    bias: float
    factors: np.ndarray
    n_ratings: int


def solve_user(
    targets: np.ndarray, item_factors: np.ndarray, ridge: UserRidge, n_ratings: int | None = None
) -> FoldedUser:
    """The minimiser of ``L_u`` (module docstring) for one user.

    Parameters
    ----------
    targets : numpy.ndarray
        float (n,), ``R_ui − α − β_i`` of the user's ratings.
    item_factors : numpy.ndarray
        float (n, K), ``γ_i`` of the same items (K = 0 for a model with biases only).
    ridge : UserRidge
    n_ratings : int, optional
        ``n_u`` of the ridges (default: ``n``).

    Returns
    -------
    FoldedUser
    """
    y = np.asarray(targets, dtype=np.float64)
    q = np.asarray(item_factors, dtype=np.float64).reshape(y.shape[0], -1)
    n = y.shape[0] if n_ratings is None else n_ratings
    rb, rf = ridge.penalties(n)
    x = np.hstack([np.ones((y.shape[0], 1)), q])
    a = x.T @ x + np.diag(np.concatenate([[rb], np.full(q.shape[1], rf)]))
    # lstsq rather than solve: a zero ridge with fewer ratings than parameters leaves the system singular, and its
    # minimum-norm solution is then the minimiser nearest the prior (zero)
    z = np.linalg.lstsq(a, x.T @ y, rcond=None)[0]
    return FoldedUser(float(z[0]), z[1:], int(n))
