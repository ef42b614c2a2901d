"""The gateway's FastAPI application: ``uvicorn chorus.services.gateway.app:create_app --factory``.

The lifespan builds one pooled HTTP client per downstream service, the cache (Redis from ``REDIS_URL``, or an
in-process LRU) and the event store's access (``CHORUS_EVENTS_URL``, :mod:`.events`), asks each service for its
version once, then keeps polling ``/readyz`` in the background; all of it is closed after the ``yield``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline

from chorus.services.gateway import api, events_api
from chorus.services.gateway.cache import Cache, MemoryCache, NearCache, RedisCache
from chorus.services.gateway.core import Gateway
from chorus.services.gateway.downstream import Downstream, build_client
from chorus.services.gateway.events import Events
from chorus.services.gateway.hitpath import HitPath
from chorus.services.gateway.keys import ApiKeys, MissingKey
from chorus.services.gateway.settings import Settings, get_settings
from chorus.shared.http.logs import configure_logging
from chorus.shared.http.metrics import metrics_router
from chorus.shared.http.shell import install_error_handlers, install_http_middleware

log = logging.getLogger("chorus.gateway")

HERE = Path(__file__).parent
SERVICES = ("similarity", "rating")

DESCRIPTION = """One public API over the similarity and rating services of Chorus.

Answers of `GET` routes are cached under the artifact version of the service that produced them (header
`X-Model-Version`); `X-Cache` says `hit`, `miss`, or `bypass` (the cache was unavailable). Send
`Cache-Control: no-cache` to skip the cache lookup. Errors are `{"type", "detail"}` (invalid input also lists
`errors`), worded as the services word them; user and item ids containing `/` are not supported (404).

The event routes (`POST /v1/events`, `GET /v1/users/{id}/events`, `DELETE /v1/users/{id}`) need
`Authorization: Bearer <key>` with one of the gateway's `CHORUS_API_KEYS`, and an event store
(`CHORUS_EVENTS_URL`); without either they answer 503. A write is answered once it is durable, and the next
answer about that user reflects it: cached answers are keyed by the event store's sequence numbers, so no client
header is needed. Every other route is public.
"""


def build_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        redis = RedisCache(
            settings.redis_url,
            timeout=settings.redis_timeout,
            connect_timeout=settings.redis_connect_timeout,
            max_connections=settings.redis_max_connections,
            max_backoff=settings.redis_max_backoff,
        )
        if settings.near_cache_ttl > 0:
            return NearCache(redis, settings.near_cache_ttl, settings.near_cache_size, 64_000_000)
        return redis
    return MemoryCache(settings.lru_size, int(settings.lru_max_mb * 1_000_000))


def build_gateway(settings: Settings, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> Gateway:
    transports = transports or {}
    token = settings.status_token
    downstreams = {
        name: Downstream(
            name,
            [
                build_client(
                    url,
                    connect_timeout=settings.connect_timeout,
                    read_timeout=settings.read_timeout,
                    pool_timeout=settings.pool_timeout,
                    retries=settings.connect_retries,
                    max_connections=settings.max_connections,
                    transport=transports.get(name),
                )
                for url in settings.urls(name)
            ],
        )
        for name in SERVICES
    }
    if token is not None:  # the services then tell the gateway why they are not ready (its /readyz with the token)
        for downstream in downstreams.values():
            for replica in downstream.replicas:
                replica.client.headers["authorization"] = f"Bearer {token.get_secret_value()}"
    url = None if settings.events_url is None else settings.events_url.get_secret_value()
    return Gateway(downstreams, build_cache(settings), settings.cache_ttl, Events(url, settings.events_timeout))


def create_app(
    settings: Settings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """Build the gateway; ``transports`` (by service name) replaces the network to that service, for tests."""
    settings = settings or get_settings()
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build_gateway(settings, transports)
        app.state.gateway = gateway
        if isinstance(gateway.cache, MemoryCache):
            log.warning("REDIS_URL is not set: caching in this process only (LRU of %d entries)", settings.lru_size)
        if gateway.events.configured and not len(app.state.api_keys):
            log.warning("CHORUS_API_KEYS is not set: the event routes refuse every request until it is")
        try:
            await gateway.events.open(wait=max(2.0, settings.events_timeout))
        except BaseException:  # a wrong URL or a newer schema: the start fails with that error
            await gateway.aclose()
            raise
        await gateway.check_all(timeout=settings.connect_timeout + 1.0)
        poller = asyncio.create_task(gateway.poll_forever(settings.version_poll_interval), name="chorus-poll")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await gateway.aclose()

    # /docs and /redoc with Swagger UI and ReDoc served from the installed package, not from a CDN
    app = FastAPIOffline(
        title="Chorus",
        summary="Similar items, because-you-liked and predicted ratings, cached.",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        redirect_slashes=False,  # Starlette would build the redirect's Location from the Host header
    )
    app.state.settings = settings
    app.state.api_keys = ApiKeys(settings.keys())
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in (api.meta, api.similarity, api.users, api.rating, api.predictions, events_api.router, api.page):
        app.include_router(router)
    app.include_router(metrics_router(_versions), include_in_schema=False)
    # The services' handlers, so that an error reads the same whether the gateway or a service found it; the
    # gateway's own upstream errors (UpstreamError, 502) are ChorusErrors like theirs.
    install_error_handlers(app)
    app.add_exception_handler(MissingKey, _missing_key)
    app.add_middleware(HitPath)
    install_http_middleware(app, settings)
    return app


async def _missing_key(request: Request, exc: Exception) -> JSONResponse:
    """A 401 names the scheme to authenticate with (RFC 9110, section 11.6.1)."""
    assert isinstance(exc, MissingKey)
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers={"www-authenticate": exc.challenge})


def _versions(request: Request) -> dict[str, str | None]:
    gateway = getattr(request.app.state, "gateway", None)
    return {name: d.version for name, d in gateway.downstreams.items()} if gateway else {}
