"""Feature priors of the biases: the bias-only model's β_u and β_i moved by what the user's and the item's *other*
training reviews say (their words and the shape of their star distribution), learned by stacking (Wolpert 1992).

A bias-only model shrinks every user and every item towards zero with one ridge; its β is the same for a user who
gave 5, 5, 5, 5, 5 and one who gave 5, 1, 5, 3, 5 with the same mean, and for an item whose 5-star reviews read
"broke after a week" and one whose read "superb". Here a ridge regression learns, from the bias residual
``r − (α + β_u + β_i)`` of reviews the biases did not see, how much such per-user and per-item profiles move the
prediction (:data:`USER_COLUMNS`, :data:`ITEM_COLUMNS`):

1. **Out-of-fold design.** The training rows are split into ``folds`` parts; for each part, the biases (ridge λ_b)
   and the profiles are fitted on the other parts, and each row of the part gets the pair design
   ``[α + β_u + β_i, β_u, β_i, user profile, item profile]`` and the target ``r − (α + β_u + β_i)`` (so no row's
   own rating or text enters its own design).
2. **Ridge.** Columns standardised, ridge α chosen from :attr:`PriorConfig.ridges` by ``folds``-fold
   cross-validation over those rows (α scaled with the rows fitted).
3. **Folded into the biases.** The design is linear in β and in per-user and per-item columns, so the fitted
   correction is a per-user and a per-item offset and a rescaling of α, β_u, β_i (:class:`BiasPrior`): the model
   served stays ``α' + β'_u + β'_i``, with the profiles recomputed on all training rows.

Only training reviews are read: the design rows' profiles come from the other training rows, and the text
prediction ŕ of each training review is out of fold (:func:`chorus.training.text.aware.text_features`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.linear_model import Ridge

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import kfold_split
from chorus.training.rating.baseline import solve_biases
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params, Problem

#: Profile columns of users and items alike (each a mean over the row's training reviews, shrunk towards the
#: global mean with :attr:`PriorConfig.pseudo_count` pseudo-reviews, except the count and the text bias):
#: ln(1 + n), mean star, share of 5 stars, share of 1-2 stars, standard deviation of the stars, mean ŕ − r (the
#: words' verdict against the stars given: a lenient or a harsh user), mean ln(1 + length), mean bias residual,
#: and the text bias (the ridge prediction of β from the mean TF-IDF row of the reviews, out of fold over rows).
COMMON_COLUMNS = ("log_count", "mean", "five", "low", "sd", "text_gap", "log_length", "residual", "text_bias")
#: Per user: the common columns, then plain means over the user's training items of those items' mean star, share
#: of 5 stars, text bias, mean ŕ and bias β_i (what the user chose to review).
USER_COLUMNS = (*COMMON_COLUMNS, "items_mean", "items_five", "items_text_bias", "items_sentiment", "items_bias")
#: Per item: the common columns, its mean ŕ (what its reviews' words say, whatever the stars), then plain means over
#: its training reviewers of their mean star, share of 5 stars, text verdict, text bias and bias β_u (who rated it).
ITEM_COLUMNS = (
    *COMMON_COLUMNS,
    "sentiment",
    "users_mean",
    "users_five",
    "users_text_gap",
    "users_text_bias",
    "users_bias",
)
#: The pair design's leading columns, before the user's and the item's profile.
PAIR_COLUMNS = ("baseline", "user_bias", "item_bias")


@dataclass(frozen=True)
class PriorConfig:
    """Hyperparameters of the bias prior (defaults in one place).

    Attributes
    ----------
    folds : parts of the out-of-fold design, and of the cross-validation of the ridge.
    ridges : ridge α values tried (on standardised columns, for 10,000 rows; scaled with the rows fitted).
    pseudo_count : pseudo-reviews at the global mean in every profile mean.
    profile_ridge : ridge α of the text bias regressions (TF-IDF profile → β).
    """

    folds: int = 5
    ridges: tuple[float, ...] = (300.0, 1000.0, 3000.0, 10000.0, 30000.0)
    pseudo_count: float = 3.0
    profile_ridge: float = 3.0

    def __post_init__(self) -> None:
        if self.folds < 2 or not self.ridges or min(self.ridges) <= 0 or self.pseudo_count < 0:
            raise InvalidInput("bias prior: folds >= 2, ridges > 0 (at least one), pseudo_count >= 0")
        if self.profile_ridge <= 0:
            raise InvalidInput("bias prior: profile_ridge > 0")


DEFAULT_PRIOR = PriorConfig()
"""The defaults, as the fitters' default argument."""


