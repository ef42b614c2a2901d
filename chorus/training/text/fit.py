"""Offline text models (scikit-learn): the course's baselines and Chorus's models for predicting whether a review
is a verified purchase and its star rating from its text, their evaluation on a seeded 80/10/10 split, and the
fit of the served :class:`~chorus.services.rating.text.scorer.ReviewScorer` (the ``text`` component of ``chorus
train``). Never imported by the service.

* Verified purchase, judged by the balanced error rate ``BER = 1 - (TPR + TNR) / 2``. Course baseline: logistic
  regression on ``[1, review length in characters, star rating]`` (scikit-learn's defaults, C = 1, classes as they
  come). Chorus: class-balanced logistic regression on the TF-IDF words and bigrams of the text plus the
  standardised ``[ln(1 + length), rating, ln(1 + helpful votes)]``, C chosen by validation BER.
* Star rating from the text, judged by MSE. Course baseline: least squares on ``[1, counts of the 100 most common
  words]`` (words by :func:`~chorus.services.rating.text.features.course_words`, counted over the training
  reviews). Chorus: ridge regression on the TF-IDF words and bigrams, α chosen by validation MSE.

Protocol of both tasks: ``holdout_split(n, seed, (0.8, 0.1, 0.1))``; the vocabulary and every model see training
rows only; each model's hyperparameter is chosen on validation; ``selected`` is the model with the better
validation figure; then every model is refitted on train + validation and scored once on test.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from chorus.services.rating.text.features import (
    TextColumn,
    TfidfVocabulary,
    analyze,
    course_words,
    review_length,
)
from chorus.services.rating.text.scorer import ReviewScorer, write_scorer
from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import DataError
from chorus.shared.data import Ratings, holdout_split
from chorus.shared.progress import Progress
from chorus.training.rating.accuracy import metrics

#: C values of the verified classifier, α values of the text ridge (chosen on validation).
VERIFIED_C = (0.03, 0.1, 0.3, 1.0, 3.0)
RIDGE_ALPHA = (0.3, 1.0, 3.0, 10.0)
#: Terms kept in the vocabulary (most frequent among those in at least MIN_DF training reviews).
MAX_TERMS = 50_000
MIN_DF = 2
#: Pseudo-count of the item offsets of the served scorer.
ITEM_OFFSET_SHRINKAGE = 5.0
#: The served scorer is fitted on at most this many reviews (a seeded sample), to bound ``chorus train``.
MAX_FIT_ROWS = 50_000
COMMON_WORDS = 100


def require_text(ratings: Ratings) -> TextColumn:
    """The review texts, or a :class:`DataError` naming what is missing."""
    if ratings.text is None or not any(t.strip() for t in ratings.text[: min(ratings.n, 1000)]):
        raise DataError(
            f"{ratings.report.path} has no review text ({ratings.report.format}): the text models need "
            "review_headline/review_body (Amazon TSV) or summary/reviewText (Amazon JSON); load it with with_text"
        )
    return ratings.text


def require_verified(ratings: Ratings) -> np.ndarray:
    """The verified flags, or a :class:`DataError` naming the missing field."""
    if ratings.verified is None:
        raise DataError(
            f"{ratings.report.path} has no verified-purchase field ({ratings.report.format}: verified_purchase in "
            "Amazon TSV, verified in Amazon JSON; the 2014 McAuley release has none), so --task verified cannot run"
        )
    return ratings.verified


def vectorizer() -> TfidfVectorizer:
    """scikit-learn's TF-IDF on :func:`analyze`'s words and bigrams (sublinear tf, l2 rows, smoothed idf)."""
    return TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=MIN_DF, max_features=MAX_TERMS, dtype=np.float64)


def vocabulary_of(vec: TfidfVectorizer) -> TfidfVocabulary:
    """The fitted vectorizer as the numpy-only :class:`TfidfVocabulary` the service applies."""
    return TfidfVocabulary(vec.get_feature_names_out().astype(str), vec.idf_.astype(np.float32), 2)


#: Steps of a progress count for fitting the vocabulary: one per tenth of the reviews analysed.
VOCABULARY_STEPS = 10


class Steps:
    """The steps of a fit done so far, passed to ``progress(done)`` as each ends (a progress bar's count): the
    count only rises, and each value is passed once."""

    def __init__(self, progress: Callable[[int], None] | None = None) -> None:
        self.progress = progress
        self.done = 0

    def to(self, done: int) -> None:
        """The count is ``done`` now (nothing happens if it already is, or beyond)."""
        if done > self.done:
            self.done = done
            if self.progress:
                self.progress(done)

    def step(self) -> None:
        """One more step done."""
        self.to(self.done + 1)

    def vocabulary(self, texts: TextColumn) -> tuple[TfidfVectorizer, sp.csr_matrix]:
        """:func:`vectorizer` fitted to ``texts``, and their TF-IDF rows, as :data:`VOCABULARY_STEPS` steps (one
        per tenth of the texts analysed: tokenising is most of the fit)."""
        start, n, seen = self.done, max(len(texts), 1), 0

        def counted(text: str) -> list[str]:
            nonlocal seen
            seen += 1
            self.to(start + min(seen * VOCABULARY_STEPS // n, VOCABULARY_STEPS))
            return analyze(text)

        vec = vectorizer().set_params(analyzer=counted)
        x = vec.fit_transform(texts)
        vec.set_params(analyzer=analyze)  # the fitted vectorizer as :func:`vectorizer` makes it
        self.to(start + VOCABULARY_STEPS)
        return vec, x


# --- metrics ----------------------------------------------------------------------------------------------------


def classification_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """BER, accuracy, TPR and TNR of bool predictions against bool truth (n,); a class absent from ``truth``
    counts its rate as 0.5 (no evidence either way)."""
    p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
    tpr = float((p & t).sum() / t.sum()) if t.any() else 0.5
    tnr = float((~p & ~t).sum() / (~t).sum()) if (~t).any() else 0.5
    return {"ber": 1.0 - (tpr + tnr) / 2, "accuracy": float((p == t).mean()), "tpr": tpr, "tnr": tnr}


# --- features ---------------------------------------------------------------------------------------------------


def course_verified_features(texts: TextColumn, rating: np.ndarray) -> np.ndarray:
    """The course's ``[length in characters, star rating]`` (the 1 is the intercept): float64 (n, 2)."""
    return np.column_stack([review_length(texts), np.asarray(rating, np.float64)])


def numeric_features(texts: TextColumn, rating: np.ndarray, helpful: np.ndarray | None) -> np.ndarray:
    """``[ln(1 + length), rating, ln(1 + helpful votes)]``: float64 (n, 3); votes 0 where the data has none."""
    votes = np.zeros(len(texts)) if helpful is None else np.asarray(helpful, np.float64)
    return np.column_stack([np.log1p(review_length(texts)), np.asarray(rating, np.float64), np.log1p(votes)])


def common_words(texts: TextColumn, k: int = COMMON_WORDS) -> list[str]:
    """The ``k`` most common course words of ``texts`` (ties by first appearance, as ``Counter.most_common``)."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(course_words(t))
    return [w for w, _ in counts.most_common(k)]


def word_counts(texts: TextColumn, words: list[str]) -> np.ndarray:
    """Counts of each of ``words`` in each text: float64 (n, len(words))."""
    col = {w: k for k, w in enumerate(words)}
    out = np.zeros((len(texts), len(words)))
    for r, t in enumerate(texts):
        for w in course_words(t):
            k = col.get(w)
            if k is not None:
                out[r, k] += 1
    return out


# --- models -----------------------------------------------------------------------------------------------------


@dataclass
class VerifiedClassifier:
    """Chorus's verified-purchase classifier: logistic regression on ``[TF-IDF, standardised numeric]``."""

    model: LogisticRegression
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(
        cls, x_text: sp.csr_matrix, numeric: np.ndarray, y: np.ndarray, c: float, seed: int = 0
    ) -> VerifiedClassifier:
        mean = numeric.mean(0)
        scale = numeric.std(0)
        scale[scale == 0] = 1.0
        model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=seed)
        model.fit(sp.hstack([x_text, (numeric - mean) / scale]).tocsr(), y)
        return cls(model, mean, scale)

    def predict(self, x_text: sp.csr_matrix, numeric: np.ndarray) -> np.ndarray:
        verified: NDArray[np.bool_] = self.model.predict(
            sp.hstack([x_text, (numeric - self.mean) / self.scale]).tocsr()
        ).astype(bool)
        return verified


