"""The rating service: predicted star ratings and top-N recommendations from the ``rating`` component (a latent
factor model, or the bias-only model where factors did not beat it on validation data).

Run: ``CHORUS_ARTIFACTS=DIR uvicorn chorus.services.rating.app:create_app --factory --port 8002``
"""

from __future__ import annotations

from fastapi import FastAPI

from chorus.services.rating.api import router
from chorus.services.rating.service import load_service
from chorus.services.rating.settings import Settings
from chorus.shared.serving import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app of the rating service; it loads the ``data`` and ``rating`` components of the current
    version in its lifespan and reloads when ``CURRENT`` changes."""
    return create_service_app(
        title="Chorus rating service",
        description="Predicted star ratings from a latent factor model f(u,i) = α + β_u + β_i + γ_u·γ_i "
        "(selected on validation data, measured on test data), and top-N recommendations among "
        "items a user has not reviewed.",
        settings=settings or Settings(),
        build=load_service,
        components=("data", "rating"),
        routers=[router],
    )
