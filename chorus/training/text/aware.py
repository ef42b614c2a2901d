"""Offline fit and selection of the text-aware rating model
(:class:`~chorus.services.rating.models.text_aware.TextAwareModel`); never imported by the service.

The model is ``f(u, i) = α + β_u + β_i + γ_u · γ_i`` with three text-derived parts (docs/models.md, "Text-aware
rating model"):

1. **Text-conditioned bias shrinkage.** Each training review's star rating r is blended with ŕ, the prediction of a
   TF-IDF ridge (the text-rating model of :mod:`.fit`) that did not see that review (out of fold, 3 folds): the
   biases are the exact ridge minimisers (:func:`~chorus.training.rating.baseline.solve_biases`) for the targets
   ``r + λ (ŕ − r)``. λ = 0 is the bias-only model.
2. **Item text factors** (the item side of HFT, McAuley & Leskovec 2013): γ_i is the unit-length mean of item i's
   training reviews' truncated-SVD TF-IDF embeddings (first K dimensions), and γ_u the ridge fit, per user, of the
   user's bias residuals ``r − (α + β_u + β_i)`` on those γ_i, with penalty ``λ_u ‖γ_u‖²``. K = 0 leaves it out.
3. **Feature priors of the biases** (:mod:`.prior`, the served default): the biases moved by a ridge, learned out
   of fold, on what the user's and the item's other training reviews say (text verdict against stars, text-predicted
   bias, star distribution); its ridge is chosen by cross-validation inside the training rows.

Only the text of training reviews is read (rows handed to :func:`TextAwareFit.__call__` as ``rows`` and ``val``;
a test review's text never: ``tests/rating/test_text_aware.py`` checks with a spy). (λ, K, λ_u) are chosen on the
validation rows by RMSE, with λ_b the bias model's own choice; the winner is refitted on train + validation. The
default grid is the prior alone: on the Amazon 5-core file the validation rows (about 800 per fold) are too few to
choose among variants within 0.5% of each other (bench/text.py lists each variant's figure).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from chorus.services.rating.models.text_aware import TextAwareModel
from chorus.services.rating.text.features import TextColumn, review_length
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import kfold_split
from chorus.training.rating.accuracy import rmse
from chorus.training.rating.baseline import solve_biases
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params, Problem
from chorus.training.text.fit import VOCABULARY_STEPS, Steps
from chorus.training.text.prior import DEFAULT_PRIOR, BiasPrior, PriorConfig, ReviewColumns, fit_prior

#: Out-of-fold folds of the text predictions ŕ, and the ridge α of those predictions.
SENTIMENT_FOLDS = 3
SENTIMENT_ALPHA = 1.0


@dataclass(frozen=True)
class TextAwareConfig:
    """One point of the text-aware model's grid.

    Attributes
    ----------
    reg_bias : λ_b of the biases (as :class:`~chorus.training.rating.config.LatentConfig`'s, count weighting).
    blend : λ, the weight of the text prediction in the bias targets (0: the ratings alone).
    n_factors : K, the item text profile's length (0: no factor term).
    reg_user : λ_u, the ridge of γ_u.
    prior : move the biases by the feature prior (:class:`~chorus.training.text.prior.BiasPrior`), fitted
        with the plain biases of λ_b; with ``blend`` > 0 its correction applies to the blended biases.
    """

    reg_bias: float = 0.1
    blend: float = 0.0
    n_factors: int = 0
    reg_user: float = 30.0
    prior: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.blend <= 1 or self.n_factors < 0 or self.reg_user <= 0 or self.reg_bias < 0:
            raise InvalidInput("text-aware grid: blend in [0, 1], n_factors >= 0, reg_user > 0, reg_bias >= 0")


@dataclass(frozen=True)
class TextAwareGrid:
    """The values tried on validation (defaults in one place; each combination of prior × blend × (K, λ_u)).

    The default is the feature prior alone (its own ridge chosen by cross-validation inside the training rows);
    the earlier grid, blend (0, 0.2, 0.4) × K (0, 8, 16) × λ_u (10, 30, 100) without the prior, gained 0.31% over
    bias-only on the Amazon 5-core file against the prior's 0.8% (bench/text.py)."""

    blend: tuple[float, ...] = (0.0,)
    n_factors: tuple[int, ...] = (0,)
    reg_user: tuple[float, ...] = (30.0,)
    prior: tuple[bool, ...] = (True,)

    def points(self, reg_bias: float) -> list[TextAwareConfig]:
        factor_points = [(k, lu) for k in self.n_factors for lu in (self.reg_user if k else self.reg_user[:1])]
        return [
            TextAwareConfig(reg_bias, b, k, lu, prior)
            for prior in self.prior
            for b in self.blend
            for k, lu in factor_points
        ]


@dataclass
class TextFeatures:
    """What the text of the training reviews gives the model.

    Attributes
    ----------
    sentiment : numpy.ndarray
        float64 (n,), ŕ: each training review's out-of-fold text prediction.
    item_profile : numpy.ndarray
        float64 (n_items, K_max), unit rows (zero for items without training reviews).
    prior : BiasPrior or None
        The feature prior of the biases, when asked for (``reg_bias`` of :func:`text_features`).
    reviews : ReviewColumns or None
        What the prior read of the reviews (ŕ, TF-IDF rows, lengths), with it.
    """

    sentiment: np.ndarray
    item_profile: np.ndarray
    prior: BiasPrior | None = None
    reviews: ReviewColumns | None = None


def feature_steps(max_factors: int, prior: PriorConfig | None) -> int:
    """Steps :func:`text_features` counts: the vocabulary's (:data:`~chorus.training.text.fit.VOCABULARY_STEPS`),
    one per sentiment fold, one for the item profiles where ``max_factors`` > 0, and, with a ``prior``, one per
    part of its out-of-fold design and one for the rest of its fit."""
    return VOCABULARY_STEPS + SENTIMENT_FOLDS + int(max_factors > 0) + (prior.folds + 1 if prior else 0)


def text_features(
    data: Trainset,
    texts: TextColumn,
    max_factors: int,
    seed: int = 0,
    reg_bias: float | None = None,
    prior: PriorConfig = DEFAULT_PRIOR,
    steps: Steps | None = None,
) -> TextFeatures:
    """:class:`TextFeatures` of the training ratings ``data`` and their texts (``texts[k]`` is row k's); with
    ``reg_bias``, the feature prior of the biases of that λ_b too. ``steps`` counts :func:`feature_steps`
    more steps as they end."""
    steps = Steps() if steps is None else steps
    start = steps.done
    x = steps.vocabulary(texts)[1]
    sentiment = np.zeros(data.n)
    if data.n >= 2 * SENTIMENT_FOLDS:
        for tr, te in kfold_split(data.n, SENTIMENT_FOLDS, seed):
            sentiment[te] = Ridge(alpha=SENTIMENT_ALPHA).fit(x[tr], data.rating[tr]).predict(x[te])
            steps.step()
    else:
        sentiment[:] = data.rating
    steps.to(start + VOCABULARY_STEPS + SENTIMENT_FOLDS)
    k = min(max_factors, x.shape[1] - 1, data.n - 1)
    profile = np.zeros((data.n_items, max(k, 0)))
    if k > 0:
        z = TruncatedSVD(k, random_state=seed).fit_transform(x)
        owner = sp.csr_array((np.ones(data.n), (data.item, np.arange(data.n))), shape=(data.n_items, data.n))
        profile = owner @ z
        norm = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norm, out=np.zeros_like(profile), where=norm > 0)
    steps.to(start + feature_steps(max_factors, None))
    if reg_bias is None:
        return TextFeatures(sentiment, profile)
    reviews = ReviewColumns(sentiment, x.tocsr(), np.log1p(review_length(texts)))
    fitted = fit_prior(data, reviews, reg_bias, prior, seed, steps.step)
    steps.to(start + feature_steps(max_factors, prior))
    return TextFeatures(sentiment, profile, fitted, reviews)


