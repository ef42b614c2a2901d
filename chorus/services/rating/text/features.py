"""Text features, defined once for fitting (scikit-learn is handed :func:`analyze` as its analyzer) and for
serving (:class:`TfidfVocabulary` transforms a text with numpy alone, equal to scikit-learn's ``TfidfVectorizer``
with the same analyzer, ``sublinear_tf=True`` and ``norm="l2"``).

Two tokenisations:

* :func:`course_words`, the course's definition of a word for its 100-most-common-words baseline: lower-case the
  text, strip punctuation (every character of :data:`string.punctuation`), split on white space.
* :func:`analyze`, Chorus's terms: lower-cased runs of two or more word characters (scikit-learn's default token
  pattern ``(?u)\\b\\w\\w+\\b``) and, with ``ngrams=2``, the pairs of adjacent tokens joined by a space.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: A column of review texts: a list, or the object array of :attr:`chorus.shared.data.Ratings.text`.
TextColumn = Sequence[str] | np.ndarray

TOKEN = re.compile(r"(?u)\b\w\w+\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def course_words(text: str) -> list[str]:
    """The course's words: ``text`` lower-cased, every ASCII punctuation character removed, split on white space.

    >>> course_words("Great strings -- they don't buzz!")
    ['great', 'strings', 'they', 'dont', 'buzz']
    """
    return text.lower().translate(_PUNCTUATION).split()


def analyze(text: str, ngrams: int = 2) -> list[str]:
    """Chorus's terms of ``text``: tokens (lower-cased ``\\w\\w+`` runs), then for ``ngrams=2`` every pair of
    adjacent tokens joined by one space, in that order (scikit-learn's word n-gram order).

    >>> analyze("Great strings, great tone")
    ['great', 'strings', 'great', 'tone', 'great strings', 'strings great', 'great tone']
    """
    tokens = TOKEN.findall(text.lower())
    if ngrams == 1 or len(tokens) < 2:
        return tokens
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def review_length(texts: TextColumn) -> np.ndarray:
    """Length of each review in characters (the course's ``len(review_body)``): float64 (n,)."""
    return np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts))


@dataclass(eq=False)
class TfidfVocabulary:
    """A fitted TF-IDF vocabulary, applied without scikit-learn.

    Attributes
    ----------
    terms : numpy.ndarray
        str (m,), the vocabulary in column order.
    idf : numpy.ndarray
        float (m,), the inverse document frequency of each term (scikit-learn's smoothed
        ``ln((1 + n) / (1 + df)) + 1``).
    ngrams : int
        1 or 2, as :func:`analyze` takes it.
    """

    terms: np.ndarray
    idf: np.ndarray
    ngrams: int = 2
    index: Mapping[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.terms.ndim != 1 or self.idf.shape != self.terms.shape:
            raise ValueError(f"terms {self.terms.shape} and idf {self.idf.shape} must be 1-d of the same length")
        self.index = {t: k for k, t in enumerate(self.terms.tolist())}

    def transform_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The TF-IDF row of one text: (column indices int64 (p,), ascending; values float64 (p,)), with
        sublinear term frequency ``1 + ln(tf)`` and unit Euclidean norm (empty when no term is known)."""
        cols = [k for k in (self.index.get(t) for t in analyze(text, self.ngrams)) if k is not None]
        if not cols:
            return np.zeros(0, np.int64), np.zeros(0)
        uniq, counts = np.unique(np.asarray(cols, dtype=np.int64), return_counts=True)
        values = (1.0 + np.log(counts)) * self.idf[uniq].astype(np.float64)
        return uniq, values / np.linalg.norm(values)
