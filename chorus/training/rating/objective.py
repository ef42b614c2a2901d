"""The regularised squared-error objective of the bias and latent factor models, and its analytic gradient.

Model (Koren, Bell & Volinsky 2009; ``u`` a user, ``i`` an item, ``R_ui`` a rating; see docs/models.md)::

    f(u, i) = α + β_u + β_i + γ_u · γ_i          γ_u, γ_i ∈ R^K

``K = 0`` is the bias-only model. Objective, over the N training ratings::

    L = (1/N) Σ_(u,i) (f(u,i) − R_ui)²
        + (1/N) Σ_u [ρᵇ_u β_u² + ρᶠ_u ‖γ_u‖²] + (1/N) Σ_i [ρᵇ_i β_i² + ρᶠ_i ‖γ_i‖²]

where ``ρ`` is a per-row ridge in sum-of-squares units, set by
:attr:`~chorus.training.rating.config.LatentConfig.weighting`:

* ``"uniform"``: ``ρᵇ = N·λ_b`` and ``ρᶠ = N·λ_f`` for every row, so that
  ``L = (1/N) Σ (f − R)² + λ_b (Σβ_u² + Σβ_i²) + λ_f (Σ‖γ_u‖² + Σ‖γ_i‖²)``: with ``λ_b = λ_f = λ`` the objective
  of Koren, Bell & Volinsky 2009, divided by N.
* ``"count"`` (the default, the "weighted-λ" regularisation of Zhou, Wilkinson, Schreiber & Pan 2008 with
  pseudo-counts): ``ρᵇ_u = λ_b (n_u + c_b)`` and ``ρᶠ_u = λ_f (n_u + c_f)``, ``n_u`` the user's number of
  training ratings (items alike). A row's penalty grows with its data, so every rating is regularised alike; the
  pseudo-count ``c`` keeps rows with few ratings from going unregularised (the "smoothed weighted trace norm" of
  Foygel, Salakhutdinov, Shamir & Srebro 2011).

Every trainer minimises this ``L``: :mod:`~chorus.training.rating.als` (alternating least squares, the default),
:mod:`~chorus.training.rating.lbfgs` (L-BFGS on :func:`objective_and_gradient`) and, for K = 0, the exact solver
of :mod:`~chorus.training.rating.baseline`. Initialisation (:func:`init_params`): α = mean rating, β = 0,
γ ~ Normal(0, ``init_scale``²) drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.models import REGISTRY, RatingModel
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset, popular_items, rating_counts


def ridges(counts: np.ndarray, n_ratings: int, config: LatentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ridges ``(ρᵇ, ρᶠ)`` in sum-of-squares units (see the module docstring for the two weightings).

    Parameters
    ----------
    counts : numpy.ndarray
        int (n_rows,), training ratings per row.
    n_ratings : int
        N.

    Returns
    -------
    tuple of numpy.ndarray
        float64 (n_rows,) each.
    """
    if config.weighting == "uniform":
        shape = counts.shape
        return (np.full(shape, n_ratings * config.reg_bias), np.full(shape, n_ratings * config.reg_factors))
    c = counts.astype(np.float64)
    return config.reg_bias * (c + config.smoothing_bias), config.reg_factors * (c + config.smoothing_factors)