@dataclass(frozen=True)
class ReviewColumns:
    """What the prior reads of the training reviews, row-aligned with the :class:`Trainset` it is fitted on.

    Attributes
    ----------
    sentiment : float64 (n,), ŕ: each review's out-of-fold text prediction of its stars.
    tfidf : CSR float64 (n, V), the reviews' TF-IDF rows.
    log_length : float64 (n,), ln(1 + review length in characters).
    """

    sentiment: np.ndarray
    tfidf: sp.csr_matrix
    log_length: np.ndarray

    def subset(self, rows: np.ndarray) -> ReviewColumns:
        return ReviewColumns(self.sentiment[rows], self.tfidf[rows], self.log_length[rows])


def fit_biases(data: Trainset, reg_bias: float) -> Params:
    """The bias-only model's exact ridge fit (λ_b = ``reg_bias``, count weighting)."""
    return solve_biases(Problem(data, LatentConfig(n_factors=0, reg_bias=reg_bias)))


def _shrunk_means(group: np.ndarray, n_groups: int, values: list[np.ndarray], pseudo: float) -> list[np.ndarray]:
    """Per group, ``(Σ v + pseudo · mean(v)) / (n + pseudo)`` for each value column: float64 (n_groups,) each."""
    count = np.bincount(group, minlength=n_groups)
    return [(np.bincount(group, v, n_groups) + pseudo * v.mean()) / np.maximum(count + pseudo, 1e-12) for v in values]


def _text_bias(
    group: np.ndarray, n_groups: int, bias: np.ndarray, tfidf: sp.csr_matrix, config: PriorConfig, seed: int
) -> np.ndarray:
    """Out-of-fold ridge predictions of ``bias`` (n_groups,) from each group's mean TF-IDF row: float64
    (n_groups,), the mean bias for groups without reviews."""
    owner = sp.csr_matrix((np.ones(group.size), (group, np.arange(group.size))), shape=(n_groups, group.size))
    count = np.bincount(group, minlength=n_groups)
    profile = sp.diags(1.0 / np.maximum(count, 1)) @ owner @ tfidf
    has = np.flatnonzero(count > 0)
    out = np.full(n_groups, bias[has].mean() if has.size else 0.0)
    if has.size < 2 * config.folds:
        return out
    for tr, te in kfold_split(has.size, config.folds, seed):
        fitted = Ridge(alpha=config.profile_ridge).fit(profile[has[tr]], bias[has[tr]])
        out[has[te]] = fitted.predict(profile[has[te]])
    return out


def _mean_over(group: np.ndarray, n_groups: int, values: np.ndarray) -> np.ndarray:
    """Plain per-group means of the rows of ``values`` float64 (n, p): float64 (n_groups, p), 0 without rows."""
    count = np.maximum(np.bincount(group, minlength=n_groups), 1)
    return np.column_stack([np.bincount(group, values[:, k], n_groups) / count for k in range(values.shape[1])])


