"""The rating service: predicted star ratings from the ``rating`` component (a latent factor model, or the
bias-only model where factors did not beat it on validation data), and top-N recommendations for a user or an
anonymous basket from the rankers of the ``ranking`` component, when the version has one.

With an event store (``CHORUS_EVENTS_URL``), every answer about a user folds in their events since the version was
trained (:mod:`chorus.services.rating.live`), and ``/readyz`` shows the store's state under ``events``.

Run: ``CHORUS_ARTIFACTS=DIR uvicorn chorus.services.rating.app:create_app --factory --port 8002``
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from chorus.services.rating.api import router
from chorus.services.rating.live import LiveEvents
from chorus.services.rating.service import canary, load_service
from chorus.services.rating.settings import Settings
from chorus.shared.serving import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app of the rating service; it loads the ``data`` and ``rating`` components of the current
    version (and its ``ranking`` component, when there is one) in its lifespan and reloads when ``CURRENT``
    changes, and opens the event store when ``settings.events_url`` names one."""
    settings = settings or Settings()
    return create_service_app(
        title="Chorus rating service",
        description="Predicted star ratings from a latent factor model f(u,i) = α + β_u + β_i + γ_u·γ_i "
        "(selected on validation data, measured on test data); top-N recommendations for a user or an anonymous "
        "basket from implicit-feedback rankers (EASE, iALS, item-kNN, most popular) or by predicted rating.",
        settings=settings,
        build=partial(load_service, verify=settings.verify_checksums),
        components=("data", "rating"),
        routers=[router],
        canary=canary,
        dependencies=[LiveEvents(settings.events_url)],
    )
