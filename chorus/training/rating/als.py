"""Alternating least squares with biases (Zhou, Wilkinson, Schreiber & Pan 2008; see docs/models.md) on the
objective ``L`` of :mod:`chorus.training.rating.objective`.

A half-sweep solves, for every user at once, the ridge regression of ``R − α − β_i`` on ``[1, γ_i]`` (so β_u and
γ_u jointly), then α in closed form; then the same for items. Each step minimises ``L`` exactly over its block, so
``L`` never increases. Users are grouped into buckets of similar rating counts, padded, and solved with batched
``numpy.linalg.solve`` (the primal ``(K+1)×(K+1)`` system, or the equivalent ``n_u×n_u`` dual system when the
user has fewer ratings than that), so there is no Python loop over users, items or ratings. The readable reference
it is tested against is :func:`chorus.training.rating.lbfgs.fit_lbfgs` on the same objective.

Parallel work (:class:`Sweeper`): a half-sweep's batches, the preparation of its targets and of the other side's
factors, the validation predictions and the early-stopping copy are numbered tasks run by forked worker processes
beside the parent (:class:`chorus.shared.workers.ForkPool`), reading and writing buffers in shared memory; the
parent keeps the α update (two dot products per half-sweep) and the order of the rounds. Each task computes the
same thing whichever process runs it, and the batches' parts of the α sum are added in batch order, so a fit is
bit-identical for any number of workers (and to the single-process code before it). The README (Scaling) gives
the one-worker breakdown and the measured speed-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chorus.services.rating.models import RatingModel
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.workers import ForkPool, map_threads, shared_array
from chorus.training.rating.accuracy import rmse
from chorus.training.rating.config import DEFAULT_CONFIG, LatentConfig
from chorus.training.rating.fitting import FitInfo, Trainset
from chorus.training.rating.objective import Params, Problem, init_params

#: Buckets of owners (users or items) whose rating counts differ by at most this factor share one padded
#: batch: smaller means less padding, larger means fewer (Python-level) batches.
BUCKET_RATIO = 1.25

#: What a half-sweep solves for its side: β float64 (n_owner,), γ float64 (n_owner, K), and Σ over ratings of
#: β_owner + γ_owner·γ_other (for the α update).
HalfSweep = tuple[np.ndarray, np.ndarray, float]

#: Held-out ratings ``(users int64 (n,), items int64 (n,), ratings float64 (n,))`` for early stopping.
Validation = tuple[np.ndarray, np.ndarray, np.ndarray]

#: Ratings, owners or validation rows per preparation task of :class:`Sweeper`: enough that a task's numpy calls
#: outweigh handing it out, few enough that the workers share a half-sweep's preparation evenly. Fixed (not
#: derived from the number of workers), like the batches, so that the tasks are the same for any number.
CHUNK = 1 << 14


#: Bytes of the arrays one piece of a batch's owners is solved with (:meth:`Side.solve_batch`), per process: fixed,
#: so that the memory of a half-sweep does not grow with the owners of a bucket.
SOLVE_BYTES = 32 << 20


def gram_chunk(k: int) -> int:
    """Rows per Gram product ``XᵀX`` in ALS: the largest count keeping each ``(K+1)×rows×(K+1)`` product
    below OpenBLAS's threshold for multithreading (2¹⁸ multiply-adds). Thousands of tiny products each
    handing work to a second thread cost more than they gain, and on a shared machine, whose other core is
    busy, each hand-off can stall; single-threaded small products run at a steady speed."""
    return max(8, (1 << 18) // (k + 1) ** 2 - 1)


class Side:
    """The ratings of one side (users or items) grouped by owner into padded batches of similar length.

    Each batch holds ``owners`` int64 (b,), ``rows`` (b, L) rating indices and ``others`` (b, L) indices of the
    other side, both int32 (int64 past 2³¹ − 1 ratings); padding points at the sentinels ``n`` (rating) and
    ``n_other`` (other side). Batches wider than :func:`gram_chunk` rows are padded to a multiple of it.

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
        self.empty = np.flatnonzero(self.count == 0)  # owners without ratings: β = 0, γ = 0
        order = np.argsort(owner, kind="stable")
        start = np.concatenate([[0], np.cumsum(self.count)[:-1]])
        owners = np.flatnonzero(self.count)
        length = self.count[owners]
        edges = [1]
        while edges[-1] < (length.max() if length.size else 1):
            edges.append(max(edges[-1] + 1, int(np.ceil(edges[-1] * BUCKET_RATIO))))
        bucket = np.searchsorted(edges, length)
        # the batches' indices take half the room in int32 (they are most of a side's memory): the same gathers
        index = np.int32 if max(n, n_other) < np.iinfo(np.int32).max else np.int64
        order = order.astype(index)
        other = other.astype(index)
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for b in np.unique(bucket):
            ow = owners[bucket == b]
            width = int(self.count[ow].max())
            if width > max(k + 1, self.chunk):
                width = -(-width // self.chunk) * self.chunk
            j = np.arange(width)
            valid = j[None, :] < self.count[ow][:, None]
            rows = order[np.where(valid, start[ow][:, None] + j[None, :], 0)]
            del j
            others = other[rows]
            rows[~valid] = n
            others[~valid] = n_other
            self.batches.append((ow, rows, others))

    def owner_bytes(self, width: int, itemsize: int) -> int:
        """Bytes of the arrays :meth:`_solve_owners` makes per owner of a batch ``width`` ratings wide (an upper
        bound): ``X`` and, for the primal, the Gram products and the system with the copy LAPACK solves, for
        the dual ``Xρ⁻¹`` and the ``L×L`` system with its copy."""
        k1 = self.k + 1
        if width > k1:
            return itemsize * (width * k1 + k1 * k1 * (max(1, width // self.chunk) + 2))
        return itemsize * (2 * width * k1 + 2 * width * width)

    def _solve_owners(self, xb: np.ndarray, yb: np.ndarray, reg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[β, γ]`` float (b, K + 1) of b owners and Σ over their ratings of ``[1, γ_other]`` float64 (b, K + 1),
        from their ``X`` (b, L, K + 1), targets (b, L) and ridges (b, K + 1) (see :meth:`solve_batch`)."""
        b, width, k1 = xb.shape
        if width > k1:
            # primal: (XᵀX + diag ρ) w = Xᵀy, a (K+1)² system per owner; XᵀX summed over row chunks
            if width > self.chunk:
                xc = xb.reshape(-1, self.chunk, k1)
                a = np.matmul(xc.transpose(0, 2, 1), xc).reshape(b, -1, k1, k1).sum(axis=1)
            else:
                a = np.matmul(xb.transpose(0, 2, 1), xb)
            sums = a[:, :, 0].astype(np.float64)  # Σ over the owner's ratings of [1, γ_other]
            d = np.arange(k1)
            a[:, d, d] += reg
            return np.linalg.solve(a, np.matmul(yb[:, None, :], xb).transpose(0, 2, 1))[..., 0], sums
        # dual (push-through identity): w = ρ⁻¹Xᵀ (Xρ⁻¹Xᵀ + I)⁻¹ y, an L² system per owner;
        # padded rows of X are zero, so their dual variables are 0.
        xr = xb / reg[:, None, :]
        g = np.matmul(xr, xb.transpose(0, 2, 1))
        d = np.arange(width)
        g[:, d, d] += 1.0
        w = np.matmul(xr.transpose(0, 2, 1), np.linalg.solve(g, yb[..., None]))[..., 0]
        return w, xb.sum(axis=1).astype(np.float64)

    def solve_batch(
        self, index: int, x: np.ndarray, y: np.ndarray, ridge_b: np.ndarray, ridge_f: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Ridge-regress ``y`` on ``[1, γ_other]`` for the owners of batch ``index``.

        The owners are solved a piece at a time, each piece's arrays within :data:`SOLVE_BYTES`: a batch holds
        every owner of a bucket, whose count grows with the data, and its padded ``X`` and systems take
        about 10 kB an owner at K = 50. Each owner's system is solved alone whatever the piece, and the α part
        is summed over the whole batch, so the pieces change no number.

        Parameters
        ----------
        x : numpy.ndarray
            float (n_other + 1, K + 1), ``[1, γ]`` of the other side with a last row of zeros (padding); its
            dtype is the arithmetic of the solve.
        y : numpy.ndarray
            float (n + 1,), the targets R − α − β_other per rating with a last 0 (padding), in x's dtype.
        ridge_b, ridge_f : numpy.ndarray
            float64 (n_owner,), ρᵇ and ρᶠ.

        Returns
        -------
        tuple
            ``[β, γ]`` of the batch's owners, float (b, K + 1), and Σ over their ratings of
            β_owner + γ_owner·γ_other (their part of the α update).

        """
        ow, rows, others = self.batches[index]
        dtype, k = x.dtype, x.shape[1] - 1
        reg = np.empty((ow.shape[0], k + 1), dtype)
        reg[:, 0] = ridge_b[ow]
        reg[:, 1:] = ridge_f[ow][:, None]
        b, width = rows.shape
        w = np.empty((b, k + 1), dtype)
        sums = np.empty((b, k + 1))
        step = max(1, SOLVE_BYTES // self.owner_bytes(width, dtype.itemsize))
        for lo in range(0, b, step):  # each owner's system alone: the same numbers for any piece size
            hi = min(lo + step, b)
            w[lo:hi], sums[lo:hi] = self._solve_owners(x[others[lo:hi]], y[rows[lo:hi]], reg[lo:hi])
        return w, float(np.einsum("bk,bk->", w.astype(np.float64), sums))


class BiasSide:
    """One side of the bias-only model (K = 0): β = Σ y / (n + ρᵇ) per owner.

    Parameters
    ----------
    owner : numpy.ndarray
        int64 (n,), per rating the owner's index.
    """

    def __init__(self, owner: np.ndarray, n_owner: int) -> None:
        self.owner, self.n_owner = owner, n_owner
        self.count = np.bincount(owner, minlength=n_owner)

    def solve(self, y: np.ndarray, ridge_b: np.ndarray) -> tuple[np.ndarray, float]:
        """β float64 (n_owner,) for targets ``y`` float64 (n,), and Σ over ratings of β_owner."""
        total = np.bincount(self.owner, weights=y, minlength=self.n_owner)
        denom = self.count + ridge_b
        beta = np.divide(total, denom, out=np.zeros(self.n_owner), where=denom > 0)
        return beta, float(self.count @ beta)


def make_sides(data: Trainset, k: int, workers: int = 1) -> tuple[Side | BiasSide, Side | BiasSide]:
    """The users' and the items' sides of the training ratings, for K = ``k`` (with ``workers`` > 1 the two are
    grouped on two threads: their sorts release the GIL)."""
    user, item, nu, ni = data.user, data.item, data.n_users, data.n_items
    if k:
        users, items = map_threads(lambda a: Side(*a, k), [(user, item, nu, ni), (item, user, ni, nu)], workers)
        return users, items
    return BiasSide(user, nu), BiasSide(item, ni)


def _chunks(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]


class Sweeper:
    """The half-sweeps of ALS on one training set for K = ``k``, run by ``workers`` processes.

    Made once per training set and K, and used by every fit on them (a grid's λ values, restarts): the sides
    (:func:`make_sides`) are grouped once, then the workers are forked (:class:`~chorus.shared.workers.ForkPool`)
    and read the ratings, the batches and the validation rows in place. What changes during a fit lives in
    shared buffers (:func:`~chorus.shared.workers.shared_array`), side ``s`` being 0 (users) or 1 (items):

    * ``out[s]`` float64 (n_s, K + 1): ``[β, γ]`` of side s; the :class:`Params` of a fit are views of them;
    * ``x[s]`` (n_s + 1, K + 1) in the solve's dtype: ``[1, γ]`` of side s and a last row of zeros (padding);
    * ``y`` (n + 1,) in the solve's dtype: the targets of the half-sweep under way, and a last 0 (padding);
    * ``ridge[s]`` float64 (n_s, 2): ρᵇ, ρᶠ of the fit;
    * ``pred`` float64 (n_val,): clipped validation predictions; ``best[s]``: the early-stopping copy of ``out[s]``
      (only with ``keep_best``: a grid search, which needs only each fit's best sweep and its validation RMSE,
      makes its sweeper without it, and saves ``(n_users + n_items) × (K + 1)`` float64 and a copy of as many per
      fit).

    The starting γ of a fit are drawn into ``out`` in place (:meth:`initial`), never held beside it.

    A half-sweep of side s is two rounds of tasks: chunks of y and of ``x[1 - s]``, then side s's batches, each
    writing its owners' rows of ``out[s]`` and returning its part of the α sum. The validation predictions and
    the early-stopping copy (``best[s]``) are rounds of chunks too. K = 0 (the bias-only model) runs here, without
    workers. Use it as a context manager (or call :meth:`close`) to stop the workers.
    """

    def __init__(
        self,
        data: Trainset,
        k: int,
        dtype: str | np.dtype = "float32",
        workers: int = 1,
        validation: Validation | None = None,
        keep_best: bool = True,
    ) -> None:
        self.data, self.k, self.dtype = data, k, np.dtype(dtype)
        self.keep_best = keep_best
        self.sides = make_sides(data, k, workers)
        self.owner = (data.user, data.item)
        self.validation: Validation | None = None
        if validation is not None:
            vu, vi, vr = (np.asarray(a) for a in validation)
            self.validation = (vu.astype(np.int64), vi.astype(np.int64), vr.astype(np.float64))
        self.pool: ForkPool | None = None
        self._ridge_k0: tuple[np.ndarray, np.ndarray] | None = None
        self._kept: Params | None = None  # K = 0: the parameters kept by keep()
        self._kept_alpha = 0.0
        if not k:
            return
        sizes = (data.n_users, data.n_items)
        self.out = tuple(shared_array((m, k + 1)) for m in sizes)
        self.x = tuple(shared_array((m + 1, k + 1), self.dtype) for m in sizes)
        for x in self.x:
            x[:-1, 0] = 1.0
        self.y = shared_array(data.n + 1, self.dtype)
        self.ridge = tuple(shared_array((m, 2)) for m in sizes)
        self.pred = shared_array(0 if self.validation is None else self.validation[0].size)
        # the early-stopping copy of out (only fits with validation rows keep one, and only when asked for)
        kept_rows = self.validation is not None and keep_best
        self.best = tuple(shared_array((m if kept_rows else 0, k + 1)) for m in sizes)
        self._rating_chunks = _chunks(data.n)
        self._owner_chunks = tuple(_chunks(m) for m in sizes)
        self._val_chunks = _chunks(self.pred.size)
        self.pool = ForkPool(self._task, workers)

    def close(self) -> None:
        """Stop the workers."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __enter__(self) -> Sweeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _params(self, alpha: float) -> Params:
        (u, i) = self.out
        return Params(alpha, u[:, 0], i[:, 0], u[:, 1:], i[:, 1:])

    def _task(self, job: tuple[Any, ...], index: int) -> float:
        """Task ``index`` of ``job = (kind, arg, α)``: ``"prepare"`` or ``"solve"`` side ``arg``, ``"validate"``
        with ``arg = (low, high)``, ``"keep"``; run by whichever process claims it (:class:`ForkPool`)."""
        kind, arg, alpha = job
        if kind == "validate":
            assert self.validation is not None
            a, b = self._val_chunks[index]
            users, items, _ = self.validation
            low, high = arg
            self.pred[a:b] = np.clip(self._params(alpha).scores(users[a:b], items[a:b]), low, high)
            return 0.0
        if kind == "keep":  # a chunk of owners of either side into the early-stopping copy
            chunks = self._owner_chunks[0] + self._owner_chunks[1]
            t = 0 if index < len(self._owner_chunks[0]) else 1
            a, b = chunks[index]
            self.best[t][a:b] = self.out[t][a:b]
            return 0.0
        s, o = arg, 1 - arg
        if kind == "prepare":  # targets R − α − β_other, then [1, γ] of the other side
            if index < len(self._rating_chunks):
                a, b = self._rating_chunks[index]
                self.y[a:b] = self.data.rating[a:b] - alpha - self.out[o][self.owner[o][a:b], 0]
            else:
                a, b = self._owner_chunks[o][index - len(self._rating_chunks)]
                self.x[o][a:b, 1:] = self.out[o][a:b, 1:]
            return 0.0
        if kind == "solve":
            side = self.sides[s]
            assert isinstance(side, Side)
            w, part = side.solve_batch(index, self.x[o], self.y, self.ridge[s][:, 0], self.ridge[s][:, 1])
            self.out[s][side.batches[index][0]] = w
            return part
        raise ValueError(f"unknown task kind {kind!r}")

    def start(self, params: Params, prob: Problem) -> Params:
        """Load a fit's starting parameters and its ridges (``prob``'s); return the parameters to sweep on (for
        K > 0 views of the shared buffers, which the next :meth:`start` overwrites)."""
        if not self.k:
            self._ridge_k0 = (prob.rb_u, prob.rb_i)
            return params
        for s, (rb, rf, beta, gamma) in enumerate(
            ((prob.rb_u, prob.rf_u, params.bu, params.pu), (prob.rb_i, prob.rf_i, params.bi, params.qi))
        ):
            self.ridge[s][:, 0], self.ridge[s][:, 1] = rb, rf
            if not np.shares_memory(gamma, self.out[s]):  # not drawn in place by initial()
                self.out[s][:, 0], self.out[s][:, 1:] = beta, gamma
        return self._params(params.alpha)

    def initial(self, config: LatentConfig) -> Iterator[Params]:
        """The starting parameters of each of ``config.restarts`` (:func:`init_params` from
        ``numpy.random.default_rng(config.seed)``), drawn when asked for, one restart at a time: every fit of a λ
        grid draws the same numbers again (a fraction of a second per million reviews) rather than keeping
        factor-sized copies, ``(n_users + n_items) × K`` float64 each, for the sweeper's life. For K > 0 they are
        drawn straight into ``out`` (so each yield overwrites the last fit's parameters there), :data:`CHUNK`
        rows at a time: the same numbers as one draw of each side (the generator's stream does not depend on how
        it is cut), without a second factor-sized array."""
        data = self.data
        rng = np.random.default_rng(config.seed)
        alpha = float(data.rating.mean())
        for _ in range(config.restarts):  # yielded, not bound here: the caller alone holds a draw
            if not self.k:
                yield init_params(data.n_users, data.n_items, self.k, alpha, config.init_scale, rng)
                continue
            for out, chunks in zip(self.out, self._owner_chunks, strict=True):
                out[:, 0] = 0.0
                for a, b in chunks:
                    out[a:b, 1:] = rng.normal(0.0, config.init_scale, (b - a, self.k))
            yield self._params(alpha)

    def keep(self, params: Params) -> None:
        """Keep a copy of ``params`` (those of :meth:`start`) for :meth:`kept` (early stopping).

        Raises
        ------
        InvalidInput : the sweeper was made without ``keep_best``.
        """
        if not self.keep_best:
            raise InvalidInput("this sweeper keeps no parameters (made with keep_best=False)")
        self._kept_alpha = params.alpha
        if not self.k:
            self._kept = params.copy()
            return
        assert self.pool is not None, "the sweeper is closed"
        self.pool.run(("keep", None, None), len(self._owner_chunks[0]) + len(self._owner_chunks[1]))

    def kept(self) -> Params:
        """The parameters of the last :meth:`keep`, in the caller's own arrays."""
        if not self.k:
            assert self._kept is not None
            return self._kept
        (u, i) = self.best
        return Params(self._kept_alpha, u[:, 0].copy(), i[:, 0].copy(), u[:, 1:].copy(), i[:, 1:].copy())

    def solve(self, s: int, params: Params) -> HalfSweep:
        """Side ``s``'s (β, γ) given the other side's and α in ``params`` (those of :meth:`start`)."""
        if not self.k:
            side = self.sides[s]
            assert isinstance(side, BiasSide) and self._ridge_k0 is not None
            other, beta = (self.data.item, params.bi) if s == 0 else (self.data.user, params.bu)
            b, fitted = side.solve(self.data.rating - params.alpha - beta[other], self._ridge_k0[s])
            return b, np.zeros((side.n_owner, 0)), fitted
        assert self.pool is not None, "the sweeper is closed"
        side = self.sides[s]
        assert isinstance(side, Side)
        self.pool.run(("prepare", s, params.alpha), len(self._rating_chunks) + len(self._owner_chunks[1 - s]))
        self.out[s][side.empty] = 0.0
        parts = self.pool.run(("solve", s, None), len(side.batches))
        fitted = 0.0
        for part in parts:  # in batch order, whichever process computed each
            fitted += part
        return self.out[s][:, 0], self.out[s][:, 1:], fitted

    def validation_rmse(self, params: Params, low: float, high: float) -> float:
        """Clipped RMSE on the validation rows of ``params`` (those of :meth:`start`)."""
        assert self.validation is not None
        users, items, ratings = self.validation
        if not self.k:
            return rmse(np.clip(params.scores(users, items), low, high), ratings)
        assert self.pool is not None, "the sweeper is closed"
        self.pool.run(("validate", (low, high), params.alpha), len(self._val_chunks))
        return rmse(self.pred, ratings)


def als_sweeps(
    prob: Problem,
    params: Params,
    sweeper: Sweeper,
    config: LatentConfig,
    n_sweeps: int,
    low: float = -np.inf,
    high: float = np.inf,
    track_objective: bool = False,
    callback: Callable[[str, Params], None] | None = None,
    keep: bool = True,
) -> tuple[Params, FitInfo]:
    """Run up to ``n_sweeps`` ALS sweeps from ``params`` on ``prob`` (``sweeper``'s training set).

    Each sweep: users' (β_u, γ_u) jointly, then α, then items' (β_i, γ_i), then α; every step an exact
    minimisation of ``L`` over its block. With ``sweeper.validation`` the clipped RMSE is tracked per sweep and
    the best sweep's parameters are returned (early stopping with ``config.patience``). ``callback(step_name,
    params)`` (tests) is called after every block update. The parameters returned are the caller's (not views
    of the sweeper's buffers).

    ``keep=False`` is for a caller that needs only the :class:`FitInfo` (a grid point's best sweep and its
    validation RMSE): no parameters are copied, and those returned are the last sweep's, views of the sweeper's
    buffers that its next fit overwrites.
    """
    rating, n = prob.rating, prob.n
    step = callback or (lambda name, params: None)
    sum_r = float(rating.sum())
    info = FitInfo(trainer="als")
    params = sweeper.start(params, prob)
    validate = sweeper.validation is not None
    best_rmse = np.inf
    if validate:
        best_rmse = sweeper.validation_rmse(params, low, high)
        if keep:
            sweeper.keep(params)
    for sweep in range(1, n_sweeps + 1):
        # users' (β_u, γ_u), then α, which minimises L given the rest: the mean of R − β_u − β_i − γ_u·γ_i
        params.bu, params.pu, fitted = sweeper.solve(0, params)
        step("users", params)
        params.alpha = (sum_r - float(prob.item_count @ params.bi) - fitted) / n
        step("alpha", params)
        # the same for items
        params.bi, params.qi, fitted = sweeper.solve(1, params)
        step("items", params)
        params.alpha = (sum_r - float(prob.user_count @ params.bu) - fitted) / n
        step("alpha", params)
        info.sweeps = sweep
        if track_objective:
            info.objective.append(prob.value(params))
        if validate:
            score = sweeper.validation_rmse(params, low, high)
            info.validation_rmse.append(score)
            if score < best_rmse - 1e-7:
                best_rmse, info.best_sweep = score, sweep
                if keep:
                    sweeper.keep(params)
            elif sweep - info.best_sweep >= config.patience:
                break
    if validate:
        info.best_validation_rmse = float(best_rmse)
        return (sweeper.kept() if keep else params), info
    info.best_sweep = info.sweeps
    return (params.copy() if keep else params), info


def fit_als(
    data: Trainset,
    config: LatentConfig = DEFAULT_CONFIG,
    validation: Validation | None = None,
    n_sweeps: int | None = None,
    track_objective: bool = False,
    workers: int = 1,
    sweeper: Sweeper | None = None,
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
        Processes the half-sweeps run on (:class:`Sweeper`); the model is the same for any number.
    sweeper : Sweeper, optional
        One made for ``data``, K = ``config.n_factors``, ``config.dtype`` and ``validation`` (then ``workers`` is
        its own), to share between fits on the same data; by default the fit makes and closes its own.

    Returns
    -------
    tuple
        The model (``"latent"``, or ``"bias"`` when K = 0) and the :class:`~chorus.training.rating.fitting.FitInfo`.
    """
    # without validation rows and with one start, the last sweep's parameters are the fit's: they go from the
    # sweeper's buffers straight into the model's float32 arrays, without a float64 copy of them in between
    last_is_best = validation is None and config.restarts == 1 and not track_objective
    params, info = fit_als_params(
        data, config, validation, n_sweeps, track_objective, workers, sweeper, keep=not last_is_best
    )
    kind = "latent" if config.n_factors else "bias"
    return params.to_model(kind, data), info


def fit_als_params(
    data: Trainset,
    config: LatentConfig = DEFAULT_CONFIG,
    validation: Validation | None = None,
    n_sweeps: int | None = None,
    track_objective: bool = False,
    workers: int = 1,
    sweeper: Sweeper | None = None,
    keep: bool = True,
) -> tuple[Params, FitInfo]:
    """:func:`fit_als` up to the float64 parameters, without building the served model. A grid search needs only
    the :class:`~chorus.training.rating.fitting.FitInfo`: with ``keep=False`` no parameters are kept or copied
    (:func:`als_sweeps`; its sweeper may then be made without ``keep_best``), and those returned are the last
    sweep's, in the sweeper's buffers."""
    t0 = time.perf_counter()
    prob = Problem(data, config)
    if config.n_factors and (config.reg_bias <= 0 or config.reg_factors <= 0):
        raise InvalidInput("ALS with factors needs reg_bias > 0 and reg_factors > 0")
    if validation is not None:
        sweeps = config.max_sweeps
    else:
        sweeps = config.max_sweeps if n_sweeps is None else n_sweeps
    if sweeper is None:
        with Sweeper(data, config.n_factors, config.dtype, workers, validation) as own:
            best = _restarts(prob, own, config, sweeps, track_objective)
    else:
        if sweeper.data is not data or sweeper.k != config.n_factors or sweeper.dtype != np.dtype(config.dtype):
            raise InvalidInput("the sweeper was made for other data, another K or another dtype")
        if (validation is None) != (sweeper.validation is None) or (
            validation is not None
            and sweeper.validation is not None
            and len(validation[0]) != len(sweeper.validation[0])
        ):
            raise InvalidInput("the sweeper was made for other validation rows")
        if keep and validation is not None and not sweeper.keep_best:
            raise InvalidInput("the sweeper keeps no parameters (made with keep_best=False): fit with keep=False")
        best = _restarts(prob, sweeper, config, sweeps, track_objective, keep)
    _, params, info = best
    if keep and (track_objective or config.restarts > 1):
        info.final_objective = prob.value(params)
    info.seconds = time.perf_counter() - t0
    return params, info


def _restarts(
    prob: Problem, sweeper: Sweeper, config: LatentConfig, sweeps: int, track_objective: bool, keep: bool = True
) -> tuple[float, Params, FitInfo]:
    """``config.restarts`` runs of :func:`als_sweeps` from seeded initialisations; the best (by validation RMSE,
    else by ``L`` when there are several) as ``(score, params, info)`` (``keep``: :func:`als_sweeps`'s)."""
    data = sweeper.data
    best: tuple[float, Params, FitInfo] | None = None
    draws = sweeper.initial(config)
    for restart in range(config.restarts):
        # the draw is passed on, not kept here (for K > 0 it is the sweeper's buffers themselves)
        start = next(draws)
        params, info = als_sweeps(prob, start, sweeper, config, sweeps, data.low, data.high, track_objective, keep=keep)
        del start
        info.restart = restart
        if info.best_validation_rmse is not None:
            score = info.best_validation_rmse
        else:
            score = prob.value(params) if config.restarts > 1 else 0.0
        if best is None or score < best[0]:
            best = (score, params, info)
    assert best is not None  # config.restarts >= 1
    return best
