"""Numerical core of the rating service: global mean, bias-only and latent factor models.

Model (issue 4; ``u`` a user, ``i`` an item, ``R_ui`` a rating)::

    f(u, i) = α + β_u + β_i + γ_u · γ_i          γ_u, γ_i ∈ R^K

``K = 0`` is the bias-only model; α alone (all else zero) is the global-mean model.

Objective (the course's, with two documented generalisations)::

    L = (1/N) Σ_(u,i) (f(u,i) − R_ui)²
        + (1/N) Σ_u [ρᵇ_u β_u² + ρᶠ_u ‖γ_u‖²] + (1/N) Σ_i [ρᵇ_i β_i² + ρᶠ_i ‖γ_i‖²]

where ``ρ`` is a per-row ridge in sum-of-squares units, set by :class:`LatentConfig.weighting`:

* ``"uniform"`` (the course): ``ρᵇ = N·λ_b`` and ``ρᶠ = N·λ_f`` for every row, so that
  ``L = (1/N) Σ (f − R)² + λ_b (Σβ_u² + Σβ_i²) + λ_f (Σ‖γ_u‖² + Σ‖γ_i‖²)``, which with ``λ_b = λ_f = λ`` is
  exactly the course objective.
* ``"count"`` (the default, "weighted-λ" of Zhou et al. 2008 with pseudo-counts): ``ρᵇ_u = λ_b (n_u + c_b)``
  and ``ρᶠ_u = λ_f (n_u + c_f)``, ``n_u`` the user's number of training ratings (items alike). A row's
  penalty grows with its data, so every rating is regularised alike; the pseudo-count ``c`` keeps rows with
  few ratings from going unregularised (the "smoothed weighted trace norm" of Foygel et al. 2011).

Both trainers minimise the same ``L`` (:func:`objective`):

* :func:`fit_als`: alternating least squares, the fast default. A half-sweep solves, for every user at
  once, the ridge regression of ``R − α − β_i`` on ``[1, γ_i]`` (so ``β_u`` and ``γ_u`` jointly), then α in
  closed form; then the same for items. Each step minimises ``L`` exactly over its block, so ``L`` never
  increases. Users are grouped into buckets of similar rating counts, padded, and solved with batched
  ``numpy.linalg.solve`` (the primal ``(K+1)×(K+1)`` system, or the equivalent ``n_u×n_u`` dual system when
  the user has fewer ratings than that), so there is no Python loop over users, items or ratings.
* :func:`fit_lbfgs`: ``scipy.optimize`` L-BFGS on ``L`` with the analytic gradient
  (:func:`objective_and_gradient`, sparse products, no loop over ratings).

Initialisation as in the course: α = mean rating, β = 0, γ ~ Normal(0, ``init_scale``²) drawn from
``numpy.random.default_rng(seed)``; ``restarts`` > 1 keeps the run with the best validation error (or the
lowest objective when no validation set is given).

Prediction clips to the rating scale; an unknown user or item falls back (:data:`FALLBACKS`). A user or item
is unknown when its index is -1 or when it had no training rating.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np
import scipy.optimize
import scipy.sparse as sp
import scipy.sparse.linalg
from chorus.shared.errors import InvalidInput, NotFound

#: ``fallback`` codes of :meth:`RatingModel.predict`, indexed by the int8 code.
FALLBACKS: tuple[str | None, ...] = (None, "item_bias", "user_bias", "global_mean")
NO_FALLBACK, ITEM_BIAS, USER_BIAS, GLOBAL_MEAN = 0, 1, 2, 3
#: ``fallback`` of :meth:`RatingModel.recommend` for an unknown user.
POPULAR = "popular"

#: Buckets of owners (users or items) whose rating counts differ by at most this factor share one padded
#: batch: smaller means less padding, larger means fewer (Python-level) batches.
BUCKET_RATIO = 1.25


# --- configuration ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentConfig:
    """Hyperparameters of a bias or latent factor model and of its trainer (defaults tuned on MovieLens 100K
    validation splits; see ``bench/rating.py``).

    Attributes
    ----------
    n_factors : K, the length of γ; 0 gives the bias-only model.
    reg_bias : λ_b, ridge of the biases.
    reg_factors : λ_f, ridge of the factors.
    weighting : ``"count"`` (ridge λ·(n + c) per row, the default) or ``"uniform"`` (the course's λ·Σ‖·‖²);
        see the module docstring.
    smoothing_bias, smoothing_factors : the pseudo-counts c_b, c_f of ``"count"`` weighting (ignored by
        ``"uniform"``).
    init_scale : standard deviation of the initial γ. Small: early sweeps then grow the strongest
        directions first, and early stopping on validation acts as extra regularisation.
    max_sweeps : ALS sweeps (one over users, one over items); with a validation set, the most run.
    patience : with a validation set, stop after this many sweeps without a better validation RMSE and keep
        the best sweep's parameters.
    restarts : independent initialisations; the best is kept.
    seed : seed of ``numpy.random.default_rng`` for the initial γ.
    dtype : ``"float32"`` (fast) or ``"float64"`` for the ALS arithmetic; L-BFGS always uses float64.
    """

    n_factors: int = 50
    reg_bias: float = 0.02
    reg_factors: float = 0.045
    weighting: Literal["count", "uniform"] = "count"
    smoothing_bias: float = 50.0
    smoothing_factors: float = 100.0
    init_scale: float = 0.001
    max_sweeps: int = 15
    patience: int = 2
    restarts: int = 1
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        if self.n_factors < 0:
            raise InvalidInput(f"n_factors must be >= 0, got {self.n_factors}")
        if self.reg_bias < 0 or self.reg_factors < 0 or self.smoothing_bias < 0 or self.smoothing_factors < 0:
            raise InvalidInput("regularisation strengths and pseudo-counts must be >= 0")
        if self.weighting not in ("count", "uniform"):
            raise InvalidInput(f"weighting must be 'count' or 'uniform', got {self.weighting!r}")
        if self.max_sweeps < 0 or self.patience < 1 or self.restarts < 1:
            raise InvalidInput("max_sweeps must be >= 0, patience and restarts >= 1")
        if self.dtype not in ("float32", "float64"):
            raise InvalidInput(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def ridges(counts: np.ndarray, n_ratings: int, config: LatentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ridge ``(ρᵇ, ρᶠ)`` in sum-of-squares units, each float64 (n_rows,).

    ``counts``: int (n_rows,), training ratings per row. See the module docstring for the two weightings.
    """
    if config.weighting == "uniform":
        shape = counts.shape
        return (np.full(shape, n_ratings * config.reg_bias), np.full(shape, n_ratings * config.reg_factors))
    c = counts.astype(np.float64)
    return config.reg_bias * (c + config.smoothing_bias), config.reg_factors * (c + config.smoothing_factors)


# --- the model ----------------------------------------------------------------------------------------------


class Predictions(NamedTuple):
    """Result of :meth:`RatingModel.predict`: float64 ``rating`` (clipped) and int8 ``fallback`` codes
    (indices into :data:`FALLBACKS`), both (n,)."""

    rating: np.ndarray
    fallback: np.ndarray


class Recommendations(NamedTuple):
    """Result of :meth:`RatingModel.recommend`: int64 ``items`` and float64 ``ratings`` (predicted, clipped),
    both (k',) with k' ≤ k, best first; ``fallback`` is None or :data:`POPULAR`."""

    items: np.ndarray
    ratings: np.ndarray
    fallback: str | None


@dataclass
class RatingModel:
    """A fitted global-mean, bias-only or latent factor model.

    Attributes
    ----------
    global_mean : α.
    user_bias, item_bias : float32 (n_users,), (n_items,)
    user_factors, item_factors : float32 (n_users, K), (n_items, K); K = 0 for the bias and mean models.
    user_count, item_count : int32 (n_users,), (n_items,); training ratings per row. A row with count 0 is
        unknown to the model (it falls back like index -1).
    popular_items : int32 (m,); the ranking served to unknown users (:func:`popular_items`).
    low, high : the rating scale; predictions are clipped to it.
    kind : ``"mean"``, ``"bias"`` or ``"latent"``.
    """

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    user_count: np.ndarray
    item_count: np.ndarray
    popular_items: np.ndarray
    low: float
    high: float
    kind: str = "latent"

    @property
    def n_users(self) -> int:
        return int(self.user_bias.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_bias.shape[0])

    @property
    def n_factors(self) -> int:
        return int(self.user_factors.shape[1])

    def _check(self, idx: np.ndarray, n: int, what: str) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise InvalidInput(f"{what} indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < -1 or idx.max() >= n):
            bad = idx[(idx < -1) | (idx >= n)][0]
            raise NotFound(f"{what} index {bad} is outside 0..{n - 1} (use -1 for an unknown {what})")
        return idx

    def known_users(self, users: np.ndarray) -> np.ndarray:
        """bool (n,): the user index is not -1 and the user had training ratings."""
        users = self._check(users, self.n_users, "user")
        return (users >= 0) & (self.user_count[np.maximum(users, 0)] > 0)

    def known_items(self, items: np.ndarray) -> np.ndarray:
        """bool (n,): the item index is not -1 and the item had training ratings."""
        items = self._check(items, self.n_items, "item")
        return (items >= 0) & (self.item_count[np.maximum(items, 0)] > 0)

    def raw_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Unclipped f(u, i) for known pairs: float64 (n,). ``users, items``: int (n,), valid indices."""
        score = self.global_mean + self.user_bias[users].astype(np.float64) + self.item_bias[items]
        if self.n_factors:
            score += np.einsum("nk,nk->n", self.user_factors[users], self.item_factors[items])
        return score

    def predict(self, users: np.ndarray, items: np.ndarray) -> Predictions:
        """Predicted ratings for pairs, clipped to ``[low, high]``, vectorised.

        Parameters
        ----------
        users, items : int (n,)
            Dense indices; -1 marks an unknown user or item.

        Returns
        -------
        Predictions
            ``rating`` float64 (n,) and ``fallback`` int8 (n,): 0 known pair (full model), 1 ``"item_bias"``
            (unknown user: α + β_i), 2 ``"user_bias"`` (unknown item: α + β_u), 3 ``"global_mean"`` (both
            unknown: α).

        Raises
        ------
        NotFound : an index below -1 or beyond the last user/item.
        """
        users = np.atleast_1d(self._check(users, self.n_users, "user"))
        items = np.atleast_1d(self._check(items, self.n_items, "item"))
        if users.shape != items.shape:
            raise InvalidInput(f"users and items must have the same shape, got {users.shape} and {items.shape}")
        ku, ki = self.known_users(users), self.known_items(items)
        u, i = np.where(ku, users, 0), np.where(ki, items, 0)
        score = self.global_mean + np.where(ku, self.user_bias[u], 0.0) + np.where(ki, self.item_bias[i], 0.0)
        both = ku & ki
        if self.n_factors and both.any():
            score[both] += np.einsum("nk,nk->n", self.user_factors[u[both]], self.item_factors[i[both]])
        fallback = np.where(both, NO_FALLBACK, np.where(ki, ITEM_BIAS, np.where(ku, USER_BIAS, GLOBAL_MEAN)))
        return Predictions(np.clip(score, self.low, self.high), fallback.astype(np.int8))

    def predict_one(self, user: int, item: int) -> tuple[float, str | None]:
        """One prediction and its fallback name (None, ``"item_bias"``, ``"user_bias"``, ``"global_mean"``)."""
        p = self.predict(np.array([user]), np.array([item]))
        return float(p.rating[0]), FALLBACKS[int(p.fallback[0])]

    def recommend(self, user: int, k: int = 10, exclude: np.ndarray | None = None) -> Recommendations:
        """The ``k`` items with the highest predicted rating that are not in ``exclude``.

        Parameters
        ----------
        user : a user index, or -1 for an unknown user.
        k : how many items (fewer when fewer remain).
        exclude : int (m,), items never to return: the user's reviewed items (a row of the user×item CSR).

        Every item is scored in one vectorised pass; the top ``k`` are found with ``argpartition`` and ranked
        by the unclipped score (clipping would tie everything above ``high``), ties by item index. An unknown
        user gets :attr:`popular_items` in order, with ``fallback = "popular"`` and α + β_i as the rating.
        """
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
        user = int(self._check(np.array([user]), self.n_users, "user")[0])
        banned = np.zeros(self.n_items, dtype=bool)
        if exclude is not None and len(exclude):
            banned[self._check(np.asarray(exclude).ravel(), self.n_items, "item")] = True
        if not self.known_users(np.array([user]))[0]:
            cand = self.popular_items[~banned[self.popular_items]][:k].astype(np.int64)
            score = self.global_mean + self.item_bias[cand].astype(np.float64)
            return Recommendations(cand, np.clip(score, self.low, self.high), POPULAR)
        score = self.global_mean + self.user_bias[user] + self.item_bias.astype(np.float64)
        if self.n_factors:
            score += self.item_factors @ self.user_factors[user]
        # Items the model never saw in training carry no evidence: they are not recommended to known users.
        banned |= self.item_count == 0
        score[banned] = -np.inf
        n_ok = self.n_items - int(banned.sum())
        k = min(k, n_ok)
        if k == 0:
            return Recommendations(np.zeros(0, np.int64), np.zeros(0), None)
        top = np.argpartition(-score, k - 1)[:k] if k < self.n_items else np.arange(self.n_items)
        top = top[np.lexsort((top, -score[top]))]
        return Recommendations(top.astype(np.int64), np.clip(score[top], self.low, self.high), None)


def popular_items(
    item: np.ndarray, rating: np.ndarray, n_items: int, low: float, high: float, threshold: float | None = None
) -> np.ndarray:
    """The fallback ranking for unknown users: the most reviewed among the well-rated items.

    Rule: items whose mean rating is at least ``threshold`` (default ``low + 0.75·(high − low)``, 4 on a 1–5
    scale) come first, by number of ratings (descending), then mean (descending), then index; the remaining
    rated items follow in the same order. Items without ratings are left out.

    ``item``: int (n,), ``rating``: float (n,). Returns int32 (m,), m = number of rated items.
    """
    if threshold is None:
        threshold = low + 0.75 * (high - low)
    count = np.bincount(item, minlength=n_items)
    total = np.bincount(item, weights=rating, minlength=n_items)
    mean = np.divide(total, count, out=np.zeros(n_items), where=count > 0)
    rated = np.flatnonzero(count > 0)
    well = mean[rated] >= threshold - 1e-9
    order = np.lexsort((rated, -mean[rated], -count[rated], ~well))
    return rated[order].astype(np.int32)


def reviewed_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> sp.csr_array:
    """The user×item CSR pattern of reviews (int8 ones, duplicates summed). The items user ``u`` reviewed,
    what :meth:`RatingModel.recommend` takes as ``exclude``, are ``m.indices[m.indptr[u]:m.indptr[u + 1]]``."""
    m = sp.csr_array((np.ones(len(user), np.int8), (np.asarray(user), np.asarray(item))), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def _counts(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.bincount(user, minlength=n_users).astype(np.int32),
        np.bincount(item, minlength=n_items).astype(np.int32),
    )


def _check_data(user, item, rating, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    rating = np.asarray(rating, dtype=np.float64)
    if not (user.shape == item.shape == rating.shape) or user.ndim != 1:
        raise InvalidInput("user, item and rating must be 1-d arrays of the same length")
    if user.size == 0:
        raise InvalidInput("cannot fit a rating model to zero ratings")
    if user.min() < 0 or user.max() >= n_users or item.min() < 0 or item.max() >= n_items:
        raise InvalidInput("user/item indices must lie in 0..n_users-1 / 0..n_items-1")
    return user, item, rating


def _model(alpha: float, bu, bi, pu, qi, user, item, rating, n_users, n_items, low, high, kind) -> RatingModel:
    uc, ic = _counts(user, item, n_users, n_items)
    return RatingModel(
        global_mean=float(alpha),
        user_bias=np.asarray(bu, np.float32),
        item_bias=np.asarray(bi, np.float32),
        user_factors=np.ascontiguousarray(pu, np.float32),
        item_factors=np.ascontiguousarray(qi, np.float32),
        user_count=uc,
        item_count=ic,
        popular_items=popular_items(item, rating, n_items, low, high),
        low=float(low),
        high=float(high),
        kind=kind,
    )


def fit_mean(user, item, rating, n_users: int, n_items: int, low: float, high: float) -> RatingModel:
    """The global-mean model: f(u, i) = mean training rating. Arrays: int (n,), int (n,), float (n,)."""
    user, item, rating = _check_data(user, item, rating, n_users, n_items)
    return _model(
        rating.mean(),
        np.zeros(n_users),
        np.zeros(n_items),
        np.zeros((n_users, 0)),
        np.zeros((n_items, 0)),
        user,
        item,
        rating,
        n_users,
        n_items,
        low,
        high,
        "mean",
    )


# --- objective and gradient ---------------------------------------------------------------------------------


@dataclass
class Params:
    """Model parameters in float64 (what the trainers work on): α, β_u (n_users,), β_i (n_items,),
    γ_u (n_users, K), γ_i (n_items, K)."""

    alpha: float
    bu: np.ndarray
    bi: np.ndarray
    pu: np.ndarray
    qi: np.ndarray

    def pack(self) -> np.ndarray:
        return np.concatenate([[self.alpha], self.bu, self.bi, self.pu.ravel(), self.qi.ravel()])

    @classmethod
    def unpack(cls, theta: np.ndarray, n_users: int, n_items: int, k: int) -> Params:
        a, b, c, d = 1, 1 + n_users, 1 + n_users + n_items, 1 + n_users + n_items + n_users * k
        return cls(
            float(theta[0]), theta[a:b], theta[b:c], theta[c:d].reshape(n_users, k), theta[d:].reshape(n_items, k)
        )

    def copy(self) -> Params:
        return Params(self.alpha, self.bu.copy(), self.bi.copy(), self.pu.copy(), self.qi.copy())

    @classmethod
    def from_model(cls, model: RatingModel) -> Params:
        f = np.float64
        return cls(
            model.global_mean,
            model.user_bias.astype(f),
            model.item_bias.astype(f),
            model.user_factors.astype(f),
            model.item_factors.astype(f),
        )


def init_params(n_users: int, n_items: int, k: int, alpha: float, scale: float, rng: np.random.Generator) -> Params:
    """The course's initialisation: α = ``alpha`` (the mean), β = 0, γ ~ Normal(0, scale²) from ``rng``."""
    return Params(
        float(alpha),
        np.zeros(n_users),
        np.zeros(n_items),
        rng.normal(0.0, scale, (n_users, k)),
        rng.normal(0.0, scale, (n_items, k)),
    )


class _Problem:
    """Training ratings with the sparse layouts and ridges the objective and its gradient need."""

    def __init__(self, user, item, rating, n_users: int, n_items: int, config: LatentConfig) -> None:
        self.user, self.item, self.rating = user, item, rating
        self.n, self.n_users, self.n_items, self.k = user.shape[0], n_users, n_items, config.n_factors
        self.user_count, self.item_count = _counts(user, item, n_users, n_items)
        self.rb_u, self.rf_u = ridges(self.user_count, self.n, config)
        self.rb_i, self.rf_i = ridges(self.item_count, self.n, config)
        self._layout: tuple | None = None

    def layout(self) -> tuple:
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
        f = p.alpha + p.bu[self.user] + p.bi[self.item]
        if self.k:
            f += np.einsum("nk,nk->n", p.pu[self.user], p.qi[self.item])
        return f - self.rating

    def penalty(self, p: Params) -> float:
        return (
            float(
                self.rb_u @ p.bu**2 + self.rb_i @ p.bi**2 + self.rf_u @ (p.pu**2).sum(1) + self.rf_i @ (p.qi**2).sum(1)
            )
            / self.n
        )

    def value(self, p: Params) -> float:
        e = self.residual(p)
        return float(e @ e) / self.n + self.penalty(p)

    def value_and_grad(self, p: Params) -> tuple[float, Params]:
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


def objective(params: Params, user, item, rating, n_users: int, n_items: int, config: LatentConfig) -> float:
    """``L`` of the module docstring at ``params`` (float64), for training arrays int (n,), int (n,),
    float (n,). The ridges depend on ``config`` (weighting, λ, pseudo-counts) and on the counts in the data."""
    user, item, rating = _check_data(user, item, rating, n_users, n_items)
    return _Problem(user, item, rating, n_users, n_items, replace(config, n_factors=params.pu.shape[1])).value(params)


def objective_and_gradient(
    params: Params, user, item, rating, n_users: int, n_items: int, config: LatentConfig
) -> tuple[float, Params]:
    """``L`` and its analytic gradient (as a :class:`Params` of the same shapes)::

        ∂L/∂α   = (2/N) Σ e                       e = f − R per rating
        ∂L/∂β_u = (2/N) (Σ_{i∈I_u} e_ui + ρᵇ_u β_u)
        ∂L/∂γ_u = (2/N) (Σ_{i∈I_u} e_ui γ_i + ρᶠ_u γ_u)     (items alike)

    The sums over ratings are ``bincount`` and sparse matrix × dense products.
    """
    user, item, rating = _check_data(user, item, rating, n_users, n_items)
    cfg = replace(config, n_factors=params.pu.shape[1])
    return _Problem(user, item, rating, n_users, n_items, cfg).value_and_grad(params)


# --- ALS ----------------------------------------------------------------------------------------------------


class _Side:
    """The ratings of one side (users or items) grouped by owner into padded batches of similar length.

    Each batch holds ``owners`` int64 (b,), ``rows`` int64 (b, L) rating indices and ``others`` int64 (b, L)
    indices of the other side; padding points at the sentinels ``n`` (rating) and ``n_other`` (other side).
    Batches wider than :func:`gram_chunk` rows are padded to a multiple of it.
    """

    def __init__(self, owner: np.ndarray, other: np.ndarray, n_owner: int, n_other: int, k: int) -> None:
        n = owner.shape[0]
        self.n_owner, self.n_other, self.k = n_owner, n_other, k
        self.chunk = gram_chunk(k)
        self.count = np.bincount(owner, minlength=n_owner)
        order = np.argsort(owner, kind="stable")
        start = np.concatenate([[0], np.cumsum(self.count)[:-1]])
        owners = np.flatnonzero(self.count)
        length = self.count[owners]
        edges = [1]
        while edges[-1] < (length.max() if length.size else 1):
            edges.append(max(edges[-1] + 1, int(np.ceil(edges[-1] * BUCKET_RATIO))))
        bucket = np.searchsorted(edges, length)
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for b in np.unique(bucket):
            ow = owners[bucket == b]
            width = int(self.count[ow].max())
            if width > max(k + 1, self.chunk):
                width = -(-width // self.chunk) * self.chunk
            j = np.arange(width)
            valid = j[None, :] < self.count[ow][:, None]
            pos = np.where(valid, start[ow][:, None] + j[None, :], 0)
            rows = np.where(valid, order[pos], n)
            others = np.where(valid, other[order[pos]], n_other)
            self.batches.append((ow, rows, others))

    def solve(
        self, y: np.ndarray, other_factors: np.ndarray, ridge_b: np.ndarray, ridge_f: np.ndarray, dtype
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Ridge-regress ``y`` on ``[1, γ_other]`` for every owner at once.

        ``y``: float (n,) targets R − α − β_other; ``other_factors``: (n_other, K); ridges float64
        (n_owner,). Returns β (n_owner,), γ (n_owner, K) in float64 and Σ over ratings of β_owner +
        γ_owner·γ_other (for the α update). Owners without ratings get 0 (their penalty's minimum).
        """
        k = other_factors.shape[1]
        x = np.zeros((self.n_other + 1, k + 1), dtype)
        x[:-1, 0] = 1.0
        x[:-1, 1:] = other_factors
        y_pad = np.append(y, 0.0).astype(dtype)
        out = np.zeros((self.n_owner, k + 1))
        fitted = 0.0
        for ow, rows, others in self.batches:
            xb = x[others]  # (b, L, K+1)
            yb = y_pad[rows]  # (b, L)
            reg = np.empty((ow.shape[0], k + 1), dtype)
            reg[:, 0] = ridge_b[ow]
            reg[:, 1:] = ridge_f[ow][:, None]
            width = rows.shape[1]
            if width > k + 1:
                # primal: (XᵀX + diag ρ) w = Xᵀy, a (K+1)² system per owner; XᵀX summed over row chunks
                if width > self.chunk:
                    xc = xb.reshape(-1, self.chunk, k + 1)
                    a = np.matmul(xc.transpose(0, 2, 1), xc).reshape(ow.shape[0], -1, k + 1, k + 1).sum(axis=1)
                else:
                    a = np.matmul(xb.transpose(0, 2, 1), xb)
                sums = a[:, :, 0].astype(np.float64)  # Σ over the owner's ratings of [1, γ_other]
                d = np.arange(k + 1)
                a[:, d, d] += reg
                w = np.linalg.solve(a, np.matmul(yb[:, None, :], xb).transpose(0, 2, 1))[..., 0]
            else:
                # dual (push-through identity): w = ρ⁻¹Xᵀ (Xρ⁻¹Xᵀ + I)⁻¹ y, an L² system per owner;
                # padded rows of X are zero, so their dual variables are 0.
                xr = xb / reg[:, None, :]
                g = np.matmul(xr, xb.transpose(0, 2, 1))
                d = np.arange(width)
                g[:, d, d] += 1.0
                w = np.matmul(xr.transpose(0, 2, 1), np.linalg.solve(g, yb[..., None]))[..., 0]
                sums = xb.sum(axis=1).astype(np.float64)
            out[ow] = w
            fitted += float(np.einsum("bk,bk->", w.astype(np.float64), sums))
        return out[:, 0], out[:, 1:], fitted


def gram_chunk(k: int) -> int:
    """Rows per Gram product ``XᵀX`` in ALS: the largest count keeping each ``(K+1)×rows×(K+1)`` product
    below OpenBLAS's threshold for multithreading (2¹⁸ multiply-adds). Thousands of tiny products each
    handing work to a second thread cost more than they gain, and on a shared machine, whose other core is
    busy, each hand-off can stall; single-threaded small products run at a steady speed."""
    return max(8, (1 << 18) // (k + 1) ** 2 - 1)


def _solve_biases(owner: np.ndarray, y: np.ndarray, n_owner: int, ridge_b: np.ndarray) -> tuple[np.ndarray, float]:
    """K = 0 half-sweep: β = Σ y / (n + ρᵇ) per owner; and Σ over ratings of β_owner."""
    count = np.bincount(owner, minlength=n_owner)
    total = np.bincount(owner, weights=y, minlength=n_owner)
    denom = count + ridge_b
    beta = np.divide(total, denom, out=np.zeros(n_owner), where=denom > 0)
    return beta, float(count @ beta)


@dataclass
class FitInfo:
    """What a trainer did: sweeps run (ALS) or iterations (L-BFGS), the best sweep by validation RMSE,
    per-sweep validation RMSE and training objective (when tracked), final objective and seconds."""

    trainer: str
    sweeps: int = 0
    best_sweep: int = 0
    validation_rmse: list[float] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    best_validation_rmse: float | None = None
    final_objective: float | None = None
    seconds: float = 0.0
    restart: int = 0


def _rmse(p: Params, users, items, ratings, low, high) -> float:
    f = p.alpha + p.bu[users] + p.bi[items]
    if p.pu.shape[1]:
        f = f + np.einsum("nk,nk->n", p.pu[users], p.qi[items])
    return float(np.sqrt(np.mean((np.clip(f, low, high) - ratings) ** 2)))


def als_sweeps(
    prob: _Problem,
    params: Params,
    sides: tuple[_Side, _Side] | None,
    config: LatentConfig,
    n_sweeps: int,
    validation=None,
    low: float = -np.inf,
    high: float = np.inf,
    track_objective: bool = False,
    callback=None,
) -> tuple[Params, FitInfo]:
    """Run up to ``n_sweeps`` ALS sweeps from ``params`` (updated in place) on ``prob``.

    Each sweep: users' (β_u, γ_u) jointly, then α, then items' (β_i, γ_i), then α; every step an exact
    minimisation of ``L`` over its block. With ``validation = (users, items, ratings)`` the clipped RMSE is
    tracked per sweep and the best sweep's parameters are returned (early stopping with ``config.patience``).
    ``callback(step_name, params)`` (tests) is called after every block update.
    """
    dtype = np.dtype(config.dtype)
    k = params.pu.shape[1]
    user, item, rating, n = prob.user, prob.item, prob.rating, prob.n
    sum_r = float(rating.sum())
    info = FitInfo(trainer="als")
    best = params.copy() if validation is not None else None
    best_rmse = np.inf
    if validation is not None:
        best_rmse = _rmse(params, *validation, low, high)
    for sweep in range(1, n_sweeps + 1):
        # users
        y = rating - params.alpha - params.bi[item]
        if k:
            params.bu, params.pu, fitted = sides[0].solve(y, params.qi, prob.rb_u, prob.rf_u, dtype)
        else:
            params.bu, fitted = _solve_biases(user, y, prob.n_users, prob.rb_u)
        if callback:
            callback("users", params)
        # α minimises L given the rest: the mean of R − β_u − β_i − γ_u·γ_i
        params.alpha = (sum_r - float(prob.item_count @ params.bi) - fitted) / n
        if callback:
            callback("alpha", params)
        # items
        y = rating - params.alpha - params.bu[user]
        if k:
            params.bi, params.qi, fitted = sides[1].solve(y, params.pu, prob.rb_i, prob.rf_i, dtype)
        else:
            params.bi, fitted = _solve_biases(item, y, prob.n_items, prob.rb_i)
        if callback:
            callback("items", params)
        params.alpha = (sum_r - float(prob.user_count @ params.bu) - fitted) / n
        if callback:
            callback("alpha", params)
        info.sweeps = sweep
        if track_objective:
            info.objective.append(prob.value(params))
        if validation is not None:
            rmse = _rmse(params, *validation, low, high)
            info.validation_rmse.append(rmse)
            if rmse < best_rmse - 1e-7:
                best_rmse, best, info.best_sweep = rmse, params.copy(), sweep
            elif sweep - info.best_sweep >= config.patience:
                break
    if validation is not None:
        info.best_validation_rmse = float(best_rmse)
        return best, info
    info.best_sweep = info.sweeps
    return params, info


def fit_als(
    user,
    item,
    rating,
    n_users: int,
    n_items: int,
    low: float,
    high: float,
    config: LatentConfig = LatentConfig(),
    validation=None,
    n_sweeps: int | None = None,
    track_objective: bool = False,
) -> tuple[RatingModel, FitInfo]:
    """Fit the bias (``config.n_factors == 0``) or latent factor model by alternating least squares.

    Parameters
    ----------
    user, item : int (n,), dense indices of the training ratings.
    rating : float (n,).
    n_users, n_items : sizes of the index spaces (rows without ratings get zero parameters).
    low, high : the rating scale (clipping of predictions and validation RMSE).
    config : hyperparameters (:class:`LatentConfig`).
    validation : optional ``(users, items, ratings)`` arrays for early stopping: at most
        ``config.max_sweeps`` sweeps, returning the best sweep's parameters.
    n_sweeps : without validation, the number of sweeps (default ``config.max_sweeps``), e.g. the best
        sweep found on validation when refitting on train + validation.
    track_objective : record ``L`` after every sweep in ``FitInfo.objective`` (costs one pass over ratings).
    """
    t0 = time.perf_counter()
    user, item, rating = _check_data(user, item, rating, n_users, n_items)
    prob = _Problem(user, item, rating, n_users, n_items, config)
    if config.n_factors and (config.reg_bias <= 0 or config.reg_factors <= 0):
        raise InvalidInput("ALS with factors needs reg_bias > 0 and reg_factors > 0")
    sides = None
    if config.n_factors:
        k = config.n_factors
        sides = (_Side(user, item, n_users, n_items, k), _Side(item, user, n_items, n_users, k))
    if validation is not None:
        vu, vi, vr = (np.asarray(a) for a in validation)
        validation = (vu.astype(np.int64), vi.astype(np.int64), vr.astype(np.float64))
        sweeps = config.max_sweeps
    else:
        sweeps = config.max_sweeps if n_sweeps is None else n_sweeps
    rng = np.random.default_rng(config.seed)
    best: tuple[float, Params, FitInfo] | None = None
    for restart in range(config.restarts):
        p0 = init_params(n_users, n_items, config.n_factors, rating.mean(), config.init_scale, rng)
        params, info = als_sweeps(prob, p0, sides, config, sweeps, validation, low, high, track_objective)
        info.restart = restart
        if validation is not None:
            score = info.best_validation_rmse
        else:
            score = prob.value(params) if config.restarts > 1 else 0.0
        if best is None or score < best[0]:
            best = (score, params, info)
    _, params, info = best
    if track_objective or config.restarts > 1:
        info.final_objective = prob.value(params)
    info.seconds = time.perf_counter() - t0
    kind = "latent" if config.n_factors else "bias"
    return (
        _model(
            params.alpha,
            params.bu,
            params.bi,
            params.pu,
            params.qi,
            user,
            item,
            rating,
            n_users,
            n_items,
            low,
            high,
            kind,
        ),
        info,
    )


def solve_biases(prob: _Problem, tol: float = 1e-10, maxiter: int = 2000) -> Params:
    """The exact minimiser of ``L`` with K = 0: the normal equations of the ridge regression of R on
    ``[1, e_u, e_i]``::

        N α       + Σ_u n_u β_u + Σ_i n_i β_i = Σ R
        n_u α     + (n_u + ρᵇ_u) β_u + Σ_{i∈I_u} β_i = Σ_{i∈I_u} R_ui      (every user; items alike)

    solved by Jacobi-preconditioned conjugate gradients (matrix-free: ``bincount`` products), to a residual
    below ``tol`` relative to the right-hand side. Alternating updates converge slowly along the direction
    that shifts α against all β_u, which the ridge barely penalises; CG does not.
    """
    user, item, nu, ni = prob.user, prob.item, prob.n_users, prob.n_items

    def matvec(v):
        w = v[0] + v[1 : 1 + nu][user] + v[1 + nu :][item]
        return np.concatenate(
            [
                [w.sum()],
                np.bincount(user, w, nu) + prob.rb_u * v[1 : 1 + nu],
                np.bincount(item, w, ni) + prob.rb_i * v[1 + nu :],
            ]
        )

    size = 1 + nu + ni
    diag = np.concatenate([[prob.n], prob.user_count + prob.rb_u, prob.item_count + prob.rb_i])
    inv = 1.0 / np.where(diag > 0, diag, 1.0)
    rhs = np.concatenate([[prob.rating.sum()], np.bincount(user, prob.rating, nu), np.bincount(item, prob.rating, ni)])
    x0 = np.zeros(size)
    x0[0] = prob.rating.mean()
    op = scipy.sparse.linalg.LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    pre = scipy.sparse.linalg.LinearOperator((size, size), matvec=lambda v: inv * v, dtype=np.float64)
    x, _ = scipy.sparse.linalg.cg(op, rhs, x0=x0, rtol=tol, atol=0.0, maxiter=maxiter, M=pre)
    return Params(float(x[0]), x[1 : 1 + nu], x[1 + nu :], np.zeros((nu, 0)), np.zeros((ni, 0)))


def fit_bias(
    user,
    item,
    rating,
    n_users: int,
    n_items: int,
    low: float,
    high: float,
    config: LatentConfig = LatentConfig(n_factors=0),
    tol: float = 1e-10,
) -> RatingModel:
    """The bias-only model f = α + β_u + β_i, the exact minimiser of ``L`` with K = 0 (only ``reg_bias``,
    ``smoothing_bias`` and ``weighting`` of ``config`` matter); see :func:`solve_biases`.
    """
    user, item, rating = _check_data(user, item, rating, n_users, n_items)
    prob = _Problem(user, item, rating, n_users, n_items, replace(config, n_factors=0))
    p = solve_biases(prob, tol)
    return _model(p.alpha, p.bu, p.bi, p.pu, p.qi, user, item, rating, n_users, n_items, low, high, "bias")


# --- L-BFGS -------------------------------------------------------------------------------------------------


def fit_lbfgs(
    user,
    item,
    rating,
    n_users: int,
    n_items: int,
    low: float,
    high: float,
    config: LatentConfig = LatentConfig(),
    maxiter: int = 500,
    tol: float = 1e-10,
    init: Params | None = None,
) -> tuple[RatingModel, FitInfo]:
    """Fit the same model by ``scipy.optimize.minimize(method="L-BFGS-B")`` on ``L`` with the analytic
    gradient, in float64. Same initialisation (and restarts, keeping the lowest objective) as
    :func:`fit_als` unless ``init`` is given. Slower than ALS; it is the course's method and the reference the
    ALS solutions are checked against.

    Speed note: scipy's L-BFGS-B spends most of each iteration in BLAS calls on ``n_params × maxcor`` arrays,
    which OpenBLAS spreads over threads; on a machine whose other core is busy that can cost 10× (MovieLens
    100K, K = 50, 200 iterations: 75 s with the default threads, 5.5 s with ``OPENBLAS_NUM_THREADS=1``;
    scipy issue 26137).
    """
    t0 = time.perf_counter()
    user, item, rating = _check_data(user, item, rating, n_users, n_items)
    prob = _Problem(user, item, rating, n_users, n_items, config)
    k = config.n_factors

    def fun(theta):
        value, grad = prob.value_and_grad(Params.unpack(theta, n_users, n_items, k))
        return value, grad.pack()

    rng = np.random.default_rng(config.seed)
    best = None
    for restart in range(1 if init is not None else config.restarts):
        p0 = init if init is not None else init_params(n_users, n_items, k, rating.mean(), config.init_scale, rng)
        res = scipy.optimize.minimize(
            fun,
            p0.pack(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-12, "maxcor": 10},
        )
        if best is None or res.fun < best[0].fun:
            best = (res, restart)
    res, restart = best
    p = Params.unpack(res.x, n_users, n_items, k)
    info = FitInfo(
        trainer="lbfgs",
        sweeps=int(res.nit),
        best_sweep=int(res.nit),
        final_objective=float(res.fun),
        seconds=time.perf_counter() - t0,
        restart=restart,
    )
    return (
        _model(
            p.alpha, p.bu, p.bi, p.pu, p.qi, user, item, rating, n_users, n_items, low, high, "latent" if k else "bias"
        ),
        info,
    )
