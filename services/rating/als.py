"""Alternating least squares with biases (Zhou, Wilkinson, Schreiber & Pan 2008; see docs/models.md) on the
objective ``L`` of :mod:`chorus.services.rating.objective`.

A half-sweep solves, for every user at once, the ridge regression of ``R − α − β_i`` on ``[1, γ_i]`` (so β_u and
γ_u jointly), then α in closed form; then the same for items. Each step minimises ``L`` exactly over its block, so
``L`` never increases. Users are grouped into buckets of similar rating counts, padded, and solved with batched
``numpy.linalg.solve`` (the primal ``(K+1)×(K+1)`` system, or the equivalent ``n_u×n_u`` dual system when the
user has fewer ratings than that), so there is no Python loop over users, items or ratings. The readable reference
it is tested against is :func:`chorus.services.rating.lbfgs.fit_lbfgs` on the same objective.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from chorus.services.rating.accuracy import rmse
from chorus.services.rating.config import DEFAULT_CONFIG, LatentConfig
from chorus.services.rating.fitting import FitInfo, Trainset
from chorus.services.rating.models import RatingModel
from chorus.services.rating.objective import Params, Problem, init_params
from chorus.shared.errors import InvalidInput
from chorus.shared.workers import map_threads

#: Buckets of owners (users or items) whose rating counts differ by at most this factor share one padded
#: batch: smaller means less padding, larger means fewer (Python-level) batches.
BUCKET_RATIO = 1.25

#: What a half-sweep solves for its side: β float64 (n_owner,), γ float64 (n_owner, K), and Σ over ratings of
#: β_owner + γ_owner·γ_other (for the α update).
HalfSweep = tuple[np.ndarray, np.ndarray, float]

#: Held-out ratings ``(users int64 (n,), items int64 (n,), ratings float64 (n,))`` for early stopping.
Validation = tuple[np.ndarray, np.ndarray, np.ndarray]


def gram_chunk(k: int) -> int:
    """Rows per Gram product ``XᵀX`` in ALS: the largest count keeping each ``(K+1)×rows×(K+1)`` product
    below OpenBLAS's threshold for multithreading (2¹⁸ multiply-adds). Thousands of tiny products each
    handing work to a second thread cost more than they gain, and on a shared machine, whose other core is
    busy, each hand-off can stall; single-threaded small products run at a steady speed."""
    return max(8, (1 << 18) // (k + 1) ** 2 - 1)


class Side:
    """The ratings of one side (users or items) grouped by owner into padded batches of similar length.

    Each batch holds ``owners`` int64 (b,), ``rows`` int64 (b, L) rating indices and ``others`` int64 (b, L)
    indices of the other side; padding points at the sentinels ``n`` (rating) and ``n_other`` (other side).
    Batches wider than :func:`gram_chunk` rows are padded to a multiple of it.

    Parameters
    ----------
    owner, other : numpy.ndarray
        int64 (n,), per rating the owner's index and the other side's.
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
        self,
        y: np.ndarray,
        factors: np.ndarray,
        ridge_b: np.ndarray,
        ridge_f: np.ndarray,
        dtype: np.dtype,
        workers: int = 1,
    ) -> HalfSweep:
        """Ridge-regress ``y`` on ``[1, γ_other]`` for every owner at once.

        Parameters
        ----------
        y : numpy.ndarray
            float (n,), targets R − α − β_other.
        factors : numpy.ndarray
            float (n_other, K), the other side's γ.
        ridge_b, ridge_f : numpy.ndarray
            float64 (n_owner,), ρᵇ and ρᶠ.
        dtype : numpy.dtype
            The arithmetic of the solves.
        workers : int
            Threads the batches are solved on (the result is the same for any number).

        Returns
        -------
        tuple
            β float64 (n_owner,), γ float64 (n_owner, K), and Σ over ratings of β_owner + γ_owner·γ_other (for
            the α update). Owners without ratings get 0 (their penalty's minimum).
        """
        k = factors.shape[1]
        x = np.zeros((self.n_other + 1, k + 1), dtype)
        x[:-1, 0] = 1.0
        x[:-1, 1:] = factors
        y_pad = np.append(y, 0.0).astype(dtype)

        def batch(b: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
            ow, rows, others = b
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
            return w, float(np.einsum("bk,bk->", w.astype(np.float64), sums))

        out = np.zeros((self.n_owner, k + 1))
        fitted = 0.0
        # batches are independent (numpy's batched products and LAPACK solves release the GIL), and their
        # results are combined in batch order, so the answer is the same for any number of workers
        for (ow, _, _), (w, part) in zip(self.batches, map_threads(batch, self.batches, workers), strict=True):
            out[ow] = w
            fitted += part
        return out[:, 0], out[:, 1:], fitted


class BiasSide:
    """One side of the bias-only model (K = 0), with the interface of :class:`Side`: β = Σ y / (n + ρᵇ) per
    owner.

    Parameters
    ----------
    owner : numpy.ndarray
        int64 (n,), per rating the owner's index.
    """

    def __init__(self, owner: np.ndarray, n_owner: int) -> None:
        self.owner, self.n_owner = owner, n_owner
        self.count = np.bincount(owner, minlength=n_owner)

    def solve(
        self,
        y: np.ndarray,
        factors: np.ndarray,
        ridge_b: np.ndarray,
        ridge_f: np.ndarray,
        dtype: np.dtype,
        workers: int = 1,
    ) -> HalfSweep:
        """β float64 (n_owner,), γ float64 (n_owner, 0) and Σ over ratings of β_owner, as :meth:`Side.solve`."""
        total = np.bincount(self.owner, weights=y, minlength=self.n_owner)
        denom = self.count + ridge_b
        beta = np.divide(total, denom, out=np.zeros(self.n_owner), where=denom > 0)
        return beta, np.zeros((self.n_owner, 0)), float(self.count @ beta)


def make_sides(data: Trainset, k: int) -> tuple[Side | BiasSide, Side | BiasSide]:
    """The users' and the items' sides of the training ratings, for K = ``k``."""
    user, item, nu, ni = data.user, data.item, data.n_users, data.n_items
    if k:
        return Side(user, item, nu, ni, k), Side(item, user, ni, nu, k)
    return BiasSide(user, nu), BiasSide(item, ni)


def _validation_rmse(params: Params, validation: Validation, low: float, high: float) -> float:
    users, items, ratings = validation
    return rmse(np.clip(params.scores(users, items), low, high), ratings)


def als_sweeps(
    prob: Problem,
    params: Params,
    sides: tuple[Side | BiasSide, Side | BiasSide],
    config: LatentConfig,
    n_sweeps: int,
    validation: Validation | None = None,
    low: float = -np.inf,
    high: float = np.inf,
    track_objective: bool = False,
    callback: Callable[[str, Params], None] | None = None,
    workers: int = 1,
) -> tuple[Params, FitInfo]:
    """Run up to ``n_sweeps`` ALS sweeps from ``params`` (updated in place) on ``prob``.

    Each sweep: users' (β_u, γ_u) jointly, then α, then items' (β_i, γ_i), then α; every step an exact
    minimisation of ``L`` over its block. ``sides`` are the users' and the items' (:func:`make_sides`). With
    ``validation`` the clipped RMSE is tracked per sweep and the best sweep's parameters are returned (early
    stopping with ``config.patience``). ``callback(step_name, params)`` (tests) is called after every block
    update. ``workers``: threads per half-sweep (:meth:`Side.solve`).
    """
    dtype = np.dtype(config.dtype)
    user, item, rating, n = prob.user, prob.item, prob.rating, prob.n
    users, items = sides
    step = callback or (lambda name, params: None)
    sum_r = float(rating.sum())
    info = FitInfo(trainer="als")
    best = params.copy() if validation is not None else params
    best_rmse = np.inf
    if validation is not None:
        best_rmse = _validation_rmse(params, validation, low, high)
    for sweep in range(1, n_sweeps + 1):
        # users' (β_u, γ_u), then α, which minimises L given the rest: the mean of R − β_u − β_i − γ_u·γ_i
        y = rating - params.alpha - params.bi[item]
        params.bu, params.pu, fitted = users.solve(y, params.qi, prob.rb_u, prob.rf_u, dtype, workers)
        step("users", params)
        params.alpha = (sum_r - float(prob.item_count @ params.bi) - fitted) / n
        step("alpha", params)
        # the same for items
        y = rating - params.alpha - params.bu[user]
        params.bi, params.qi, fitted = items.solve(y, params.pu, prob.rb_i, prob.rf_i, dtype, workers)
        step("items", params)
        params.alpha = (sum_r - float(prob.user_count @ params.bu) - fitted) / n
        step("alpha", params)
        info.sweeps = sweep
        if track_objective:
            info.objective.append(prob.value(params))
        if validation is not None:
            score = _validation_rmse(params, validation, low, high)
            info.validation_rmse.append(score)
            if score < best_rmse - 1e-7:
                best_rmse, best, info.best_sweep = score, params.copy(), sweep
            elif sweep - info.best_sweep >= config.patience:
                break
    if validation is not None:
        info.best_validation_rmse = float(best_rmse)
        return best, info
    info.best_sweep = info.sweeps
    return params, info


def fit_als(
    data: Trainset,
    config: LatentConfig = DEFAULT_CONFIG,
    validation: Validation | None = None,
    n_sweeps: int | None = None,
    track_objective: bool = False,
    workers: int = 1,
) -> tuple[RatingModel, FitInfo]:
    """Fit the bias (``config.n_factors == 0``) or latent factor model by alternating least squares.

    Parameters
    ----------
    data : Trainset
        The training ratings (rows without ratings get zero parameters); its scale clips the validation
        predictions.
    config : LatentConfig
        Hyperparameters.
    validation : tuple of numpy.ndarray, optional
        ``(users, items, ratings)`` for early stopping: at most ``config.max_sweeps`` sweeps, returning the best
        sweep's parameters.
    n_sweeps : int, optional
        Without validation, the number of sweeps (default ``config.max_sweeps``), e.g. the best sweep found on
        validation when refitting on train + validation.
    track_objective : bool
        Record ``L`` after every sweep in ``FitInfo.objective`` (costs one pass over the ratings).
    workers : int
        Threads each half-sweep's batches are solved on; the model is the same for any number.

    Returns
    -------
    tuple
        The model (``"latent"``, or ``"bias"`` when K = 0) and the :class:`~chorus.services.rating.fitting.FitInfo`.
    """
    t0 = time.perf_counter()
    prob = Problem(data, config)
    if config.n_factors and (config.reg_bias <= 0 or config.reg_factors <= 0):
        raise InvalidInput("ALS with factors needs reg_bias > 0 and reg_factors > 0")
    both = make_sides(data, config.n_factors)
    if validation is not None:
        vu, vi, vr = (np.asarray(a) for a in validation)
        validation = (vu.astype(np.int64), vi.astype(np.int64), vr.astype(np.float64))
        sweeps = config.max_sweeps
    else:
        sweeps = config.max_sweeps if n_sweeps is None else n_sweeps
    rng = np.random.default_rng(config.seed)
    best: tuple[float, Params, FitInfo] | None = None
    for restart in range(config.restarts):
        p0 = init_params(data.n_users, data.n_items, config.n_factors, data.rating.mean(), config.init_scale, rng)
        params, info = als_sweeps(
            prob, p0, both, config, sweeps, validation, data.low, data.high, track_objective, workers=workers
        )
        info.restart = restart
        if info.best_validation_rmse is not None:
            score = info.best_validation_rmse
        else:
            score = prob.value(params) if config.restarts > 1 else 0.0
        if best is None or score < best[0]:
            best = (score, params, info)
    assert best is not None  # config.restarts >= 1
    _, params, info = best
    if track_objective or config.restarts > 1:
        info.final_objective = prob.value(params)
    info.seconds = time.perf_counter() - t0
    kind = "latent" if config.n_factors else "bias"
    return params.to_model(kind, data), info
