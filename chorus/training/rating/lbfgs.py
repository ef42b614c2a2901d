"""L-BFGS (Liu & Nocedal 1989, through ``scipy.optimize``) on the objective of
:mod:`chorus.training.rating.objective` with its analytic gradient: slower than alternating least squares, and the
reference the ALS solutions are checked against (see docs/models.md)."""

from __future__ import annotations

import time

import numpy as np
import scipy.optimize

from chorus.services.rating.models import RatingModel
from chorus.training.rating.config import DEFAULT_CONFIG, LatentConfig
from chorus.training.rating.fitting import FitInfo, Trainset
from chorus.training.rating.objective import Params, Problem, init_params


def fit_lbfgs(
    data: Trainset,
    config: LatentConfig = DEFAULT_CONFIG,
    maxiter: int = 500,
    tol: float = 1e-10,
    init: Params | None = None,
) -> tuple[RatingModel, FitInfo]:
    """Fit the bias (K = 0) or latent factor model by ``scipy.optimize.minimize(method="L-BFGS-B")`` on ``L``
    with the analytic gradient, in float64.

    The same initialisation as :func:`chorus.training.rating.als.fit_als` (and restarts, keeping the lowest
    objective) unless ``init`` is given.

    Speed note: scipy's L-BFGS-B spends most of each iteration in BLAS calls on ``n_params × maxcor`` arrays,
    which OpenBLAS spreads over threads; on a machine whose other core is busy that can cost 10× (MovieLens
    100K, K = 50, 200 iterations: 75 s with the default threads, 5.5 s with ``OPENBLAS_NUM_THREADS=1``;
    scipy/scipy#26137).
    """
    t0 = time.perf_counter()
    prob = Problem(data, config)
    n_users, n_items, k = data.n_users, data.n_items, config.n_factors

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = prob.value_and_grad(Params.unpack(theta, n_users, n_items, k))
        return value, grad.pack()

    rng = np.random.default_rng(config.seed)
    best = None
    for restart in range(1 if init is not None else config.restarts):
        p0 = init if init is not None else init_params(n_users, n_items, k, data.rating.mean(), config.init_scale, rng)
        res = scipy.optimize.minimize(
            fun,
            p0.pack(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-12, "maxcor": 10},
        )
        if best is None or res.fun < best[0].fun:
            best = (res, restart)
    assert best is not None  # at least one run
    res, restart = best
    info = FitInfo(
        trainer="lbfgs",
        sweeps=int(res.nit),
        best_sweep=int(res.nit),
        final_objective=float(res.fun),
        seconds=time.perf_counter() - t0,
        restart=restart,
    )
    params = Params.unpack(res.x, n_users, n_items, k)
    return params.to_model("latent" if k else "bias", data), info
