"""Answers of the similarity service with the events after the served version's cutoff folded in
(``docs/models.md``, "Similarity with live events").

A :class:`LiveView` is what one request answers from: the version's index and catalog, and one snapshot of its
live overlay (:class:`~chorus.services.similarity.overlay.Overlay`). For every question it first asks whether
the overlay can change the answer; when it cannot, the version answers as it always has (the neighbour table, or
the version's inverted indexes); when it can, the answer is computed exactly from the merged rows on a local
side (:mod:`chorus.services.similarity.local`), so it equals what a version built on the same rows would serve.

Per-query cost, with ``U_i`` the users of item ``i`` and ``I_u`` the items of user ``u`` in the merged rows:

* similar items of a clean item (no reviewer shares an item with a touched item): the version's answer, ``O(k)``
  from the table, after an ``O(|U_i|)`` check;
* similar items of a dirty item: ``O(W log W)``, ``W = Σ_{u∈U_i} |I_u|`` (the sum of the history lengths of the
  item's reviewers, the same work as the version's own online query); similar users likewise with the roles
  swapped;
* "because you liked" for a user ``u`` with liked items ``L``: by cosine, the version's answer when no user of
  ``L`` is reached by the overlay, else ``O(W log W)`` with ``W = Σ_{v ∈ U_L} |I_v|``; over the neighbour table
  (Jaccard, Pearson), ``O(K)`` per clean liked item and the dirty items' exact cost per dirty one;
* the similarity-weighted rating: pairs of untouched items as the version computes them, the others on a local
  side of the items involved, ``O(Σ |U_j|)`` over them.

Catalog: the version's users who have not been forgotten, the version's items, and the users and items that live
rows name; an id first named by an event has no title. A forgotten user is unknown until events name them again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chorus.services.similarity.index import SimilarityIndex, check_min_common
from chorus.services.similarity.local import around, spanning
from chorus.services.similarity.measures import measure_spec
from chorus.services.similarity.overlay import MEMO_SIZE, Overlay, SideState
from chorus.services.similarity.predict import Predictions, predict
from chorus.services.similarity.recommend import Recommendations, liked_items, recommend, recommend_from_table
from chorus.shared.catalog import Catalog
from chorus.shared.contract.errors import NotFound
from chorus.shared.contract.names import Measure, check_k
from chorus.shared.indices import check_indices


class LiveView:
    """The answers of one request: ``index`` and ``catalog`` of a version, ``overlay`` a snapshot of its events.

    Indices are the overlay's: the version's, then those of ids only events name (:class:`overlay.Ids`).
    ``events`` says whether an event store is configured (it changes only the wording of unknown-id errors).
    """

    def __init__(
        self, version: str, index: SimilarityIndex, catalog: Catalog, overlay: Overlay, events: bool = False
    ) -> None:
        self.version = version
        self.index = index
        self.catalog = catalog
        self.overlay = overlay
        self.events = events

    # -- ids ------------------------------------------------------------------------------------------------

    @property
    def _items(self) -> SideState:
        return self.overlay.items

    @property
    def _users(self) -> SideState:
        return self.overlay.users

    def _unknown(self, what: str, raw: str) -> NotFound:
        if not self.events:
            return NotFound(f"unknown {what} {raw!r}")
        return NotFound(
            f"unknown {what} {raw!r}: not in version {self.version} and named by no event since"
            + (" (a forgotten user is unknown until new events name them)" if what == "user" else "")
        )

    def item_index(self, item_id: str) -> int:
        """The index of ``item_id``: a version item, or one that live rows name.

        Raises
        ------
        NotFound : neither.
        """
        i = self._items.ids.find(item_id, self._items.n)
        if i < 0 or (i >= self._items.version.n_rows and not self._items.row(i).others.shape[0]):
            raise self._unknown("item", item_id)
        return i

    def user_index(self, user_id: str) -> int:
        """The index of ``user_id``: a user with rows (the version's, unless forgotten, or live ones).

        Raises
        ------
        NotFound : a user without rows.
        """
        u = self._users.ids.find(user_id, self._users.n)
        if u < 0 or (self._users.touched[u] and not self._users.row(u).others.shape[0]):
            raise self._unknown("user", user_id)
        return u

    def _indices(self, state: SideState, raw: list[str], version: np.ndarray) -> np.ndarray:
        """int64 (n,): the index of each of ``raw`` (``version``: their version indices, -1 where none), -1
        for one without rows."""
        out = version.astype(np.int64, copy=True)
        for k in np.flatnonzero(out < 0).tolist():
            out[k] = state.ids.find(raw[k], state.n)
        known = out >= 0
        for k in np.flatnonzero(known & state.touched[np.where(known, out, 0)]).tolist():
            if not state.row(int(out[k])).others.shape[0] and (state is self._users or out[k] >= state.version.n_rows):
                out[k] = -1
        return out

    def items_named(self, item_ids: list[str]) -> np.ndarray:
        """The indices of the known items among ``item_ids``, int64 (ascending, distinct)."""
        found = self._indices(self._items, item_ids, self.catalog.item_indices(item_ids))
        return np.unique(found[found >= 0])

    def item_id(self, i: int) -> str:
        return self._items.ids.raw(i)

    def user_id(self, u: int) -> str:
        return self._users.ids.raw(u)

    def title(self, i: int) -> str | None:
        """The item's title (None for an item only events name)."""
        return self.catalog.title(i) if i < self.catalog.n_items else None

    def item_public(self, i: int) -> dict[str, Any]:
        """Title, number of reviews and mean rating of item ``i`` over the merged rows."""
        if not self._items.touched[i]:
            return self.catalog.item_public(i)
        count, mean, _ = self._items.row_stats(np.array([i]))
        return {
            "item_id": self.item_id(i),
            "title": self.title(i),
            "reviews": int(count[0]),
            "mean_rating": round(float(mean[0]), 4),
        }

    # -- similar items and users ----------------------------------------------------------------------------

    def similar_items(
        self, i: int, k: int = 10, measure: str = Measure.jaccard, min_common: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to item ``i`` over the merged rows: (int64 indices (n,), float64 rounded
        scores (n,)), ranked as :meth:`SimilarityIndex.similar_items` ranks them."""
        measure = measure_spec(measure).measure
        k, min_common = check_k(k), check_min_common(min_common)
        if not self._items.dirty(i):
            return self.index.similar_items(i, k, measure, min_common)
        return self._exact(self._items, self._users, i, k, measure, min_common)

    def similar_users(
        self, u: int, k: int = 10, measure: str = Measure.jaccard, min_common: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users most similar to user ``u`` over the merged rows (as :meth:`similar_items`)."""
        measure = measure_spec(measure).measure
        k, min_common = check_k(k), check_min_common(min_common)
        if not self._users.dirty(u):
            return self.index.similar_users(u, k, measure, min_common)
        return self._exact(self._users, self._items, u, k, measure, min_common)

    def _exact(
        self, rows: SideState, cols: SideState, r: int, k: int, measure: Measure, min_common: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact answer for a dirty row. Lists of up to the table's ``K`` at ``min_common = 1`` are computed
        once per snapshot and kept in its memo."""
        table_k = max(self.index.table_k, k)
        key = (rows.name, r, measure.value, min_common, table_k)
        memo = self.overlay.memo
        found = memo.get(key)
        if found is None:
            if not rows.row(r).others.shape[0]:
                found = (np.zeros(0, dtype=np.int64), np.zeros(0))
            else:
                local = around(rows, cols, np.array([r]))
                at = int(local.positions(np.array([r]))[0])
                idx, scores = local.side.most_similar(at, table_k, measure, min_common)
                found = (local.rows[idx], scores)
            if len(memo) < MEMO_SIZE:
                memo[key] = found
        return found[0][:k], found[1][:k]

    # -- recommendations and predictions --------------------------------------------------------------------

    def recommend(self, u: int, k: int = 10, exclude: np.ndarray | None = None) -> Recommendations:
        """ "Because you liked" for user ``u`` over their merged history (see the module docstring for when the
        version answers); ``exclude``: items never recommended besides the rated ones."""
        cfg = self.index.config
        measure = measure_spec(cfg.recommend_measure).measure
        k = check_k(k)
        rated, ratings = self._users.row(u)
        liked = liked_items(rated, ratings, cfg.like_threshold)
        if liked.shape[0] == 0:
            empty = np.zeros(0, dtype=np.int64)
            return Recommendations(empty, np.zeros(0), empty)
        table = self.index.table_of(measure)
        if measure == Measure.cosine or table is None:
            _, reached, _ = self._items.gather(liked)
            if not self._users.touched[u] and not self._items.reached[reached].any():
                return self.index.recommend(u, k, exclude=exclude)
            local = around(self._items, self._users, liked)  # the user rated a liked item: their items are in it
            rated_local = local.positions(rated)
            order = np.argsort(rated_local, kind="stable")
            outside = None if exclude is None else local.positions(exclude)
            rec = recommend(
                local.side,
                rated_local[order],
                ratings[order],
                k,
                measure,
                like_threshold=cfg.like_threshold,
                block_nnz=cfg.block_nnz,
                exclude=None if outside is None else outside[outside >= 0],
            )
            return Recommendations(local.rows[rec.items], rec.scores, local.rows[rec.because])
        if not self._users.touched[u] and not any(self._items.dirty(int(i)) for i in liked.tolist()):
            return self.index.recommend(u, k, exclude=exclude)
        return self._recommend_table(rated, liked, k, measure, exclude)

    def _recommend_table(
        self, rated: np.ndarray, liked: np.ndarray, k: int, measure: Measure, exclude: np.ndarray | None
    ) -> Recommendations:
        """Sums over each liked item's current top ``K`` (the table's row for a clean item, the exact list for a
        dirty one), on a compact numbering of the items involved in raw-id order."""
        K = self.index.table_k
        lists = [self.similar_items(int(i), K, measure) for i in liked.tolist()]
        involved = [rated, liked] + [found for found, _ in lists] + ([] if exclude is None else [exclude])
        items = np.unique(np.concatenate(involved).astype(np.int64))
        items = items[np.argsort(self._items.keys(items), kind="stable")]
        order = np.argsort(items, kind="stable")

        def compact(idx: np.ndarray) -> np.ndarray:
            return order[np.searchsorted(items[order], idx)].astype(np.int64)

        neighbors = np.full((items.shape[0], K), -1, dtype=np.int64)
        scores = np.zeros((items.shape[0], K), dtype=np.float64)
        for i, (found, score) in zip(liked.tolist(), lists, strict=True):
            row = compact(np.array([i]))[0]
            neighbors[row, : found.shape[0]] = compact(found)
            scores[row, : found.shape[0]] = score
        seen = compact(rated if exclude is None else np.union1d(rated, exclude))
        rec = recommend_from_table(
            neighbors, scores, np.arange(items.shape[0]), np.sort(seen), np.sort(compact(liked)), k
        )
        return Recommendations(items[rec.items], rec.scores, items[rec.because])

    def predict(
        self, user_ids: list[str], item_ids: list[str], *, low: float | None = None, high: float | None = None
    ) -> Predictions:
        """The similarity-weighted rating of each (``user_ids[p]``, ``item_ids[p]``) over the merged rows; an
        unknown user or item gets the merged global mean, flagged."""
        if not self.overlay.changed:
            users, items = self.catalog.user_indices(user_ids), self.catalog.item_indices(item_ids)
            return self.index.predict(users, items, low=low, high=high)
        users = self._indices(self._users, user_ids, self.catalog.user_indices(user_ids))
        items = self._indices(self._items, item_ids, self.catalog.item_indices(item_ids))
        users = check_indices(users, self._users.n, "user", unknown_ok=True)
        items = check_indices(items, self._items.n, "item", unknown_ok=True)
        cfg = self.index.config
        measure = measure_spec(cfg.predict_measure).measure

        def similarity(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            out = np.zeros(i.shape[0], dtype=np.float64)
            fresh = self._items.touched[i] | self._items.touched[j]
            if (~fresh).any():
                out[~fresh] = self.index.items.pair_scores(i[~fresh], j[~fresh], measure, cfg.pair_chunk)
            if fresh.any():
                local = spanning(self._items, self._users, np.concatenate([i[fresh], j[fresh]]))
                a, b = local.positions(i[fresh]), local.positions(j[fresh])
                out[fresh] = local.side.pair_scores(a, b, measure, cfg.pair_chunk)
            return out

        return predict(
            self._users,
            similarity,
            users,
            items,
            global_mean=self.overlay.global_mean,
            pair_chunk=cfg.pair_chunk,
            low=low,
            high=high,
        )
