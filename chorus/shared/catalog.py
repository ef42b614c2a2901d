"""Raw ids, titles and per-item facts of a served version: what both services need around their models.

Built once per loaded version from its ``data`` component. Lookups of raw ids go through dicts built at load
time (ids are mapped to indices once, never per rating); title search is a vectorised substring match over
the lower-cased titles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chorus.shared.artifacts import Version
from chorus.shared.contract.errors import InvalidInput, NotFound
from chorus.shared.data.component import load_data_component
from chorus.shared.data.ratings import Ratings, RatingScale, text_array


@dataclass
class Catalog:
    user_ids: np.ndarray  # str (n_users,)
    item_ids: np.ndarray  # str (n_items,)
    titles: np.ndarray  # StringDType (n_items,)
    item_reviews: np.ndarray  # int64 (n_items,)
    item_mean: np.ndarray  # float64 (n_items,)
    scale: RatingScale
    stats: dict[str, Any]

    def __post_init__(self) -> None:
        self._user_index = {u: k for k, u in enumerate(self.user_ids.tolist())}
        self._item_index = {i: k for k, i in enumerate(self.item_ids.tolist())}
        self._lower_titles = np.char.lower(text_array(np.asarray(self.titles).tolist()))  # variable width

    @classmethod
    def from_ratings(cls, ratings: Ratings, stats: dict[str, Any] | None = None) -> Catalog:
        reviews = np.bincount(ratings.item, minlength=ratings.n_items).astype(np.int64)
        sums = np.bincount(ratings.item, weights=ratings.rating.astype(np.float64), minlength=ratings.n_items)
        mean = np.divide(sums, reviews, out=np.zeros(ratings.n_items), where=reviews > 0)
        return cls(
            np.asarray(ratings.user_ids),
            np.asarray(ratings.item_ids),
            np.asarray(ratings.titles),
            reviews,
            mean,
            ratings.scale,
            stats or {},
        )

    @classmethod
    def from_version(cls, version: Version) -> tuple[Catalog, Ratings]:
        ratings = load_data_component(version)
        return cls.from_ratings(ratings, version.manifest.get("dataset", {}).get("stats", {})), ratings

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def user_index(self, user_id: str) -> int:
        try:
            return self._user_index[user_id]
        except KeyError:
            raise NotFound(f"unknown user {user_id!r}") from None

    def item_index(self, item_id: str) -> int:
        try:
            return self._item_index[item_id]
        except KeyError:
            raise NotFound(f"unknown item {item_id!r}") from None

    def user_indices(self, user_ids: list[str]) -> np.ndarray:
        """int64 (n,), -1 for an unknown id."""
        get = self._user_index.get
        return np.array([get(u, -1) for u in user_ids], dtype=np.int64)

    def item_indices(self, item_ids: list[str]) -> np.ndarray:
        get = self._item_index.get
        return np.array([get(i, -1) for i in item_ids], dtype=np.int64)

    def title(self, i: int) -> str | None:
        return str(self.titles[i]) or None

    def search(self, q: str, limit: int = 20) -> np.ndarray:
        """Items whose title contains every word of ``q`` (case-insensitive), most reviewed first, then id.

        An exact item id also matches, first. Returns int64 indices (at most ``limit``)."""
        words = q.replace("\x00", " ").lower().split()  # numpy strings cannot hold NUL
        if not words:
            raise InvalidInput("q must contain at least one word")
        hit = np.ones(self.n_items, dtype=bool)
        for w in words:
            hit &= np.char.find(self._lower_titles, w) >= 0
        found = np.flatnonzero(hit)
        order = np.lexsort((found, -self.item_reviews[found]))
        result = found[order][:limit]
        exact = self._item_index.get(q.strip())
        if exact is not None:
            result = np.concatenate(([exact], result[result != exact]))[:limit]
        return result.astype(np.int64)

    def item_public(self, i: int) -> dict[str, Any]:
        return {
            "item_id": str(self.item_ids[i]),
            "title": self.title(i),
            "reviews": int(self.item_reviews[i]),
            "mean_rating": round(float(self.item_mean[i]), 4),
        }
