"""Routes of the public API: thin handlers that name the downstream route and its canonical query.

Each cached handler builds its query with the functions of :mod:`.hitpath` (every parameter, defaults included, in
a fixed order), so that equal requests share one cache key; the same string is the query sent downstream. Cache
hits of these routes are normally answered by :class:`.hitpath.HitPath` before they reach a handler.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from chorus.services.gateway import page as pages
from chorus.services.gateway.core import UNREAD, Answer
from chorus.services.gateway.deps import GatewayDep
from chorus.services.gateway.hitpath import (
    MARKED,
    MISSED,
    cache_policy,
    item_target,
    predict_target,
    recommendations_target,
    search_target,
    similar_items_target,
    similar_users_target,
    stats_target,
)
from chorus.shared.contract.errors import (
    InvalidInput,
    NotFound,
    NotReady,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chorus.shared.contract.names import (
    CACHE_HEADER,
    DEFAULT_K,
    DEFAULT_MEASURE,
    DEFAULT_MIN_COMMON,
    DEFAULT_SEARCH_LIMIT,
    VERSION_HEADER,
    Measure,
)
from chorus.shared.contract.params import (
    ExcludeIds,
    ItemId,
    ItemIdQuery,
    K,
    MethodQuery,
    MinCommon,
    SearchLimit,
    SearchText,
    UserId,
    UserIdQuery,
    error_responses,
)
from chorus.shared.contract.reviews import SCORE_OPENAPI, SCORE_PATH, ReviewBody, ReviewScorePublic
from chorus.shared.contract.schemas import (
    BasketRecommendationsPublic,
    BasketRequest,
    ErrorPublic,
    HealthPublic,
    ItemPublic,
    ItemsPublic,
    Prediction,
    PredictionsPublic,
    PredictRequest,
    RankedRecommendationsPublic,
    ReadinessPublic,
    SimilarItemsPublic,
    SimilarUsersPublic,
    StatsPublic,
)
from chorus.shared.http.limits import OffLoopRoute
from chorus.shared.http.shell import show_details

JSON = "application/json"

ERRORS = error_responses(
    NotFound,
    InvalidInput,
    UpstreamError,
    UpstreamUnavailable,
    NotReady,
    UpstreamTimeout,
    s404="Unknown user or item (from the service that answers)",
    s503="The service that answers is unreachable or not ready",
)
CACHED_HEADERS = {
    VERSION_HEADER: {"description": "Artifact version that produced the answer", "schema": {"type": "string"}},
    CACHE_HEADER: {
        "description": "hit: from the cache; miss: from the service (and stored); "
        "bypass: from the service, without the cache (unavailable or slow)",
        "schema": {"type": "string", "enum": ["hit", "miss", "bypass"]},
    },
}


def respond(answer: Answer) -> Response:
    """The answer's bytes as they are, with the version and cache outcome in headers."""
    headers: dict[str, str] = {CACHE_HEADER: answer.cache}
    if answer.version is not None:
        headers[VERSION_HEADER] = answer.version
    return Response(answer.body, answer.status, headers, JSON)


def lookup(request: Request) -> dict[str, Any]:
    """How to use the cache for this request: ``fresh`` (skip the lookup), ``store`` (the answer), the key the
    hit path ``missed`` and the event store's ``mark`` it read (:mod:`.events`).

    ``Cache-Control: no-cache`` or ``max-age=0`` (or ``Pragma: no-cache``) from the client skips the lookup, and
    the fresh answer is still stored; ``no-store`` skips both (:func:`.hitpath.cache_policy`).
    """
    fresh, store = cache_policy(request.scope["headers"])
    scope = request.scope
    return {"fresh": fresh, "store": store, "missed": scope.get(MISSED), "mark": scope.get(MARKED, UNREAD)}