def fit_course_verified(features: np.ndarray, y: np.ndarray) -> LogisticRegression:
    """The course baseline: ``LogisticRegression()`` on ``[length, rating]`` with its intercept."""
    return LogisticRegression().fit(features, y)


def fit_course_rating(counts: np.ndarray, y: np.ndarray) -> LinearRegression:
    """The course baseline: least squares on ``[1, counts of the 100 most common words]``."""
    return LinearRegression().fit(counts, y)


def _one_class(y: np.ndarray) -> bool:
    return bool(y.all() or not y.any())


# --- evaluation -------------------------------------------------------------------------------------------------


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tr, va, te = holdout_split(n, seed, (0.8, 0.1, 0.1))
    if tr.size == 0 or va.size == 0 or te.size == 0:
        raise DataError(f"{n} reviews are too few for an 80/10/10 split with non-empty validation and test parts")
    return tr, va, te


def _result(
    task: str,
    test: dict[str, dict[str, float]],
    validation: dict[str, float],
    chosen: dict[str, Any],
    tr: np.ndarray,
    va: np.ndarray,
    te: np.ndarray,
    seed: int,
    t0: float,
) -> dict[str, Any]:
    """A text task's answer: test figures per model, the one selected on ``validation`` (lower is better), the
    hyperparameters chosen, the split and the seconds since ``t0``."""
    key = "validation_ber" if task == "verified" else "validation_mse"
    return {
        "task": task,
        "models": test,
        "selected": min(validation, key=lambda k: validation[k]),
        key: validation,
        "chosen": chosen,
        "split": {"train": int(tr.size), "validation": int(va.size), "test": int(te.size), "seed": seed},
        "seconds": time.perf_counter() - t0,
    }