def profiles(
    data: Trainset, params: Params, reviews: ReviewColumns, config: PriorConfig, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The user and item profiles of :data:`USER_COLUMNS` and :data:`ITEM_COLUMNS` from the ratings ``data``,
    their bias fit ``params`` and their ``reviews``: float64 (n_users, 14) and (n_items, 15)."""
    r, pseudo = data.rating, config.pseudo_count
    residual = r - (params.alpha + params.bu[data.user] + params.bi[data.item])
    values = [r, (r >= 5).astype(float), (r <= 2).astype(float), r**2, reviews.sentiment - r, reviews.log_length]
    out = []
    for group, n_groups, bias in ((data.user, data.n_users, params.bu), (data.item, data.n_items, params.bi)):
        mean, five, low, square, gap, length, res = _shrunk_means(group, n_groups, [*values, residual], pseudo)
        sd = np.sqrt(np.maximum(square - mean**2, 0.0))
        log_count = np.log1p(np.bincount(group, minlength=n_groups))
        text_bias = _text_bias(group, n_groups, bias, reviews.tfidf, config, seed)
        out.append([log_count, mean, five, low, sd, gap, length, res, text_bias])
    (sentiment,) = _shrunk_means(data.item, data.n_items, [reviews.sentiment], pseudo)
    user, item = np.column_stack(out[0]), np.column_stack([*out[1], sentiment])
    col = {name: k for k, name in enumerate(ITEM_COLUMNS)}
    of_items = np.column_stack([item[:, [col["mean"], col["five"], col["text_bias"], col["sentiment"]]], params.bi])
    of_users = np.column_stack([user[:, [col["mean"], col["five"], col["text_gap"], col["text_bias"]]], params.bu])
    return (
        np.column_stack([user, _mean_over(data.user, data.n_users, of_items[data.item])]),
        np.column_stack([item, _mean_over(data.item, data.n_items, of_users[data.user])]),
    )


def pair_design(
    params: Params, user_profile: np.ndarray, item_profile: np.ndarray, users: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """The stacking design of pairs ``users, items`` (int (m,)): float64 (m, 3 + 14 + 15), the columns
    :data:`PAIR_COLUMNS`, then the user's and the item's profile."""
    bu, bi = params.bu[users], params.bi[items]
    return np.column_stack([params.alpha + bu + bi, bu, bi, user_profile[users], item_profile[items]])


def stacked_rows(
    data: Trainset,
    reviews: ReviewColumns,
    reg_bias: float,
    config: PriorConfig,
    seed: int = 0,
    step: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The out-of-fold design (float64 (n, 32)) and target (bias residual, float64 (n,)) of every row of ``data``:
    each part's rows are described by biases and profiles fitted on the other parts; ``step()`` after each part."""
    design = np.zeros((data.n, len(PAIR_COLUMNS) + len(USER_COLUMNS) + len(ITEM_COLUMNS)))
    target = np.zeros(data.n)
    for rest, part in kfold_split(data.n, config.folds, seed):
        others = data.subset(rest)
        params = fit_biases(others, reg_bias)
        user_profile, item_profile = profiles(others, params, reviews.subset(rest), config, seed)
        u, i = data.user[part], data.item[part]
        design[part] = pair_design(params, user_profile, item_profile, u, i)
        target[part] = data.rating[part] - params.scores(u, i)
        if step:
            step()
    return design, target


@dataclass(frozen=True)
class StandardRidge:
    """A ridge regression on standardised columns: ``ŷ = intercept + ((x − mean) / scale) · weights``."""

    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alpha: float) -> StandardRidge:
        """Fitted to ``x`` float64 (n, p) and ``y`` (n,), penalty ``alpha ‖weights‖²`` (intercept free)."""
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - mean) / scale
        weights = np.linalg.solve(z.T @ z + alpha * np.eye(x.shape[1]), z.T @ (y - y.mean()))
        return cls(float(y.mean()), mean, scale, weights)

    def predict(self, x: np.ndarray) -> np.ndarray:
        predicted: NDArray[np.float64] = self.intercept + ((x - self.mean) / self.scale) @ self.weights
        return predicted

    @property
    def slopes(self) -> np.ndarray:
        """The weights per unit of each raw column."""
        slopes: NDArray[np.float64] = self.weights / self.scale
        return slopes

    @property
    def offset(self) -> float:
        """The prediction at all-zero columns."""
        return self.intercept - float(self.mean @ self.slopes)


