"""What the similarity service serves: one artifact version's index and catalog, loaded together, with the live
overlay of the events after its cutoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from chorus.services.similarity.activity import Activity
from chorus.services.similarity.feed import EventFeed
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.live import LiveView
from chorus.services.similarity.overlay import Ids, LiveState, Overlay
from chorus.services.similarity.persistence import load_component
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.contract.errors import ArtifactError, EventsUnavailable
from chorus.shared.contract.names import Measure
from chorus.shared.events.rows import cutoff_of

log = logging.getLogger("chorus.similarity")


@dataclass
class SimilarityModel:
    """What one served version holds: the index (with its neighbour table), the catalog of ids and titles, and
    the live overlay of its events (empty and never read without an event store)."""

    version: str
    index: SimilarityIndex
    catalog: Catalog
    live: LiveState
    feed: EventFeed | None = None
    activity: Activity | None = None  # each user's newest reviews in the version (load_model always builds it)

    def view(self) -> LiveView:
        """What a request answers from: the version with every event the store holds now folded in.

        Raises
        ------
        EventsUnavailable : the event store cannot be read.
        """
        return LiveView(self.version, self.index, self.catalog, self.live.sync(), events=self.feed is not None)


def live_state(index: SimilarityIndex, catalog: Catalog, cutoff: int, feed: EventFeed | None = None) -> LiveState:
    """The live overlay of a version (``cutoff``: its events cutoff) over ``feed`` (None: no event store)."""
    start = Overlay.start(
        index.items,
        index.users,
        Ids(catalog.item_ids, index.item_rank, catalog.item_indices),
        Ids(catalog.user_ids, index.user_rank, catalog.user_indices),
        cutoff,
    )
    if feed is None:
        return LiveState(start, catalog.scale)
    return LiveState(start, catalog.scale, feed.last_seq, feed.changes, store=feed.public_url)


def load_model(version: Version, feed: EventFeed | None = None) -> SimilarityModel:
    """The ``data`` and ``similarity`` components of a verified version, ready to answer; with ``feed``, the
    events after the version's cutoff are read now (when the store answers; else on the first request)."""
    catalog, ratings = Catalog.from_version(version)
    index = load_component(version)
    live = live_state(index, catalog, cutoff_of(version.manifest), feed)
    if feed is not None:
        try:
            live.sync()
        except EventsUnavailable as exc:
            log.warning("version %s: events not read yet: %s", version.name, exc.detail)
    return SimilarityModel(version.name, index, catalog, live, feed, Activity.from_ratings(ratings))


def canary(model: SimilarityModel) -> None:
    """Queries a new version must answer soundly before it is served: the items most similar to the first item by
    every measure (from the neighbour table where there is one), the users most similar to the first user, and a
    predicted rating.

    Raises
    ------
    ArtifactError : an answer naming an item or user that does not exist, or a score that is not finite.
    """
    index = model.index
    if index.n_items == 0 or index.n_users == 0:
        raise ArtifactError(f"version {model.version} has no users or no items")
    answers = [(f"similar items by {m.value}", index.n_items, *index.similar_items(0, 10, m)) for m in Measure]
    answers.append(("similar users", index.n_users, *index.similar_users(0, 10)))
    for what, n, found, scores in answers:
        if found.size and (found.min() < 0 or found.max() >= n):
            raise ArtifactError(f"version {model.version}: {what} names an index outside 0..{n - 1}")
        if not np.all(np.isfinite(scores)):
            raise ArtifactError(f"version {model.version}: {what} gives non-finite scores")
    rating = index.predict(np.array([0]), np.array([0])).rating
    if not np.all(np.isfinite(rating)):
        raise ArtifactError(f"version {model.version}: the predicted rating is not finite")
