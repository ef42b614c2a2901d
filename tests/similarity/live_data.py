"""What the live-overlay tests share: a small review dump, the version served on it, and the reference: a version
built by the training code on the dump's rows and the events' rows (``chorus.training.events``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.feed import EventFeed
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.live import LiveView
from chorus.services.similarity.model import SimilarityModel, live_state
from chorus.services.similarity.ranking import id_rank
from chorus.shared.catalog import Catalog
from chorus.shared.contract.errors import NotFound
from chorus.shared.data import Ratings, load_ratings
from chorus.shared.events.store import EventStore
from chorus.training.events import with_events
from chorus.training.similarity.build import build_similarity

K = 6
"""Neighbours per item in the tests' tables (small, so that lists longer than the table are asked for too)."""


def write_dump(folder: Path, seed: int = 0, n_users: int = 36, n_items: int = 28, density: float = 0.3) -> Path:
    """A MovieLens ``ratings.csv`` (half stars, 0.5 to 5) with its ``movies.csv``; user ids ``u00, u02, ...``
    and item ids ``i00, i02, ...`` (even numbers, so that ids only events name sort between them)."""
    rng = np.random.default_rng(seed)
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(n_users):
        for i in range(n_items):
            if rng.random() < density:
                lines.append(f"u{2 * u:02d},i{2 * i:02d},{rng.integers(1, 11) / 2:.1f},{1_000_000 + u * 100 + i}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    titles = [f"i{2 * i:02d},Film number {i}" for i in range(n_items)]
    (folder / "movies.csv").write_text("\n".join(["movieId,title", *titles]) + "\n")
    return folder / "ratings.csv"


def index_of(ratings: Ratings, K: int = K, config: SimilarityConfig | None = None) -> SimilarityIndex:
    """The similarity index a version holds for ``ratings``, built by the training code (table of ``K``)."""
    built = build_similarity(
        ratings.user,
        ratings.item,
        ratings.rating,
        ratings.n_users,
        ratings.n_items,
        K=K,
        item_rank=id_rank(ratings.item_ids),
        user_rank=id_rank(ratings.user_ids),
        trace_memory=False,
    )
    return SimilarityIndex.from_saved(built.arrays, config or SimilarityConfig(table_k=K))


@dataclass
class Served:
    """The version served on the dump (cutoff 0), as the service holds it."""

    ratings: Ratings
    index: SimilarityIndex
    catalog: Catalog

    def model(self, store_url: str | None, config: SimilarityConfig | None = None) -> SimilarityModel:
        """A model of this version reading ``store_url`` (None: no event store); ``config`` overrides the
        index's query settings (the recommendation measure)."""
        index = self.index if config is None else SimilarityIndex.from_saved(self.index.to_arrays(), config)
        feed = EventFeed(store_url) if store_url else None
        return SimilarityModel("v1", index, self.catalog, live_state(index, self.catalog, 0, feed), feed)


def served(path: Path) -> Served:
    ratings = load_ratings(path, progress=False)
    return Served(ratings, index_of(ratings), Catalog.from_ratings(ratings))


@dataclass
class Rebuilt:
    """The reference: a version built on the merged rows."""

    index: SimilarityIndex
    user_ids: list[str]
    item_ids: list[str]

    def item(self, raw: str) -> int | None:
        return self.item_ids.index(raw) if raw in self.item_ids else None

    def user(self, raw: str) -> int | None:
        return self.user_ids.index(raw) if raw in self.user_ids else None


def rebuilt(ratings: Ratings, store: EventStore, config: SimilarityConfig | None = None) -> Rebuilt:
    """What ``chorus train --events-url`` builds now: the dump's rows without the forgotten users', with the rows
    of every event so far (:func:`chorus.training.events.with_events`), indexed by the training code."""
    merged, _ = with_events(ratings, store, store.last_seq())
    index = index_of(merged, K, config)
    return Rebuilt(index, [str(u) for u in merged.user_ids], [str(i) for i in merged.item_ids])


Answer = list[tuple[str, float]] | None


def live_similar(view: LiveView, side: str, raw: str, k: int, measure: str, min_common: int) -> Answer:
    """The live answer by raw ids; None for an unknown id."""
    try:
        if side == "item":
            found, scores = view.similar_items(view.item_index(raw), k, measure, min_common)
            return [(view.item_id(j), s) for j, s in zip(found.tolist(), scores.tolist(), strict=True)]
        found, scores = view.similar_users(view.user_index(raw), k, measure, min_common)
        return [(view.user_id(v), s) for v, s in zip(found.tolist(), scores.tolist(), strict=True)]
    except NotFound:
        return None


def rebuilt_similar(ref: Rebuilt, side: str, raw: str, k: int, measure: str, min_common: int) -> Answer:
    """The rebuild's answer by raw ids; None for an id it does not hold."""
    if side == "item":
        i = ref.item(raw)
        if i is None:
            return None
        found, scores = ref.index.similar_items(i, k, measure, min_common)
        return [(ref.item_ids[j], s) for j, s in zip(found.tolist(), scores.tolist(), strict=True)]
    u = ref.user(raw)
    if u is None:
        return None
    found, scores = ref.index.similar_users(u, k, measure, min_common)
    return [(ref.user_ids[v], s) for v, s in zip(found.tolist(), scores.tolist(), strict=True)]