meta = APIRouter(tags=["meta"])
similarity = APIRouter(prefix="/v1", tags=["similarity"], responses=ERRORS)
users = APIRouter(prefix="/v1/users", tags=["users"], responses=ERRORS)
rating = APIRouter(prefix="/v1", tags=["rating"], responses=ERRORS, route_class=OffLoopRoute)
# /v1/predict answers an unknown user or item with a flagged fallback prediction, never 404
predictions = APIRouter(
    prefix="/v1",
    tags=["rating"],
    responses=error_responses(
        InvalidInput,
        UpstreamError,
        UpstreamUnavailable,
        NotReady,
        UpstreamTimeout,
        s503="The service that answers is unreachable or not ready",
    ),
    route_class=OffLoopRoute,
)


@meta.get("/healthz", response_model=HealthPublic)
async def healthz() -> Response:
    """The gateway process is alive (says nothing about the services)."""
    return Response(b'{"status":"ok"}', 200, media_type=JSON)


@meta.get(
    "/readyz",
    response_model=ReadinessPublic,
    responses={
        503: {"model": ReadinessPublic},
        401: {"model": ErrorPublic, "description": "A wrong status token, or one sent where none is configured"},
    },
)
async def readyz(gw: GatewayDep, request: Request) -> JSONResponse:
    """200 when both services are ready; the body lists each service (ready or not, and its version) and whether
    the cache and the event store work (neither makes the gateway unready). With ``Authorization: Bearer
    $CHORUS_STATUS_TOKEN`` it also gives their URLs (passwords hidden) and why a service is not ready."""
    await gw.check_all(timeout=2.0)
    details = show_details(request)
    services = {name: d.status() for name, d in gw.downstreams.items()}
    cache, events = await asyncio.gather(gw.cache.status(), gw.events.status())
    if not details:
        services = {name: {"status": s["status"], "version": s["version"]} for name, s in services.items()}
        cache = {"status": cache["status"]}
        events = {"status": events["status"]}
    ready = all(d.ready for d in gw.downstreams.values())
    body = {"status": "ready" if ready else "not_ready", "services": services, "cache": cache, "events": events}
    return JSONResponse(body, status_code=200 if ready else 503)


@similarity.get(
    "/items/{item_id}/similar",
    response_model=SimilarItemsPublic,
    responses={200: {"headers": CACHED_HEADERS}},
)
async def similar_items(
    gw: GatewayDep,
    request: Request,
    item_id: ItemId,
    k: K = DEFAULT_K,
    measure: Measure = DEFAULT_MEASURE,
    min_common: MinCommon = DEFAULT_MIN_COMMON,
) -> Response:
    """The k items most similar to an item under a measure, best first (from the similarity service)."""
    target = similar_items_target(item_id, k, measure.value, min_common)
    return respond(await gw.get(*target, **lookup(request)))


@similarity.get("/items/{item_id}", response_model=ItemPublic, responses={200: {"headers": CACHED_HEADERS}})
async def item(gw: GatewayDep, request: Request, item_id: ItemId) -> Response:
    """An item's title, number of reviews and mean rating."""
    return respond(await gw.get(*item_target(item_id), **lookup(request)))


@similarity.get("/items", response_model=ItemsPublic, responses={200: {"headers": CACHED_HEADERS}})
async def search_items(
    gw: GatewayDep,
    request: Request,
    q: SearchText,
    limit: SearchLimit = DEFAULT_SEARCH_LIMIT,
) -> Response:
    """Items whose titles contain the words (for people who do not know product ids)."""
    return respond(await gw.get(*search_target(q, limit), **lookup(request)))


@similarity.get("/stats", response_model=StatsPublic, responses={200: {"headers": CACHED_HEADERS}})
async def stats(gw: GatewayDep, request: Request) -> Response:
    """Statistics of the dataset behind the served version."""
    return respond(await gw.get(*stats_target(), **lookup(request)))


@users.get("/{user_id}/similar", response_model=SimilarUsersPublic, responses={200: {"headers": CACHED_HEADERS}})
async def similar_users(
    gw: GatewayDep,
    request: Request,
    user_id: UserId,
    k: K = DEFAULT_K,
    measure: Measure = DEFAULT_MEASURE,
    min_common: MinCommon = DEFAULT_MIN_COMMON,
) -> Response:
    """The k users most similar to a user under a measure, best first (from the similarity service)."""
    target = similar_users_target(user_id, k, measure.value, min_common)
    return respond(await gw.get(*target, **lookup(request)))


