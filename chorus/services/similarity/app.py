"""The similarity service: "people who bought X also bought Y", similar users, "because you liked", and the
similarity-weighted rating heuristic, over the ``similarity`` component of the current artifact version, with the
events of ``CHORUS_EVENTS_URL`` after its cutoff folded in.

Run: ``CHORUS_ARTIFACTS=DIR uvicorn chorus.services.similarity.app:create_app --factory --port 8001``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI

from chorus.services.similarity.api import router
from chorus.services.similarity.feed import EventFeed
from chorus.services.similarity.model import canary, load_model
from chorus.services.similarity.settings import Settings
from chorus.shared.serving import ModelHolder, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service's FastAPI app; the lifespan loads the current version and keeps polling for a new one. With
    ``events_url``, ``/readyz`` also says whether the event store answers, and the store is closed at shutdown."""
    settings = settings or Settings()
    feed = EventFeed(settings.events_url) if settings.events_url else None
    app = create_service_app(
        title="Chorus similarity service",
        description="Jaccard, cosine and Pearson similarity between items and between users, computed over "
        "inverted indexes; recommendations from the items a user liked; the similarity-weighted rating "
        "prediction. With an event store, every answer folds in the events after the served version's cutoff.",
        settings=settings,
        build=partial(load_model, feed=feed),
        components=("data", "similarity"),
        routers=[router],
        canary=canary,
    )
    app.state.events = feed
    if feed is not None:
        _watch_event_store(app, feed)
    return app


def _watch_event_store(app: FastAPI, feed: EventFeed) -> None:
    """Readiness that also needs the event store to answer (503 and why, naming the store, when it does not),
    and a lifespan that closes the store's connections at shutdown."""
    holder: ModelHolder[Any] = app.state.holder
    models_ready = holder.readiness

    def readiness() -> tuple[int, dict[str, Any]]:
        status, body = models_ready()
        problem = feed.problem()
        if problem is None:
            return status, body
        detail = f"{body['detail']}; {problem}" if body.get("detail") else problem
        return 503, {**body, "status": "not_ready", "detail": detail}

    holder.readiness = readiness  # type: ignore[method-assign]  # the shared holder's readiness, plus the store

    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        try:
            async with inner(a) as state:
                yield state
        finally:
            feed.close()

    app.router.lifespan_context = lifespan