def fit_from_features(data: Trainset, features: TextFeatures, config: TextAwareConfig) -> TextAwareModel:
    """The text-aware model of ``config`` on training ratings ``data`` and their :class:`TextFeatures`."""
    target = data.rating + config.blend * (features.sentiment - data.rating)
    blended = replace(data, rating=target)
    params = solve_biases(Problem(blended, LatentConfig(n_factors=0, reg_bias=config.reg_bias)))
    if config.prior:
        if features.prior is None or features.prior.reg_bias != config.reg_bias:
            raise InvalidInput(f"text-aware point {config} needs text_features(..., reg_bias={config.reg_bias})")
        params = features.prior.apply(params)
    k = min(config.n_factors, features.item_profile.shape[1])
    q = features.item_profile[:, :k]
    p = np.zeros((data.n_users, k))
    if k:
        residual = data.rating - (params.alpha + params.bu[data.user] + params.bi[data.item])
        f = q[data.item]
        gram = np.zeros((data.n_users, k, k))
        for a in range(k):
            for b in range(a, k):
                gram[:, a, b] = gram[:, b, a] = np.bincount(data.user, f[:, a] * f[:, b], data.n_users)
        rhs = np.stack([np.bincount(data.user, f[:, a] * residual, data.n_users) for a in range(k)], axis=1)
        p = np.linalg.solve(gram + config.reg_user * np.eye(k), rhs[..., None])[..., 0]
    fitted = Params(params.alpha, params.bu, params.bi, p, q)
    model = fitted.to_model(TextAwareModel.kind, data)
    assert isinstance(model, TextAwareModel)
    return model


