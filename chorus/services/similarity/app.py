"""The similarity service: "people who bought X also bought Y", similar users, "because you liked", and the
similarity-weighted rating heuristic, over the ``similarity`` component of the current artifact version.

Run: ``CHORUS_ARTIFACTS=DIR uvicorn chorus.services.similarity.app:create_app --factory --port 8001``
"""

from __future__ import annotations

from fastapi import FastAPI

from chorus.services.similarity.api import router
from chorus.services.similarity.model import canary, load_model
from chorus.services.similarity.settings import Settings
from chorus.shared.serving import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service's FastAPI app; the lifespan loads the current version and keeps polling for a new one."""
    settings = settings or Settings()
    return create_service_app(
        title="Chorus similarity service",
        description="Jaccard, cosine and Pearson similarity between items and between users, computed over "
        "inverted indexes; recommendations from the items a user liked; the similarity-weighted rating "
        "prediction.",
        settings=settings,
        build=load_model,
        components=("data", "similarity"),
        routers=[router],
        canary=canary,
    )
