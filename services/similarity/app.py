"""The similarity service: "people who bought X also bought Y", similar users, "because you liked", and the
similarity-weighted rating heuristic, over the ``similarity`` component of the current artifact version.

Run: ``CHORUS_ARTIFACTS=DIR uvicorn chorus.services.similarity.app:create_app --factory --port 8001``
"""

from __future__ import annotations

from dataclasses import dataclass

from chorus.services.similarity.build import load_component
from chorus.services.similarity.core import SimilarityIndex
from chorus.services.similarity.settings import Settings
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.serving import create_service_app
from fastapi import FastAPI


@dataclass
class SimilarityModel:
    """What one served version holds: the index (with its neighbour table) and the catalog of ids and titles."""

    version: str
    index: SimilarityIndex
    catalog: Catalog


def load_model(version: Version) -> SimilarityModel:
    catalog, _ = Catalog.from_version(version)
    return SimilarityModel(version.name, load_component(version), catalog)


def create_app(settings: Settings | None = None) -> FastAPI:
    from chorus.services.similarity.api import router

    settings = settings or Settings()
    return create_service_app(
        title="Chorus similarity service",
        description="Jaccard, cosine and Pearson similarity between items and between users, computed over "
        "inverted indexes; recommendations from the items a user liked; the course's "
        "similarity-weighted rating prediction.",
        settings=settings,
        build=load_model,
        components=("data", "similarity"),
        routers=[router],
    )
