"""The interface of a top-N ranker: implicit feedback in, a ranked list of items out.

A ranker scores every item for a *history*: the items a user (or an anonymous basket) reviewed, as one row of a
user×item CSR matrix whose values are the star ratings. It never keeps per-user state of its own: a known user
is scored from their reviews in the served data, an anonymous basket from the items it names, with the same
code (iALS folds the history in, in closed form; EASE, item-kNN and RP3beta multiply by it directly). This is the shape
of implicit's ``RecommenderBase`` with ``user_items`` passed to every call, and it is what lets
``POST /v1/recommendations`` serve a basket with any ranker.

What lives here once, for every ranker: the items a list may never contain (the history itself, the caller's
``exclude``, items no training review mentioned), top-N selection with ties to the lower item index, batches
for evaluation, the ``because`` lists, and the array round trip of the artifact. A ranker writes ``score``,
names its stored fields in ``ARRAYS``, and optionally ``contributions`` (the per-history-item terms of a
score, for ``because``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.stored import StoredModel
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.contract.names import check_k
from chorus.shared.indices import check_indices

#: How many of the history's items a ``because`` list names at most.
BECAUSE = 3


class Ranked(NamedTuple):
    """One ranked list: int64 ``items`` (n,), float64 ``scores`` (n,), best first, and ``because``: int64 (n, m)
    history items that contributed most to each score, best first, -1 padded (m ≤ :data:`BECAUSE`), or None
    when the ranker cannot say."""

    items: np.ndarray
    scores: np.ndarray
    because: np.ndarray | None


def history_row(items: np.ndarray, ratings: np.ndarray | None, n_items: int) -> sp.csr_array:
    """A one-row history: int (m,) item indices (unique) and their float ratings (ones when None)."""
    items = check_indices(items, n_items, "item").astype(np.int32)
    values = np.ones(items.shape[0]) if ratings is None else np.asarray(ratings, dtype=np.float64)
    order = np.argsort(items, kind="stable")
    return sp.csr_array((values[order], items[order], np.array([0, items.shape[0]])), shape=(1, n_items))


@dataclass(eq=False)
class Ranker(StoredModel):
    """A top-N ranker (see the module docstring).

    Attributes
    ----------
    kind : str
        The name of the ranker's spec in :data:`chorus.shared.contract.kinds.RANKERS`, which the artifact records.
    item_count : numpy.ndarray
        int64 (n_items,), training reviews per item; items with none are never recommended.
    params : dict
        The hyperparameters it was fitted with (recorded in the artifact).
    """

    #: The fields the artifact stores, with their dtypes; a ranker with more state adds its own.
    ARRAYS: ClassVar[Mapping[str, type]] = {"item_count": np.int64}
    item_count: np.ndarray
    params: dict[str, Any]

    @property
    def n_items(self) -> int:
        return int(self.item_count.shape[0])

    @abstractmethod
    def score(self, history: sp.csr_array) -> np.ndarray:
        """Scores of every item for each history row: float (m, n_items) for ``history`` (m, n_items), higher
        is better. Items the history already holds may score anything: the base excludes them."""

    def score_weighted(self, history: sp.csr_array, weights: np.ndarray) -> np.ndarray:
        """Scores of every item for one history row (1, n_items) whose items count with ``weights`` (float (h,),
        in the row's column order; the service's recency weights) instead of 1 each. A ranker whose scores are
        a sum over the history items (EASE, item-kNN, RP3beta) weights each item's term; the default ignores the
        weights: :meth:`score`."""
        return self.score(history)

    def weighted_scorer(self, history: sp.csr_array) -> Callable[[np.ndarray], np.ndarray]:
        """``f(weights) = score_weighted(history, weights)`` for many weightings of the same ``history`` rows
        (``weights`` one per stored entry): a ranker with a part the weights do not change computes it once."""
        return lambda weights: self.score_weighted(history, weights)

    def contributions(self, history: sp.csr_array, items: np.ndarray) -> np.ndarray | None:
        """For one history row (1, n_items) with ``h`` items and int (n,) recommended ``items``: float (n, h),
        the part of each item's score owed to each history item (in the row's column order), or None when the
        ranker's scores do not decompose so (the default)."""
        return None

    # -- lists ---------------------------------------------------------------------------------------------

    def recommend(
        self, history: sp.csr_array, k: int, exclude: np.ndarray | None = None, weights: np.ndarray | None = None
    ) -> Ranked:
        """The ``k`` best items for one history row (1, n_items): never an item of the history, of ``exclude``
        (int (m,) item indices) or without training reviews; ties go to the lower item index. ``weights``: how
        much each history item counts (float (h,), positive, in the row's column order; :meth:`score_weighted`),
        None for 1 each.

        Raises
        ------
        InvalidInput : ``k`` below 1, or ``history`` not one row of ``n_items`` columns.
        """
        self._check_history(history, rows=1)
        banned = self._banned(history)[0]
        if exclude is not None and len(exclude):
            banned[check_indices(np.asarray(exclude).ravel(), self.n_items, "item")] = True
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).reshape(-1)
            if weights.shape[0] != history.indices.shape[0] or not np.all(np.isfinite(weights) & (weights > 0)):
                raise InvalidInput(f"history weights must be {history.indices.shape[0]} positive numbers")
        raw = self.score(history) if weights is None else self.score_weighted(history, weights)
        scores = np.asarray(raw, dtype=np.float64).reshape(self.n_items)
        top = top_items(scores, banned, check_k(k))
        return Ranked(top, scores[top], self._because(history, top, weights))

    def recommend_batch(self, history: sp.csr_array, k: int) -> np.ndarray:
        """int64 (m, k) lists for every row of ``history`` (m, n_items), -1 padded where fewer than ``k`` items
        are allowed; the same lists as :meth:`recommend` row by row (without ``because``)."""
        self._check_history(history)
        k = check_k(k)
        out = np.full((history.shape[0], k), -1, dtype=np.int64)
        scores = np.asarray(self.score(history), dtype=np.float64)
        banned = self._banned(history)
        for r in range(history.shape[0]):
            top = top_items(scores[r], banned[r], k)
            out[r, : top.shape[0]] = top
        return out

    def _banned(self, history: sp.csr_array) -> np.ndarray:
        banned = np.zeros(history.shape, dtype=bool)
        banned[:, self.item_count == 0] = True
        rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
        banned[rows, history.indices] = True
        return banned

    def _because(
        self, history: sp.csr_array, items: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray | None:
        if items.shape[0] == 0:
            return None
        parts = self.contributions(history, items)
        if parts is None:
            return None
        if weights is not None:  # a weighted sum's terms are the weighted contributions
            parts = np.asarray(parts, dtype=np.float64) * weights[None, :]
        held = history.indices.astype(np.int64)
        m = min(BECAUSE, held.shape[0])
        out = np.full((items.shape[0], BECAUSE), -1, dtype=np.int64)
        if m == 0:
            return out
        # largest contribution first, ties to the lower item index (argmax takes the first of equal values, and
        # the columns are put in item order); only positive contributions are reasons
        by_item = np.argsort(held, kind="stable")
        held = held[by_item]
        parts = np.array(parts, dtype=np.float64)[:, by_item]
        rows = np.arange(parts.shape[0])
        for r in range(m):
            best = np.argmax(parts, axis=1)
            out[:, r] = np.where(parts[rows, best] > 0, held[best], -1)
            parts[rows, best] = -np.inf
        return out

    def _check_history(self, history: sp.csr_array, rows: int | None = None) -> None:
        if history.ndim != 2 or history.shape[1] != self.n_items or (rows is not None and history.shape[0] != rows):
            want = f"({rows}, {self.n_items})" if rows is not None else f"(m, {self.n_items})"
            raise InvalidInput(f"a history must be a {want} user×item matrix, got shape {history.shape}")

    # -- artifact ------------------------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays the artifact stores: every field named in :attr:`ARRAYS`, in its dtype."""
        return {name: np.asarray(getattr(self, name), dtype=dtype) for name, dtype in self.ARRAYS.items()}

    def to_meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Self:
        """The ranker back from :meth:`to_arrays` and :meth:`to_meta` (bit-identical arrays)."""
        return cls(**cls._fields_from(arrays, meta))

    @classmethod
    def _fields_from(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, Any]:
        if meta.get("kind") != cls.kind:
            raise ArtifactError(f"ranker arrays of kind {meta.get('kind')!r} cannot load as {cls.kind!r}")
        missing = [name for name in cls.ARRAYS if name not in arrays]
        if missing:
            raise ArtifactError(f"{cls.kind} ranker: missing array {missing[0]!r}")
        return {name: arrays[name] for name in cls.ARRAYS} | {"params": dict(meta.get("params", {}))}


def binary(history: sp.csr_array) -> sp.csr_array:
    """``history`` with every stored entry 1 (float32): the implicit feedback "reviewed", whatever the rating."""
    return sp.csr_array(
        (np.ones(history.indices.shape[0], dtype=np.float32), history.indices, history.indptr), shape=history.shape
    )


def weighted(history: sp.csr_array, weights: np.ndarray) -> sp.csr_array:
    """``history`` (one row) with its stored entries replaced by ``weights`` (float32): the row a weighted sum
    over the history items multiplies."""
    return sp.csr_array((np.asarray(weights, dtype=np.float32), history.indices, history.indptr), shape=history.shape)


def popular_where_empty(scores: np.ndarray, history: sp.csr_array, item_count: np.ndarray) -> np.ndarray:
    """``scores`` (m, n_items) with each row whose history holds no item replaced by the training review counts,
    so that an empty history gets the popular list instead of ties broken by item index."""
    empty = np.diff(history.indptr) == 0
    if empty.any():
        scores = np.array(scores)
        scores[empty] = item_count.astype(scores.dtype)
    return scores


def top_items(scores: np.ndarray, banned: np.ndarray, k: int) -> np.ndarray:
    """int64 indices of the ``k`` highest ``scores`` (float (n,)) that are not ``banned`` (bool (n,)), best first,
    ties to the lower index; fewer when fewer are allowed. NaN scores are refused."""
    allowed = np.flatnonzero(~banned)
    if allowed.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    s = scores[allowed]
    if np.isnan(s).any():
        raise InvalidInput("a ranker produced NaN scores")
    k = min(k, allowed.shape[0])
    part = np.argpartition(-s, k - 1)[:k] if k < allowed.shape[0] else np.arange(allowed.shape[0])
    # argpartition breaks ties arbitrarily at the boundary: widen to every item tied with the k-th score
    kth = s[part].min()
    tied = np.flatnonzero(s >= kth)
    best = tied[np.lexsort((allowed[tied], -s[tied]))][:k]
    return allowed[best].astype(np.int64)