def choose_ridge(
    design: np.ndarray, target: np.ndarray, config: PriorConfig, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """The ridge α of :attr:`PriorConfig.ridges` (per 10,000 rows) with the lowest ``folds``-fold cross-validated
    squared error over the rows; also each α's mean squared error."""
    n = target.size
    errors = {}
    for alpha in config.ridges:
        total = 0.0
        for tr, te in kfold_split(n, config.folds, seed + 1):
            model = StandardRidge.fit(design[tr], target[tr], alpha * tr.size / 10_000)
            total += float(((model.predict(design[te]) - target[te]) ** 2).sum())
        errors[alpha] = total / n
    return min(errors, key=lambda a: errors[a]), errors


@dataclass(frozen=True)
class BiasPrior:
    """A fitted prior, folded into bias parameters: ``α' = α + offset + s_0 α``, ``β'_u = (1 + s_0 + s_u) β_u +
    user_offset[u]``, ``β'_i = (1 + s_0 + s_i) β_i + item_offset[i]`` (s the slopes of :data:`PAIR_COLUMNS`).

    Attributes
    ----------
    reg_bias : the λ_b of the biases it applies to.
    ridge : the chosen ridge α (per 10,000 rows).
    slopes : float64 (3,), per :data:`PAIR_COLUMNS`.
    offset : float, the ridge's value at zero columns.
    user_offset, item_offset : float64 (n_users,), (n_items,): the profiles' part.
    cv_mse : the cross-validated MSE of the bias residual for each ridge α tried.
    """

    reg_bias: float
    ridge: float
    slopes: np.ndarray
    offset: float
    user_offset: np.ndarray
    item_offset: np.ndarray
    cv_mse: dict[float, float]

    def apply(self, params: Params) -> Params:
        """The biases ``params`` (fitted with :attr:`reg_bias` on the prior's training rows) moved by the prior."""
        s0, su, si = self.slopes
        return Params(
            params.alpha * (1 + s0) + self.offset,
            (1 + s0 + su) * params.bu + self.user_offset,
            (1 + s0 + si) * params.bi + self.item_offset,
            params.pu,
            params.qi,
        )


def fit_prior(
    data: Trainset,
    reviews: ReviewColumns,
    reg_bias: float,
    config: PriorConfig = DEFAULT_PRIOR,
    seed: int = 0,
    step: Callable[[], None] | None = None,
) -> BiasPrior:
    """The :class:`BiasPrior` of the training ratings ``data`` and their ``reviews`` (row-aligned); ``step()``
    after each out-of-fold part of :func:`stacked_rows` (the most of the time)."""
    design, target = stacked_rows(data, reviews, reg_bias, config, seed, step)
    ridge, cv_mse = choose_ridge(design, target, config, seed)
    model = StandardRidge.fit(design, target, ridge * data.n / 10_000)
    params = fit_biases(data, reg_bias)
    # One more user and item without reviews: their profiles are what an unknown user or item has, so the offsets
    # are taken relative to them and α' carries them; the fallbacks (α' + β'_i, α' + β'_u) are then the prior's
    # own prediction for a user or an item without training reviews.
    wide = Trainset(data.user, data.item, data.rating, data.n_users + 1, data.n_items + 1, data.low, data.high)
    padded = Params(params.alpha, np.append(params.bu, 0.0), np.append(params.bi, 0.0), params.pu, params.qi)
    user_profile, item_profile = profiles(wide, padded, reviews, config, seed)
    k, ku = len(PAIR_COLUMNS), len(PAIR_COLUMNS) + len(USER_COLUMNS)
    slopes = model.slopes
    empty = user_profile[-1] @ slopes[k:ku] + item_profile[-1] @ slopes[ku:]
    user_profile, item_profile = user_profile - user_profile[-1], item_profile - item_profile[-1]
    return BiasPrior(
        reg_bias=reg_bias,
        ridge=ridge,
        slopes=slopes[:k].copy(),
        offset=model.offset + float(empty),
        user_offset=user_profile[:-1] @ slopes[k:ku],
        item_offset=item_profile[:-1] @ slopes[ku:],
        cv_mse=cv_mse,
    )
