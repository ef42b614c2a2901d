"""Hyperparameters of the bias and latent factor models and of their trainers, with their defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chorus.shared.contract.errors import InvalidInput


@dataclass(frozen=True)
class LatentConfig:
    """Hyperparameters of a bias or latent factor model and of its trainer (defaults tuned on MovieLens 100K
    validation splits; see ``bench/rating.py``).

    Attributes
    ----------
    n_factors : int
        K, the length of γ; 0 gives the bias-only model.
    reg_bias : float
        λ_b, ridge of the biases.
    reg_factors : float
        λ_f, ridge of the factors.
    weighting : {"count", "uniform"}
        ``"count"``: ridge λ·(n + c) per row, the default; ``"uniform"``: λ·Σ‖·‖², the plain ridge of Koren,
        Bell & Volinsky 2009 (see :mod:`chorus.training.rating.objective` and docs/models.md).
    smoothing_bias, smoothing_factors : float
        The pseudo-counts c_b, c_f of ``"count"`` weighting (ignored by ``"uniform"``).
    init_scale : float
        Standard deviation of the initial γ. Small: early sweeps then grow the strongest directions first, and
        early stopping on validation acts as extra regularisation.
    max_sweeps : int
        ALS sweeps (one over users, one over items); with a validation set, the most run.
    patience : int
        With a validation set, stop after this many sweeps without a better validation RMSE and keep the best
        sweep's parameters.
    restarts : int
        Independent initialisations; the best is kept.
    seed : int
        Seed of ``numpy.random.default_rng`` for the initial γ.
    dtype : {"float32", "float64"}
        Arithmetic of ALS (``"float32"`` is fast); L-BFGS always uses float64.
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


DEFAULT_CONFIG = LatentConfig()
"""The defaults, as the trainers' default argument."""

#: ``chorus train`` and ``chorus evaluate`` fit the text-aware model (``chorus/training/text/aware.py``) on data up
#: to this many reviews: its earlier grid (TF-IDF of every training review twice, a truncated SVD, a grid of bias
#: solves) made the rating component take 220.7 s instead of 88.5 s on the 200,000-review demo data (a loaded 2-core
#: machine). The feature prior alone (the default grid) took 11.0 CPU seconds for select and refit on 50,000
#: generated reviews and about 7 s per fold on the Amazon 5-core file (load average about 5). It lives here, not
#: beside the model, so that a run on more reviews does not import scikit-learn (1.1 s of the rating component's time
#: at 1M reviews).
TEXT_AWARE_MAX_ROWS = 50_000
