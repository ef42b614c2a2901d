"""What the live-overlay tests share: a small review dump, the version served on it, a stream of events into a
real store, and the reference: a version built by the training code on the dump's rows and the events' rows,
merged by the rules of ``chorus.shared.events.rows`` (written here with plain dicts)."""

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
from chorus.shared.events.rows import purchase_rating, rows_of
from chorus.shared.events.store import EventStore, new_event
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


def merged_rows(ratings: Ratings, store: EventStore) -> dict[tuple[str, str], float]:
    """The dump's rows without the forgotten users', the valid rows of the events replacing those of the same
    user and item (a rated event off the scale makes no row; a purchase counts as the scale's middle)."""
    rows = {
        (str(ratings.user_ids[u]), str(ratings.item_ids[i])): float(r)
        for u, i, r in zip(ratings.user.tolist(), ratings.item.tolist(), ratings.rating.tolist(), strict=True)
    }
    forgotten = set(store.tombstones())
    rows = {pair: r for pair, r in rows.items() if pair[0] not in forgotten}
    events = list(store.scan())
    purchases = {e.seq for e in events if e.kind == "purchase"}
    scale = ratings.scale
    for row in rows_of(events, purchase_rating(scale.low, scale.high)):
        if row.seq in purchases or bool(scale.valid(np.array([row.rating]))[0]):
            rows[(row.user_id, row.item_id)] = float(np.float32(row.rating))
    return rows


def rebuilt(ratings: Ratings, store: EventStore, config: SimilarityConfig | None = None) -> Rebuilt:
    rows = merged_rows(ratings, store)
    user_ids = sorted({u for u, _ in rows})
    item_ids = sorted({i for _, i in rows})
    u_of = {u: k for k, u in enumerate(user_ids)}
    i_of = {i: k for k, i in enumerate(item_ids)}
    pairs = list(rows.items())
    built = build_similarity(
        np.array([u_of[u] for (u, _), _ in pairs]),
        np.array([i_of[i] for (_, i), _ in pairs]),
        np.array([r for _, r in pairs], dtype=np.float32),
        len(user_ids),
        len(item_ids),
        K=K,
        item_rank=id_rank(np.array(item_ids)),
        user_rank=id_rank(np.array(user_ids)),
        trace_memory=False,
    )
    return Rebuilt(SimilarityIndex.from_saved(built.arrays, config or SimilarityConfig(table_k=K)), user_ids, item_ids)


def rate(user: str, item: str, rating: float, kind: str = "rating") -> object:
    return new_event(user, item, kind, rating=rating if kind in ("rating", "review") else None, timestamp=2e9)


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
