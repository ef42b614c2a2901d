"""Canonical cache queries, and the hit path: cache hits answered before FastAPI routes the request.

Every cached route names its answer by ``(service, route, canonical query)``; the functions here build both parts
from parameter values and are the only place that does, for the handlers in :mod:`.api` and for the hit path.

The hit path (:class:`HitPath`, a plain ASGI middleware) exists for speed: FastAPI's per-request parameter
resolution costs several times a cache lookup. It matches the path of a cached ``GET`` route, builds the key from
the *raw* query strings (with the same defaults), and if that key holds an answer sends its bytes at once.
Anything else -- a miss, an unknown path, ``Cache-Control: no-cache`` -- goes on to FastAPI unchanged.

It needs no validation of its own, and cannot serve a wrong answer: answers are only ever stored by the handlers,
under keys built from validated values rendered canonically (``str(int)``, the enum's value). A raw string that is
not already in that form (``k=010``, ``k=9999``, ``measure=JACCARD``) builds a key nothing was stored under, so
such a request misses here and FastAPI validates it as usual.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlencode

from .cache import cache_key

# Defaults of the cached routes, used by the handlers' signatures and by the hit path alike.
DEFAULT_K = 10
DEFAULT_MEASURE = "jaccard"
DEFAULT_MIN_COMMON = 1
DEFAULT_METHOD = "model"
DEFAULT_LIMIT = 20


def ident(value: str) -> str:
    """A user or item id as one path segment."""
    return quote(value, safe="")


def similar_query(k: int | str, measure: str, min_common: int | str) -> str:
    return f"k={k}&measure={measure}&min_common={min_common}"


def k_query(k: int | str) -> str:
    return f"k={k}"


def search_query(q: str, limit: int | str) -> str:
    return urlencode({"q": q, "limit": limit})


def predict_query(user_id: str, item_id: str) -> str:
    return urlencode({"user_id": user_id, "item_id": item_id})


def recommendation_service(method: str) -> str | None:
    return {"model": "rating", "similar": "similarity"}.get(method)


MISSED = "chorus.missed"  # scope key: the cache key the hit path just missed

Target = tuple[str, str, str]  # service, route, canonical query
Params = dict[str, str]


def _similar(kind: str) -> Callable[[re.Match, Params], Target]:
    def target(m: re.Match, p: Params) -> Target:
        query = similar_query(
            p.get("k", DEFAULT_K), p.get("measure", DEFAULT_MEASURE), p.get("min_common", DEFAULT_MIN_COMMON)
        )
        return "similarity", f"{kind}/{ident(m[1])}/similar", query

    return target


def _recommendations(m: re.Match, p: Params) -> Target | None:
    service = recommendation_service(p.get("method", DEFAULT_METHOD))
    if service is None:
        return None
    return service, f"users/{ident(m[1])}/recommendations", k_query(p.get("k", DEFAULT_K))


def _search(m: re.Match, p: Params) -> Target | None:
    if "q" not in p:
        return None
    return "similarity", "items", search_query(p["q"], p.get("limit", DEFAULT_LIMIT))


def _predict(m: re.Match, p: Params) -> Target | None:
    if "user_id" not in p or "item_id" not in p:
        return None
    return "rating", "predict", predict_query(p["user_id"], p["item_id"])


# Starlette matches a ``{name}`` path parameter with ``[^/]+`` against the percent-decoded path; so do we.
ROUTES: list[tuple[re.Pattern, Callable[[re.Match, Params], Target | None]]] = [
    (re.compile(r"/v1/items/([^/]+)/similar"), _similar("items")),
    (re.compile(r"/v1/users/([^/]+)/similar"), _similar("users")),
    (re.compile(r"/v1/users/([^/]+)/recommendations"), _recommendations),
    (re.compile(r"/v1/items/([^/]+)"), lambda m, p: ("similarity", f"items/{ident(m[1])}", "")),
    (re.compile(r"/v1/items"), _search),
    (re.compile(r"/v1/stats"), lambda m, p: ("similarity", "stats", "")),
    (re.compile(r"/v1/predict"), _predict),
]


def target_of(path: str, query_string: bytes) -> Target | None:
    """The cache target a ``GET path?query`` would be stored under if it is valid, or ``None``."""
    if not path.startswith("/v1/"):
        return None
    for pattern, build in ROUTES:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True) if query_string else []
        params = dict(pairs)
        if len(params) != len(pairs):
            return None  # a repeated parameter: leave it to FastAPI
        return build(m, params)
    return None


class HitPath:
    """ASGI middleware answering cache hits of the cached ``GET`` routes without entering FastAPI."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        target = target_of(scope["path"], scope["query_string"])
        gateway = getattr(scope["app"].state, "gateway", None) if target is not None else None
        if gateway is None:
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"cache-control" and b"no-cache" in value:
                return await self.app(scope, receive, send)
        service, route, query = target
        version = gateway.downstreams[service].version
        if version is None:
            return await self.app(scope, receive, send)
        key = cache_key(service, version, route, query)
        state, body = await gateway.cache.get(key)
        if body is None:
            if state == "miss":
                scope[MISSED] = key  # the handler need not ask the cache again
            return await self.app(scope, receive, send)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-model-version", version.encode()),
            (b"x-cache", b"hit"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