class TextAwareFit:
    """Selection and refit of the text-aware model over one text column (``texts[k]`` is review k's text), as a
    plug-in of :func:`chorus.training.rating.train.evaluate` and ``train``."""

    def __init__(self, texts: TextColumn, grid: TextAwareGrid = TextAwareGrid(), seed: int = 0) -> None:
        self.texts, self.grid, self.seed = texts, grid, seed

    def _read(self, rows: np.ndarray) -> list[str]:
        texts = self.texts
        return [texts[k] for k in rows.tolist()]

    def _feature_steps(self) -> int:
        """The steps of the widest :func:`text_features` of the grid (the most K, the prior where any point has it)."""
        return feature_steps(max(self.grid.n_factors), DEFAULT_PRIOR if any(self.grid.prior) else None)

    def steps(self) -> int:
        """The ``progress`` total of :meth:`__call__`: the selection's :func:`text_features` and one step per grid
        point, then the refit's features and its model (counted as the widest grid point's, whichever is chosen)."""
        return 2 * self._feature_steps() + len(self.grid.points(0.0)) + 1

    def select(
        self, data: Trainset, rows: np.ndarray, val: np.ndarray, reg_bias: float, steps: Steps | None = None
    ) -> dict[str, Any]:
        """Every grid point fitted on ``rows`` and scored on ``val`` (RMSE); the best point and the grid.
        ``steps`` counts the features' steps, then one per grid point."""
        steps = Steps() if steps is None else steps
        fit_on = data.subset(rows)
        with_prior = reg_bias if any(self.grid.prior) else None
        features = text_features(fit_on, self._read(rows), max(self.grid.n_factors), self.seed, with_prior, steps=steps)
        vu, vi, vr = data.user[val], data.item[val], data.rating[val]
        grid = []
        for point in self.grid.points(reg_bias):
            error = rmse(fit_from_features(fit_on, features, point).predict(vu, vi).rating, vr)
            grid.append({**asdict(point), "validation_rmse": error})
            steps.step()
        best = min(grid, key=lambda g: g["validation_rmse"])
        chosen = TextAwareConfig(**{k: v for k, v in best.items() if k != "validation_rmse"})
        return {"chosen": chosen, "validation_rmse": best["validation_rmse"], "grid": grid}

    def refit(
        self, data: Trainset, rows: np.ndarray, config: TextAwareConfig, steps: Steps | None = None
    ) -> TextAwareModel:
        """The model of ``config`` fitted on ``rows`` of ``data`` (their texts only); ``steps`` counts its
        features' steps and the model."""
        steps = Steps() if steps is None else steps
        fit_on = data.subset(rows)
        with_prior = config.reg_bias if config.prior else None
        features = text_features(fit_on, self._read(rows), config.n_factors, self.seed, with_prior, steps=steps)
        model = fit_from_features(fit_on, features, config)
        steps.step()
        return model

    def __call__(
        self,
        data: Trainset,
        rows: np.ndarray,
        val: np.ndarray,
        reg_bias: float,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[TextAwareModel, dict[str, Any]]:
        """Select on (``rows``, ``val``), refit on both; the model and ``{"chosen", "validation_rmse", "seconds"}``.
        ``progress(done)`` as each of the :meth:`steps` steps ends."""
        t0 = time.perf_counter()
        steps = Steps(progress)
        # One BLAS thread: the prior's products and solves then round alike for any --workers (a float64 difference
        # of 1e-12 flipped the last bit of a stored float32 bias with 2 threads), at no measurable cost (small
        # matrices; the TF-IDF ridges are sparse).
        with threadpool_limits(1, "blas"):
            selection = self.select(data, rows, val, reg_bias, steps)
            model = self.refit(data, np.concatenate([rows, val]), selection["chosen"], steps)
        steps.to(self.steps())  # where the chosen point's features were narrower than the widest
        return model, {
            "chosen": asdict(selection["chosen"]),
            "validation_rmse": selection["validation_rmse"],
            "seconds": time.perf_counter() - t0,
        }
