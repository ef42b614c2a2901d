"""What the similarity service serves: one artifact version's index and catalog, loaded together."""

from __future__ import annotations

from dataclasses import dataclass

from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.persistence import load_component
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog


@dataclass
class SimilarityModel:
    """What one served version holds: the index (with its neighbour table) and the catalog of ids and titles."""

    version: str
    index: SimilarityIndex
    catalog: Catalog


def load_model(version: Version) -> SimilarityModel:
    """The ``data`` and ``similarity`` components of a verified version, ready to answer."""
    catalog, _ = Catalog.from_version(version)
    return SimilarityModel(version.name, load_component(version), catalog)