def _take(texts: TextColumn, rows: np.ndarray) -> list[str]:
    return [texts[k] for k in rows.tolist()]


#: Steps :func:`evaluate_verified` counts: the baseline's two fits, the vocabulary of the training rows, each C,
#: the vocabulary of train + validation and the refit.
VERIFIED_STEPS = 2 + VOCABULARY_STEPS + len(VERIFIED_C) + VOCABULARY_STEPS + 1


def evaluate_verified(ratings: Ratings, seed: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Verified-purchase classification on a seeded 80/10/10 split (see the module docstring); ``progress(done)``
    as each of the :data:`VERIFIED_STEPS` steps ends.

    Returns ``{"task": "verified", "models": {"baseline": {"ber", "accuracy", "tpr", "tnr"}, "text": {...}},
    "selected", "validation_ber": {...}, "chosen": {"C"}, "split", "seconds"}``.

    Raises
    ------
    DataError : no verified field, no text, too few rows, or a training part with one class only.
    """
    t0 = time.perf_counter()
    y = require_verified(ratings)
    texts = require_text(ratings)
    tr, va, te = _split(ratings.n, seed)
    if _one_class(y[tr]):
        raise DataError("every training review has the same verified flag: there is nothing to learn")
    fitted = np.concatenate([tr, va])
    course = course_verified_features(texts, ratings.rating)
    numeric = numeric_features(texts, ratings.rating, ratings.helpful_votes)
    validation: dict[str, float] = {}
    test: dict[str, dict[str, float]] = {}

    steps = Steps(progress)
    validation["baseline"] = classification_metrics(fit_course_verified(course[tr], y[tr]).predict(course[va]), y[va])[
        "ber"
    ]
    steps.step()
    test["baseline"] = classification_metrics(fit_course_verified(course[fitted], y[fitted]).predict(course[te]), y[te])
    steps.step()

    vec, x_tr = steps.vocabulary(_take(texts, tr))
    x_va = vec.transform(_take(texts, va))
    grid = {}
    for c in VERIFIED_C:
        clf = VerifiedClassifier.fit(x_tr, numeric[tr], y[tr], c, seed)
        grid[c] = classification_metrics(clf.predict(x_va, numeric[va]), y[va])["ber"]
        steps.step()
    best_c = min(grid, key=lambda c: (grid[c], c))
    validation["text"] = grid[best_c]
    vec, x_fitted = steps.vocabulary(_take(texts, fitted))
    clf = VerifiedClassifier.fit(x_fitted, numeric[fitted], y[fitted], best_c, seed)
    test["text"] = classification_metrics(clf.predict(vec.transform(_take(texts, te)), numeric[te]), y[te])
    steps.step()
    chosen = {"C": best_c, "grid": {str(c): b for c, b in grid.items()}}
    return _result("verified", test, validation, chosen, tr, va, te, seed, t0) | {"verified_fraction": float(y.mean())}


def fit_text_ridge(
    x_tr: sp.csr_matrix,
    y_tr: np.ndarray,
    x_va: sp.csr_matrix,
    y_va: np.ndarray,
    step: Callable[[], None] | None = None,
) -> tuple[float, dict[float, float]]:
    """The α of :data:`RIDGE_ALPHA` with the lowest validation MSE, and every α's MSE; ``step()`` after each α."""
    grid = {}
    for a in RIDGE_ALPHA:
        grid[a] = metrics(Ridge(alpha=a).fit(x_tr, y_tr).predict(x_va), y_va)["mse"]
        if step:
            step()
    return min(grid, key=lambda a: (grid[a], a)), grid


#: Steps :func:`evaluate_text_rating` counts: the baseline's two fits (with their word lists and counts), the
#: vocabulary of the training rows, each α, the vocabulary of train + validation and the refit.
TEXT_RATING_STEPS = 2 + VOCABULARY_STEPS + len(RIDGE_ALPHA) + VOCABULARY_STEPS + 1


def evaluate_text_rating(
    ratings: Ratings, seed: int = 0, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Star rating from the review text on a seeded 80/10/10 split (see the module docstring); predictions are
    clipped to the rating scale. ``progress(done)`` as each of the :data:`TEXT_RATING_STEPS` steps ends.

    Returns ``{"task": "text-rating", "models": {"baseline": {"mse", "rmse", "mae"}, "text": {...}}, "selected",
    "validation_mse", "chosen": {"alpha"}, "split", "seconds"}``.
    """
    t0 = time.perf_counter()
    texts = require_text(ratings)
    y = ratings.rating.astype(np.float64)
    low, high = ratings.scale.low, ratings.scale.high
    tr, va, te = _split(ratings.n, seed)
    fitted = np.concatenate([tr, va])

    def clip(p: np.ndarray) -> np.ndarray:
        clipped: NDArray[np.float64] = np.clip(p, low, high)
        return clipped

    validation: dict[str, float] = {}
    test: dict[str, dict[str, float]] = {}
    steps = Steps(progress)
    words = common_words(_take(texts, tr))
    counts = word_counts(texts, words)  # each row counts only its own words; the list comes from training rows
    validation["baseline"] = metrics(clip(fit_course_rating(counts[tr], y[tr]).predict(counts[va])), y[va])["mse"]
    steps.step()
    words = common_words(_take(texts, fitted))
    counts = word_counts(texts, words)
    test["baseline"] = metrics(clip(fit_course_rating(counts[fitted], y[fitted]).predict(counts[te])), y[te])
    steps.step()

    vec, x_tr = steps.vocabulary(_take(texts, tr))
    alpha, grid = fit_text_ridge(x_tr, y[tr], vec.transform(_take(texts, va)), y[va], steps.step)
    validation["text"] = grid[alpha]
    vec, x_fitted = steps.vocabulary(_take(texts, fitted))
    ridge = Ridge(alpha=alpha).fit(x_fitted, y[fitted])
    test["text"] = metrics(clip(ridge.predict(vec.transform(_take(texts, te)))), y[te])
    steps.step()
    chosen = {"alpha": alpha, "grid": {str(a): m for a, m in grid.items()}}
    return _result("text-rating", test, validation, chosen, tr, va, te, seed, t0) | {"common_words": words[:10]}


# --- the served scorer ------------------------------------------------------------------------------------------


def _scorer_rows(
    ratings: Ratings, rows: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`fit_scorer`'s reviews (``rows``, at most :data:`MAX_FIT_ROWS` of them, sorted), the seeded permutation
    of their positions, and its validation and training rows."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(rows)[:MAX_FIT_ROWS]) if rows.size > MAX_FIT_ROWS else np.sort(rows)
    perm = rng.permutation(rows.size)
    n_va = max(1, rows.size // 10)
    return rows, perm, rows[np.sort(perm[n_va:])], rows[np.sort(perm[:n_va])]


def _fits_verified(ratings: Ratings, rows: np.ndarray, tr: np.ndarray) -> bool:
    """Whether :func:`fit_scorer` fits the verified classifier: the data has the field, with both classes among
    the reviews and among their training part."""
    flags = ratings.verified
    return flags is not None and not _one_class(flags[tr]) and not _one_class(flags[rows])


def scorer_steps(ratings: Ratings, rows: np.ndarray, seed: int = 0) -> int:
    """The ``progress`` total of :func:`fit_scorer` with these arguments: the vocabulary's
    :data:`VOCABULARY_STEPS` tenths, one per α of :data:`RIDGE_ALPHA`, the refit, the two halves' ridges, and, where the
    verified classifier is fitted, one per C of :data:`VERIFIED_C` and its refit."""
    rows, _, tr, _ = _scorer_rows(ratings, rows, seed)
    verified = len(VERIFIED_C) + 1 if _fits_verified(ratings, rows, tr) else 0
    return VOCABULARY_STEPS + len(RIDGE_ALPHA) + 3 + verified


def fit_scorer(
    ratings: Ratings, rows: np.ndarray, seed: int = 0, progress: Callable[[int], None] | None = None
) -> tuple[ReviewScorer, dict[str, Any]]:
    """Fit the served :class:`ReviewScorer` on ``rows`` (int (m,)) of ``ratings``: the text ridge (α chosen on a
    seeded 10% of ``rows``, then refitted on all of them), the item offsets from those reviews' out-of-sample
    residuals, and the verified classifier (C chosen on the same 10%) when the data has the field and both classes.

    The item offset of item i is ``Σ (r − ŕ) / (n_i + c)`` over its reviews among ``rows``, where ŕ is the
    prediction of a ridge that did not see the review (fitted on the other half of ``rows``), and c is
    :data:`ITEM_OFFSET_SHRINKAGE`. Returns the scorer and its validation metrics. ``progress(done)`` is called as
    each of the :func:`scorer_steps` steps ends (the vocabulary's first, a tenth of the reviews at a time).
    """
    steps = Steps(progress)
    texts = require_text(ratings)
    y = ratings.rating.astype(np.float64)
    rows, perm, tr, va = _scorer_rows(ratings, rows, seed)
    vec, x = steps.vocabulary(_take(texts, rows))
    pos = {r: k for k, r in enumerate(rows.tolist())}
    x_tr, x_va = x[[pos[r] for r in tr.tolist()]], x[[pos[r] for r in va.tolist()]]
    alpha, grid = fit_text_ridge(x_tr, y[tr], x_va, y[va], steps.step)
    ridge = Ridge(alpha=alpha).fit(x, y[rows])
    steps.step()
    # out-of-sample residuals: two halves, each predicted by a ridge fitted on the other
    half = np.zeros(rows.size, bool)
    half[perm[: rows.size // 2]] = True
    residual = np.zeros(rows.size)
    for side in (half, ~half):
        if not (side.all() or not side.any()):
            residual[side] = y[rows][side] - Ridge(alpha=alpha).fit(x[~side], y[rows][~side]).predict(x[side])
        steps.step()
    items = ratings.item[rows]
    offset = np.bincount(items, residual, ratings.n_items) / (
        np.bincount(items, minlength=ratings.n_items) + ITEM_OFFSET_SHRINKAGE
    )
    info: dict[str, Any] = {"rating_validation_mse": grid[alpha], "alpha": alpha, "fit_rows": int(rows.size)}
    verified_coef = verified_numeric = None
    verified_intercept = 0.0
    flags = ratings.verified
    if flags is not None and _fits_verified(ratings, rows, tr):
        votes = None if ratings.helpful_votes is None else ratings.helpful_votes[rows]
        numeric = numeric_features(_take(texts, rows), y[rows], votes)
        idx_tr = np.array([pos[r] for r in tr.tolist()])
        idx_va = np.array([pos[r] for r in va.tolist()])
        bers = {}
        for c in VERIFIED_C:
            clf = VerifiedClassifier.fit(x[idx_tr], numeric[idx_tr], flags[tr], c, seed)
            bers[c] = classification_metrics(clf.predict(x[idx_va], numeric[idx_va]), flags[va])["ber"]
            steps.step()
        c = min(bers, key=lambda k: (bers[k], k))
        clf = VerifiedClassifier.fit(x, numeric, flags[rows], c, seed)
        steps.step()
        coef = clf.model.coef_.ravel()
        m = x.shape[1]
        verified_coef = coef[:m].astype(np.float32)
        verified_numeric = np.vstack([clf.mean, clf.scale, coef[m:]]).astype(np.float64)
        verified_intercept = float(clf.model.intercept_[0])
        info |= {"verified_validation_ber": bers[c], "C": c}
    scorer = ReviewScorer(
        vocabulary=vocabulary_of(vec),
        rating_coef=ridge.coef_.astype(np.float32),
        rating_intercept=float(ridge.intercept_),
        item_offset=offset.astype(np.float32),
        verified_coef=verified_coef,
        verified_numeric=verified_numeric,
        verified_intercept=verified_intercept,
        low=ratings.scale.low,
        high=ratings.scale.high,
    )
    return scorer, info


def train_component(ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """``chorus train`` entry point of the ``text`` component: the review scorer fitted on the training and
    validation rows of the rating component's split (``holdout_split(n, seed)``), so its figures never saw that
    split's test reviews. Data without review text (MovieLens) gets no component: ``{"not_trained": reason}``.
    ``progress``: a bar on a terminal over :func:`fit_scorer`'s steps."""
    try:
        require_text(ratings)
    except DataError:
        return {"not_trained": f"{ratings.report.format} data has no review text"}
    tr, va, _ = holdout_split(ratings.n, seed, (0.8, 0.1, 0.1))
    rows = np.concatenate([tr, va])
    t0 = time.perf_counter()
    with Progress("text scorer", total=scorer_steps(ratings, rows, seed)) as bar:
        bar.enabled = bar.enabled and progress
        scorer, info = fit_scorer(ratings, rows, seed, bar.update)
    write_scorer(writer, scorer, info | {"seconds": time.perf_counter() - t0})
    return {
        "terms": int(scorer.vocabulary.terms.shape[0]),
        "rating_validation_mse": round(info["rating_validation_mse"], 4),
        "verified_validation_ber": None if "C" not in info else round(info["verified_validation_ber"], 4),
    }
