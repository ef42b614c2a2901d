"""Exact fits of the models without factors: the global mean, and the bias-only model f = α + β_u + β_i as the
exact minimiser of the objective of :mod:`chorus.training.rating.objective` with K = 0 (see docs/models.md)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse.linalg

from chorus.services.rating.models import RatingModel
from chorus.training.rating.config import DEFAULT_CONFIG, LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params, Problem


def fit_mean(data: Trainset) -> RatingModel:
    """The global-mean model: f(u, i) = mean training rating."""
    nu, ni = data.n_users, data.n_items
    params = Params(float(data.rating.mean()), np.zeros(nu), np.zeros(ni), np.zeros((nu, 0)), np.zeros((ni, 0)))
    return params.to_model("mean", data)


def solve_biases(prob: Problem, tol: float = 1e-10, maxiter: int = 2000) -> Params:
    """The exact minimiser of ``L`` with K = 0: the normal equations of the ridge regression of R on
    ``[1, e_u, e_i]``::

        N α       + Σ_u n_u β_u + Σ_i n_i β_i = Σ R
        n_u α     + (n_u + ρᵇ_u) β_u + Σ_{i∈I_u} β_i = Σ_{i∈I_u} R_ui      (every user; items alike)

    solved by Jacobi-preconditioned conjugate gradients (matrix-free: ``bincount`` products), to a residual
    below ``tol`` relative to the right-hand side. Alternating updates converge slowly along the direction
    that shifts α against all β_u, which the ridge barely penalises; CG does not.
    """
    user, item, nu, ni = prob.user, prob.item, prob.n_users, prob.n_items

    def matvec(v: np.ndarray) -> np.ndarray:
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


def fit_bias(data: Trainset, config: LatentConfig = DEFAULT_CONFIG, tol: float = 1e-10) -> RatingModel:
    """The bias-only model f = α + β_u + β_i, the exact minimiser of ``L`` with K = 0 (only ``reg_bias``,
    ``smoothing_bias`` and ``weighting`` of ``config`` matter); see :func:`solve_biases`."""
    return solve_biases(Problem(data, replace(config, n_factors=0)), tol).to_model("bias", data)