@users.get(
    "/{user_id}/recommendations",
    response_model=RankedRecommendationsPublic,
    responses={200: {"headers": CACHED_HEADERS}},
)
async def recommendations(
    gw: GatewayDep,
    request: Request,
    user_id: UserId,
    k: K = DEFAULT_K,
    method: MethodQuery = None,
    exclude: ExcludeIds = None,
) -> Response:
    """Top-k items for a user, never an item they reviewed or one of ``exclude``: by the served version's default
    ranker, or the ranker named by ``method`` (``latent``: by predicted rating), from the rating service; or, with
    ``method=similar``, because they liked similar items, from the similarity service. Every method answers in
    the same shape, ``model`` naming it."""
    target = recommendations_target(user_id, k, None if method is None else method.value, exclude or [])
    if target is None:  # cannot happen: FastAPI validated method and exclude against the same bounds
        raise InvalidInput("method or exclude is out of bounds")
    return respond(await gw.get(*target, **lookup(request)))


@predictions.get("/predict", response_model=Prediction, responses={200: {"headers": CACHED_HEADERS}})
async def predict(
    gw: GatewayDep,
    request: Request,
    user_id: UserIdQuery,
    item_id: ItemIdQuery,
) -> Response:
    """The rating a user would give an item (the latent factor model of the rating service). An unknown user or
    item is not an error: the answer is a fallback prediction flagged in ``fallback`` (``item_bias`` for an
    unknown user, ``user_bias`` for an unknown item, ``global_mean`` for both)."""
    return respond(await gw.get(*predict_target(user_id, item_id), **lookup(request)))


@predictions.post("/predict", response_model=PredictionsPublic)
async def predict_batch(gw: GatewayDep, request: Request, body: PredictRequest) -> Response:
    """Predictions for up to 10,000 (user, item) pairs at once, unknown ids answered by the flagged fallbacks of
    ``GET /v1/predict``; never cached."""
    # The body was validated above; forward the client's bytes rather than re-serialising 10,000 pairs.
    return respond(await gw.post("rating", "/v1/predict", await request.body()))


@rating.post("/recommendations", response_model=BasketRecommendationsPublic)
async def basket_recommendations(gw: GatewayDep, request: Request, body: BasketRequest) -> Response:
    """Top-k items for an anonymous basket or session (item ids) by a ranker of the served version; unknown ids
    are listed in ``unknown_items``; never cached."""
    return respond(await gw.post("rating", "/v1/recommendations", await request.body()))


@rating.post(SCORE_PATH.removeprefix("/v1"), response_model=ReviewScorePublic, openapi_extra=SCORE_OPENAPI)
async def score_review(gw: GatewayDep, request: Request, body: ReviewBody) -> Response:
    """What a review's text predicts: star rating, verified-purchase probability and the terms that moved the
    rating most (``rating`` and ``item_id`` optional); never cached. Empty text, text over 20,000 characters or a
    body that is not UTF-8: 422 naming the problem."""
    return respond(await gw.post("rating", SCORE_PATH, await request.body()))


page = APIRouter(include_in_schema=False)


@page.get("/", response_class=HTMLResponse)
async def index(gw: GatewayDep, request: Request) -> HTMLResponse:
    """The web page: a shop front over the API (:mod:`.page` reads its query string and asks the services)."""
    context = await pages.context(gw, request.query_params)
    return cast(HTMLResponse, request.app.state.templates.TemplateResponse(request, "index.html", context))


@page.get("/report", response_class=HTMLResponse)
async def report(gw: GatewayDep, request: Request) -> Response:
    """The served version's evaluation report, one self-contained HTML page with its plots (from the rating
    service, cached per version like every answer)."""
    answer = await gw.get("rating", "report", "", **lookup(request))
    if answer.status != 200:
        return respond(answer)  # the service's JSON error, e.g. a version without a report
    headers = {CACHE_HEADER: answer.cache} | ({VERSION_HEADER: answer.version} if answer.version else {})
    return Response(answer.body, 200, headers, "text/html; charset=utf-8")
