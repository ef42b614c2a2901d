"""Prometheus metrics of a Chorus process, served at ``GET /metrics`` in the text exposition format.

The metrics live in prometheus-client's default registry, one set per process (each service and the gateway
run as one uvicorn process), beside that library's own ``process_*`` metrics (resident memory, CPU, open files)
and ``python_gc_*`` metrics. Its ``python_info`` (the interpreter's version) is left out: it helps an attacker
more than an operator, who knows what the image holds.

| metric | labels | meaning |
| --- | --- | --- |
| ``chorus_http_requests_total`` | route, method, status | requests answered, by route template |
| ``chorus_http_request_duration_seconds`` | route, method, status | time to answer (histogram) |
| ``chorus_http_refused_total`` | reason | requests refused before reaching a route (limits, timeouts) |
| ``chorus_cache_requests_total`` | result | gateway answers by cache outcome: hit, miss, bypass |
| ``chorus_downstream_errors_total`` | service, type | failed gateway calls to a service, by error type |
| ``chorus_model_version_info`` | service, version | 1 for the artifact version each service serves |
| ``chorus_artifact_load_failures_total`` | | artifact versions that failed to load or verify |
| ``chorus_events_total`` | result | events of ``POST /v1/events``: stored, or duplicate (an ``event_id`` seen before) |
| ``chorus_users_forgotten_total`` | | users forgotten by ``DELETE /v1/users/{id}`` |

``route`` is the route's template (``/v1/items/{item_id}/similar``), never the raw path, so the number of series
stays bounded whatever clients send; a request no route matched is ``unmatched``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    PLATFORM_COLLECTOR,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

with contextlib.suppress(KeyError):  # KeyError: unregistered already
    REGISTRY.unregister(PLATFORM_COLLECTOR)

ROUTE_KEY = "chorus.route"
"""Scope key where a middleware that answers before routing (the gateway's hit path) names the route template."""

HTTP_REQUESTS = Counter(
    "chorus_http_requests_total",
    "Requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "chorus_http_request_duration_seconds",
    "Seconds from a request's start to its last response byte, by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_REFUSED = Counter(
    "chorus_http_refused_total",
    "Requests refused by a limit: overloaded (503), payload_too_large (413), uri_too_long (414), "
    "headers_too_large (431), request_timeout (408), bad_request (400)",
    ["reason"],
)
CACHE_REQUESTS = Counter("chorus_cache_requests_total", "Gateway answers by cache outcome", ["result"])
DOWNSTREAM_ERRORS = Counter(
    "chorus_downstream_errors_total",
    "Gateway calls to a service that failed: upstream_unavailable, upstream_timeout, upstream_error",
    ["service", "type"],
)
MODEL_VERSION = Gauge(
    "chorus_model_version_info", "1 for the artifact version a service serves", ["service", "version"]
)
ARTIFACT_LOAD_FAILURES = Counter(
    "chorus_artifact_load_failures_total", "Artifact versions that failed to open, verify or load (refused)"
)

EVENTS_RECEIVED = Counter(
    "chorus_events_total",
    "Events of acknowledged POST /v1/events batches: stored, or duplicate (an event_id stored before)",
    ["result"],
)
USERS_FORGOTTEN = Counter("chorus_users_forgotten_total", "Users forgotten by DELETE /v1/users/{id}")
for _result in ("stored", "duplicate"):  # both series exist from the start, at 0
    EVENTS_RECEIVED.labels(_result)

_CACHE_RESULTS = frozenset({"hit", "miss", "bypass"})
_CACHE_SERIES = {result: CACHE_REQUESTS.labels(result) for result in _CACHE_RESULTS}
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}
"""The children of HTTP_REQUESTS and HTTP_LATENCY by (route, method, status); bounded like the labels."""


class RequestMetrics:
    """ASGI middleware, outermost: counts and times every HTTP request by route template and status, and the
    gateway's cache outcomes (its ``X-Cache`` header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        cache: str | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, cache
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-cache":
                        cache = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            labels = (route_template(scope), scope["method"], status)
            series = _SERIES.get(labels)
            if series is None:  # labels() validates and locks: once per series, not on every request
                named = (labels[0], labels[1], str(status))
                series = _SERIES[labels] = (HTTP_REQUESTS.labels(*named), HTTP_LATENCY.labels(*named))
            series[0].inc()
            series[1].observe(time.perf_counter() - start)
            if cache in _CACHE_RESULTS:
                _CACHE_SERIES[cache].inc()


def route_template(scope: Scope) -> str:
    template: str | None = scope.get(ROUTE_KEY)
    if template is not None:
        return template
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def set_versions(versions: Mapping[str, str | None]) -> None:
    """Make ``chorus_model_version_info`` name exactly these versions (service to version; None: none served)."""
    MODEL_VERSION.clear()
    for service, version in versions.items():
        if version is not None:
            MODEL_VERSION.labels(service, version).set(1)


def metrics_router(versions: Callable[[Request], Mapping[str, str | None]]) -> APIRouter:
    """``GET /metrics``; ``versions`` says which artifact version each service serves, read at each scrape."""
    router = APIRouter(tags=["meta"])

    @router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
    async def metrics(request: Request) -> Response:
        set_versions(versions(request))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
