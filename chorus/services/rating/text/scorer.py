"""The served review scorer: the star rating a review's text predicts, the probability that it is a verified
purchase, and the terms that moved the rating most; the ``text`` artifact component it is stored as.

Fitted offline by :func:`chorus.training.text.fit.fit_scorer`; served with numpy alone:

* predicted rating: ``clip(b + w · x(text) + o_i, low, high)``, the TF-IDF ridge of the text (``x``:
  :class:`~chorus.services.rating.text.features.TfidfVocabulary`) plus, when the review names a known item, the
  item's offset ``o_i`` (the shrunk mean of its training reviews' rating minus their text prediction);
* verified probability: ``σ(c + v · x(text) + u · z)`` with ``z`` the standardised ``[ln(1 + length in
  characters), star rating, ln(1 + helpful votes)]`` (a new review has no votes; without a rating the predicted
  one stands in), or None when the training data had no verified field;
* top terms: the terms of the text with the largest ``|w_t · x_t|``, signed.

Files (``.npy``): ``terms`` str (m,), ``idf``, ``rating_coef`` float32 (m,), ``item_offset`` float32 (n_items,),
and with a classifier ``verified_coef`` float32 (m,), ``verified_numeric`` float64 (3, 3) (rows: mean, scale,
weight of z). The manifest's hyperparameters hold the intercepts, the scale and the n-gram length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from chorus.services.rating.text.features import TfidfVocabulary
from chorus.shared.artifacts import Version, VersionWriter
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.contract.reviews import MAX_TEXT_CHARS

COMPONENT = "text"
TOP_TERMS = 10


class ScoredReview(NamedTuple):
    """What :meth:`ReviewScorer.score` answers: the clipped predicted rating, the verified probability (None
    without a classifier) and up to :data:`TOP_TERMS` (term, signed contribution to the rating) pairs."""

    predicted_rating: float
    verified_probability: float | None
    top_terms: list[tuple[str, float]]


@dataclass(eq=False)
class ReviewScorer:
    """The text models of one version (see the module docstring for the formulas).

    Attributes
    ----------
    vocabulary : TfidfVocabulary
    rating_coef : numpy.ndarray
        float32 (m,), w.
    rating_intercept : float
        b.
    item_offset : numpy.ndarray
        float32 (n_items,), o_i.
    verified_coef : numpy.ndarray or None
        float32 (m,), v.
    verified_numeric : numpy.ndarray or None
        float64 (3, 3): mean, scale and weight of each numeric feature.
    verified_intercept : float
    low, high : float
        The rating scale.
    """

    vocabulary: TfidfVocabulary
    rating_coef: np.ndarray
    rating_intercept: float
    item_offset: np.ndarray
    verified_coef: np.ndarray | None
    verified_numeric: np.ndarray | None
    verified_intercept: float
    low: float
    high: float

    def __post_init__(self) -> None:
        m = self.vocabulary.terms.shape
        if self.rating_coef.shape != m or (self.verified_coef is not None and self.verified_coef.shape != m):
            raise InvalidInput(f"array shapes do not fit together: {m[0]} terms, coefficients {self.rating_coef.shape}")
        if (self.verified_coef is None) != (self.verified_numeric is None) or (
            self.verified_numeric is not None and self.verified_numeric.shape != (3, 3)
        ):
            raise InvalidInput("array shapes do not fit together: the verified classifier is incomplete")

    @property
    def n_items(self) -> int:
        return int(self.item_offset.shape[0])

    def score(self, text: str, rating: float | None = None, item: int = -1) -> ScoredReview:
        """Score one review; ``item`` is an item index or -1 (none, or unknown: no offset).

        Raises
        ------
        InvalidInput : empty text, text over :data:`MAX_TEXT_CHARS` characters, a rating off the scale.
        """
        if not text.strip():
            raise InvalidInput("text is empty: send the review's text")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInput(f"text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
        if rating is not None and not self.low <= rating <= self.high:
            raise InvalidInput(f"rating must lie in {self.low:g}..{self.high:g}, got {rating:g}")
        cols, values = self.vocabulary.transform_one(text)
        contribution = values * self.rating_coef[cols].astype(np.float64)
        raw = self.rating_intercept + float(contribution.sum())
        if 0 <= item < self.n_items:
            raw += float(self.item_offset[item])
        predicted = float(np.clip(raw, self.low, self.high))
        probability = None
        if self.verified_coef is not None and self.verified_numeric is not None:
            mean, scale, weight = self.verified_numeric
            z = (np.array([np.log1p(len(text)), predicted if rating is None else rating, 0.0]) - mean) / scale
            logit = self.verified_intercept + float(values @ self.verified_coef[cols]) + float(z @ weight)
            probability = float(1.0 / (1.0 + np.exp(-logit)))
        order = np.lexsort((cols, -np.abs(contribution)))[:TOP_TERMS]
        terms = self.vocabulary.terms
        return ScoredReview(predicted, probability, [(str(terms[cols[k]]), float(contribution[k])) for k in order])

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "terms": self.vocabulary.terms,
            "idf": self.vocabulary.idf,
            "rating_coef": self.rating_coef,
            "item_offset": self.item_offset,
        }
        if self.verified_coef is not None and self.verified_numeric is not None:
            arrays |= {"verified_coef": self.verified_coef, "verified_numeric": self.verified_numeric}
        return arrays

    def to_meta(self) -> dict[str, Any]:
        return {
            "ngrams": self.vocabulary.ngrams,
            "rating_intercept": self.rating_intercept,
            "verified_intercept": self.verified_intercept,
            "scale": {"low": self.low, "high": self.high},
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> ReviewScorer:
        return cls(
            vocabulary=TfidfVocabulary(arrays["terms"], arrays["idf"], int(meta["ngrams"])),
            rating_coef=arrays["rating_coef"],
            rating_intercept=float(meta["rating_intercept"]),
            item_offset=arrays["item_offset"],
            verified_coef=arrays.get("verified_coef"),
            verified_numeric=arrays.get("verified_numeric"),
            verified_intercept=float(meta["verified_intercept"]),
            low=float(meta["scale"]["low"]),
            high=float(meta["scale"]["high"]),
        )


def write_scorer(writer: VersionWriter, scorer: ReviewScorer, metrics: dict[str, Any]) -> None:
    """Store ``scorer`` as the ``text`` component of the version being written, with its metrics."""
    for name, array in scorer.to_arrays().items():
        writer.save_array(COMPONENT, name, array)
    writer.set_component_meta(COMPONENT, hyperparameters=scorer.to_meta(), metrics=metrics)


def load_scorer(version: Version) -> ReviewScorer | None:
    """The ``text`` component of a verified version, or None when the version has none (data without text).

    Raises
    ------
    ArtifactError : a component with a missing array or arrays that do not fit together.
    """
    if COMPONENT not in version.components:
        return None
    meta = version.component_meta(COMPONENT)
    try:
        arrays = {name: version.array(COMPONENT, name) for name in meta.get("files", {})}
        return ReviewScorer.from_arrays(arrays, meta.get("hyperparameters", {}))
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"text component of version {version.name} is incomplete: {exc}") from exc
    except InvalidInput as exc:
        raise ArtifactError(f"text component of version {version.name}: {exc.detail}") from exc
