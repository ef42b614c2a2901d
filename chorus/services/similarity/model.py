"""What the similarity service serves: one artifact version's index and catalog, loaded together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chorus.services.similarity.activity import Activity
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.persistence import load_component
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.contract.errors import ArtifactError
from chorus.shared.contract.names import Measure


@dataclass
class SimilarityModel:
    """What one served version holds: the index (with its neighbour table), the catalog of ids and titles, and who
    reviewed what lately."""

    version: str
    index: SimilarityIndex
    catalog: Catalog
    activity: Activity


def load_model(version: Version) -> SimilarityModel:
    """The ``data`` and ``similarity`` components of a verified version, ready to answer."""
    catalog, ratings = Catalog.from_version(version)
    return SimilarityModel(version.name, load_component(version), catalog, Activity.from_ratings(ratings))


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