@dataclass
class Params:
    """Model parameters in float64, what the trainers work on.

    Attributes
    ----------
    alpha : float
        α.
    bu, bi : numpy.ndarray
        float64 (n_users,), (n_items,): β_u, β_i.
    pu, qi : numpy.ndarray
        float64 (n_users, K), (n_items, K): γ_u, γ_i.
    """

    alpha: float
    bu: np.ndarray
    bi: np.ndarray
    pu: np.ndarray
    qi: np.ndarray

    def pack(self) -> np.ndarray:
        """One float64 vector (1 + n_users + n_items + (n_users + n_items)·K,): α, β_u, β_i, γ_u, γ_i."""
        return np.concatenate([[self.alpha], self.bu, self.bi, self.pu.ravel(), self.qi.ravel()])

    @classmethod
    def unpack(cls, theta: np.ndarray, n_users: int, n_items: int, k: int) -> Params:
        """The inverse of :meth:`pack` (views into ``theta``)."""
        a, b, c, d = 1, 1 + n_users, 1 + n_users + n_items, 1 + n_users + n_items + n_users * k
        return cls(
            float(theta[0]), theta[a:b], theta[b:c], theta[c:d].reshape(n_users, k), theta[d:].reshape(n_items, k)
        )

    def copy(self) -> Params:
        return Params(self.alpha, self.bu.copy(), self.bi.copy(), self.pu.copy(), self.qi.copy())

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Unclipped f(u, i): float64 (n,) for ``users, items`` int (n,)."""
        f = self.alpha + self.bu[users] + self.bi[items]
        if self.pu.shape[1]:
            f += np.einsum("nk,nk->n", self.pu[users], self.qi[items])
        out: np.ndarray = f
        return out

    def to_model(self, kind: str, data: Trainset) -> RatingModel:
        """The served model of ``kind`` with these parameters in float32, and the counts, the popular items and
        the scale of the training ratings."""
        user_count, item_count = rating_counts(data.user, data.item, data.n_users, data.n_items)
        arrays: dict[str, np.ndarray] = {
            "global_mean": np.array([self.alpha], dtype=np.float64),
            "user_bias": np.asarray(self.bu, np.float32),
            "item_bias": np.asarray(self.bi, np.float32),
            "user_factors": np.ascontiguousarray(self.pu, np.float32),
            "item_factors": np.ascontiguousarray(self.qi, np.float32),
            "user_count": user_count,
            "item_count": item_count,
            "popular_items": popular_items(data.item, data.rating, data.n_items, data.low, data.high),
        }
        return REGISTRY[kind].from_arrays(arrays, {"scale": {"low": float(data.low), "high": float(data.high)}})


def init_params(n_users: int, n_items: int, k: int, alpha: float, scale: float, rng: np.random.Generator) -> Params:
    """α = ``alpha`` (the mean rating), β = 0, γ ~ Normal(0, scale²) drawn from ``rng``, (n_users, K) then
    (n_items, K)."""
    return Params(
        float(alpha),
        np.zeros(n_users),
        np.zeros(n_items),
        rng.normal(0.0, scale, (n_users, k)),
        rng.normal(0.0, scale, (n_items, k)),
    )


class Problem:
    """Training ratings with the ridges and the sparse layouts the objective and its gradient need."""

    def __init__(self, data: Trainset, config: LatentConfig) -> None:
        user, item, n_users, n_items = data.user, data.item, data.n_users, data.n_items
        self.user, self.item, self.rating = user, item, data.rating
        self.n, self.n_users, self.n_items, self.k = data.n, n_users, n_items, config.n_factors
        self.user_count, self.item_count = rating_counts(user, item, n_users, n_items)
        self.rb_u, self.rf_u = ridges(self.user_count, self.n, config)
        self.rb_i, self.rf_i = ridges(self.item_count, self.n, config)
        self._layout: tuple[np.ndarray, ...] | None = None

    def layout(self) -> tuple[np.ndarray, ...]:
        """CSR layouts (user×item and item×user) of the ratings, built on first use (the gradient needs
        them, ALS does not); only the data (residuals) changes per evaluation."""
        if self._layout is None:
            by_user = np.argsort(self.user, kind="stable")
            by_item = np.argsort(self.item, kind="stable")
            self._layout = (
                by_user,
                self.item[by_user],
                np.concatenate([[0], np.cumsum(self.user_count)]),
                by_item,
                self.user[by_item],
                np.concatenate([[0], np.cumsum(self.item_count)]),
            )
        return self._layout

    def residual(self, p: Params) -> np.ndarray:
        """f − R per rating: float64 (n,)."""
        residual: np.ndarray = p.scores(self.user, self.item) - self.rating
        return residual

    def penalty(self, p: Params) -> float:
        """The ridge terms of ``L``."""
        return (
            float(
                self.rb_u @ p.bu**2 + self.rb_i @ p.bi**2 + self.rf_u @ (p.pu**2).sum(1) + self.rf_i @ (p.qi**2).sum(1)
            )
            / self.n
        )

    def value(self, p: Params) -> float:
        """``L`` at ``p``."""
        e = self.residual(p)
        return float(e @ e) / self.n + self.penalty(p)

    def value_and_grad(self, p: Params) -> tuple[float, Params]:
        """``L`` at ``p`` and its gradient (see :func:`objective_and_gradient`)."""
        e = self.residual(p)
        s = 2.0 / self.n
        value = float(e @ e) / self.n + self.penalty(p)
        gbu = s * (np.bincount(self.user, weights=e, minlength=self.n_users) + self.rb_u * p.bu)
        gbi = s * (np.bincount(self.item, weights=e, minlength=self.n_items) + self.rb_i * p.bi)
        if self.k:
            by_user, u_indices, u_indptr, by_item, i_indices, i_indptr = self.layout()
            eu = sp.csr_array((e[by_user], u_indices, u_indptr), shape=(self.n_users, self.n_items))
            ei = sp.csr_array((e[by_item], i_indices, i_indptr), shape=(self.n_items, self.n_users))
            gpu = s * (eu @ p.qi + self.rf_u[:, None] * p.pu)
            gqi = s * (ei @ p.pu + self.rf_i[:, None] * p.qi)
        else:
            gpu, gqi = np.zeros_like(p.pu), np.zeros_like(p.qi)
        return value, Params(s * float(e.sum()), gbu, gbi, gpu, gqi)


def objective(params: Params, data: Trainset, config: LatentConfig) -> float:
    """``L`` of the module docstring at ``params``. The ridges depend on ``config`` (weighting, λ, pseudo-counts)
    and on the counts in the data."""
    return Problem(data, replace(config, n_factors=params.pu.shape[1])).value(params)


def objective_and_gradient(params: Params, data: Trainset, config: LatentConfig) -> tuple[float, Params]:
    """``L`` and its analytic gradient (as a :class:`Params` of the same shapes)::

        ∂L/∂α   = (2/N) Σ e                       e = f − R per rating
        ∂L/∂β_u = (2/N) (Σ_{i∈I_u} e_ui + ρᵇ_u β_u)
        ∂L/∂γ_u = (2/N) (Σ_{i∈I_u} e_ui γ_i + ρᶠ_u γ_u)     (items alike)

    The sums over ratings are ``bincount`` and sparse matrix × dense products.
    """
    return Problem(data, replace(config, n_factors=params.pu.shape[1])).value_and_grad(params)
