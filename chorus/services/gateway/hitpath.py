"""Canonical cache queries, and the hit path: cache hits answered before FastAPI routes the request.

Every cached route names its answer by ``(service, route, canonical query)``; the functions here build both parts
from parameter values and are the only place that does, for the handlers in :mod:`.api` and for the hit path.

The hit path (:class:`HitPath`, a plain ASGI middleware) exists for speed: FastAPI's per-request parameter
resolution costs several times a cache lookup. It matches the path of a cached ``GET`` route, builds the key from
the *raw* query strings (with the same defaults), and if that key holds an answer sends its bytes at once.
Anything else -- a miss, an unknown path, ``Cache-Control: no-cache`` (:func:`cache_policy`) -- goes on to
FastAPI unchanged.

It also answers, for every method, the one request that must not reach routing: a path whose user or item id
contains an encoded ``/`` (see :func:`ident`).

It needs no validation of its own, and cannot serve a wrong answer: answers are only ever stored by the handlers,
under keys built from validated values rendered canonically (``str(int)``, the enum's value). A raw string that is
not already in that form (``k=010``, ``k=9999``, ``measure=JACCARD``) builds a key nothing was stored under, so
such a request misses here and FastAPI validates it as usual. The one parameter that may repeat,
``exclude``, is canonicalised (distinct ids, sorted), so the hit path checks its bounds itself before building
a key (:func:`recommendations_target`).

Each route's target also says which events its answer depends on (:class:`.events.EventScope`): one user's
history (a user's recommendations, because-you-liked, similar users, a prediction for a user) or everyone's
(similar items, an item's facts, the title search, which may list items known only from events); the statistics
of the served dataset depend on none. With an event store, the hit path reads the matching sequence number off
the event loop (:meth:`.events.Events.mark`) and the key carries it, so an answer stored before a write is never
served after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from chorus.services.gateway.cache import cache_key
from chorus.services.gateway.events import EVERYONE, NO_EVENTS, EventScope, Mark, of_user
from chorus.shared.contract.errors import NotFound
from chorus.shared.contract.names import (
    DEFAULT_K,
    DEFAULT_MEASURE,
    DEFAULT_MIN_COMMON,
    DEFAULT_SEARCH_LIMIT,
    MAX_ID_LENGTH,
    MAX_K,
    Method,
    canonical_method,
)
from chorus.shared.http.metrics import ROUTE_KEY


def ident(value: str) -> str:
    """A user or item id as one path segment of a downstream URL, percent-encoded.

    ``.`` and ``..`` are encoded too (``%2E``): left as they are, they are dot segments, which the HTTP client
    resolves away (``/v1/items/../similar`` would be sent as ``/v1/similar``); encoded, the service decodes them
    back and answers about the id, e.g. 404 ``unknown item '..'``.

    Ids containing ``/`` are not supported. Encoded as ``%2F`` they reach the service, which routes on the
    decoded path and answers 404 (or, for ``x/similar``, another route), so the gateway never sends one: the API
    answers 404 ``unknown item 'x/y'`` before routing (:func:`encoded_slash`), and the web page treats such an id as
    unknown.
    """
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


def encoded_slash(raw_path: bytes) -> NotFound | None:
    """The 404 for a raw request path under ``/v1/`` with an encoded ``/`` (an id containing ``/``), or ``None``.

    Routing sees the decoded path, where ``/v1/users/a%2Fsimilar`` is ``/v1/users/a/similar``: such a request
    would be answered about another id, or not found with no word of the id.
    """
    if not raw_path.startswith(b"/v1/") or (b"%2F" not in raw_path and b"%2f" not in raw_path):
        return None
    parts = raw_path.split(b"/")
    if len(parts) > 3 and parts[2] in (b"items", b"users") and b"%2f" in parts[3].lower():
        kind = "item" if parts[2] == b"items" else "user"
        value = unquote_to_bytes(parts[3]).decode("utf-8", "replace")
        return NotFound(f"unknown {kind} '{value}': ids containing '/' are not supported")
    path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    return NotFound(f"no route {path}: paths with an encoded '/' are not supported")


def similar_query(k: int | str, measure: str, min_common: int | str) -> str:
    return f"k={k}&measure={measure}&min_common={min_common}"


def k_query(k: int | str) -> str:
    return f"k={k}"


def search_query(q: str, limit: int | str) -> str:
    return urlencode({"q": q, "limit": limit})


def predict_query(user_id: str, item_id: str) -> str:
    return urlencode({"user_id": user_id, "item_id": item_id})


class Target(NamedTuple):
    """Where a cached ``GET`` is answered and stored: the service, its route and canonical query, and the events
    the answer depends on."""

    service: str
    route: str
    query: str
    events: EventScope = NO_EVENTS


def similar_items_target(item_id: str, k: int | str, measure: str, min_common: int | str) -> Target:
    """``/v1/items/{id}/similar``: the item's neighbours, which everyone's events move."""
    return Target("similarity", f"items/{ident(item_id)}/similar", similar_query(k, measure, min_common), EVERYONE)


def similar_users_target(user_id: str, k: int | str, measure: str, min_common: int | str) -> Target:
    """``/v1/users/{id}/similar``: from the user's history."""
    return Target(
        "similarity", f"users/{ident(user_id)}/similar", similar_query(k, measure, min_common), of_user(user_id)
    )


def item_target(item_id: str) -> Target:
    """``/v1/items/{id}``: an item's facts, which say whether it is known only from events."""
    return Target("similarity", f"items/{ident(item_id)}", "", EVERYONE)


def search_target(q: str, limit: int | str) -> Target:
    """``/v1/items?q=``: items and their facts, like :func:`item_target`."""
    return Target("similarity", "items", search_query(q, limit), EVERYONE)


def stats_target() -> Target:
    """``/v1/stats``: the statistics of the served version's dataset; no event changes them."""
    return Target("similarity", "stats", "")


def predict_target(user_id: str, item_id: str) -> Target:
    """``/v1/predict``: from the user's history."""
    return Target("rating", "predict", predict_query(user_id, item_id), of_user(user_id))


MISSED = "chorus.missed"  # scope key: the cache key the hit path just missed
MARKED = "chorus.mark"  # scope key: the mark the hit path read for the request's events (see .events.Mark)


def cache_policy(headers: Sequence[tuple[bytes, bytes]]) -> tuple[bool, bool]:
    """``(fresh, store)`` for a request's raw headers, read as RFC 9111 (section 5.2.1) says a cache reads them.

    ``fresh``: skip the lookup, for ``Cache-Control`` ``no-cache``, ``no-store`` or ``max-age=0``, or, where the
    request has no ``Cache-Control``, ``Pragma: no-cache`` (section 5.4). ``store``: false for ``no-store``, whose
    answer is not stored either. Directive names are case-insensitive; values may be quoted; the field may be
    given several times. Other directives (``max-stale``, ``min-fresh``, ``only-if-cached``) are ignored.
    """
    directives: dict[str, str] = {}
    pragma_no_cache = False
    seen_cache_control = False
    for name, value in headers:
        if name == b"cache-control":
            seen_cache_control = True
            for token in value.decode("latin-1").split(","):
                key, _, arg = token.partition("=")
                directives[key.strip().lower()] = arg.strip().strip('"')
        elif name == b"pragma":
            pragma_no_cache = pragma_no_cache or any(
                t.strip().lower() == "no-cache" for t in value.decode("latin-1").split(",")
            )
    if not seen_cache_control:
        return pragma_no_cache, True
    no_store = "no-store" in directives
    max_age = directives.get("max-age")
    fresh = no_store or "no-cache" in directives or (max_age is not None and max_age.isdigit() and int(max_age) == 0)
    return fresh, not no_store


_METHODS = frozenset(m.value for m in Method)


def recommendations_target(user_id: str, k: int | str, method: str | None, exclude: Sequence[str]) -> Target | None:
    """Where ``/v1/users/{user_id}/recommendations`` is answered and cached, for a ``method`` (None: the
    default) and ``exclude`` ids; None where the API refuses these values (the hit path's raw ones; the handler
    has validated its own): an unknown method, ``exclude`` ids out of bounds.

    ``similar`` goes to the similarity service, every other method to the rating service, with the query ``k``,
    then ``method`` (an alias resolved: ``model`` is keyed as ``latent``) unless none was asked for or it is
    ``similar`` (the similarity service's only method), then the distinct ``exclude`` ids sorted. Without a method
    the rating service answers with the default ranker of the version it serves, and every key carries that
    version, so the key ``k=10`` (no ``method``) names exactly one ranker: the default is cached under the absence
    of ``method``, apart from the same ranker asked for by name.
    """
    route = f"users/{ident(user_id)}/recommendations"
    events = of_user(user_id)
    if method is not None:
        if method not in _METHODS:
            return None
        method = canonical_method(method).value
    if len(exclude) > MAX_K or any(not 1 <= len(e) <= MAX_ID_LENGTH for e in exclude):
        return None
    pairs: list[tuple[str, str | int]] = [("k", k)]
    if method is not None and method != Method.similar:
        pairs.append(("method", method))
    pairs.extend(("exclude", e) for e in sorted(set(exclude)))
    return Target("similarity" if method == Method.similar else "rating", route, urlencode(pairs), events)


Params = dict[str, str]
Lists = dict[str, list[str]]
REPEATABLE = frozenset({"exclude"})
"""Query parameters that may be given several times (the others may not: FastAPI would read only the last)."""


def _similar(build: Callable[[str, str, str, str], Target]) -> Callable[[re.Match[str], Params, Lists], Target]:
    def target(m: re.Match[str], p: Params, lists: Lists) -> Target:
        k, min_common = p.get("k", str(DEFAULT_K)), p.get("min_common", str(DEFAULT_MIN_COMMON))
        return build(m[1], k, p.get("measure", DEFAULT_MEASURE), min_common)

    return target


def _recommendations(m: re.Match[str], p: Params, lists: Lists) -> Target | None:
    return recommendations_target(m[1], p.get("k", DEFAULT_K), p.get("method"), lists.get("exclude", []))


def _search(m: re.Match[str], p: Params, lists: Lists) -> Target | None:
    if "q" not in p:
        return None
    return search_target(p["q"], p.get("limit", DEFAULT_SEARCH_LIMIT))


def _predict(m: re.Match[str], p: Params, lists: Lists) -> Target | None:
    if "user_id" not in p or "item_id" not in p:
        return None
    return predict_target(p["user_id"], p["item_id"])


# Starlette matches a ``{name}`` path parameter with ``[^/]+`` against the percent-decoded path; so do we. The
# template is the route's, as FastAPI names it (for the metrics of hits, which never reach FastAPI's routing).
ROUTES: list[tuple[re.Pattern[str], str, Callable[[re.Match[str], Params, Lists], Target | None]]] = [
    (re.compile(r"/v1/items/([^/]+)/similar"), "/v1/items/{item_id}/similar", _similar(similar_items_target)),
    (re.compile(r"/v1/users/([^/]+)/similar"), "/v1/users/{user_id}/similar", _similar(similar_users_target)),
    (re.compile(r"/v1/users/([^/]+)/recommendations"), "/v1/users/{user_id}/recommendations", _recommendations),
    (re.compile(r"/v1/items/([^/]+)"), "/v1/items/{item_id}", lambda m, p, lists: item_target(m[1])),
    (re.compile(r"/v1/items"), "/v1/items", _search),
    (re.compile(r"/v1/stats"), "/v1/stats", lambda m, p, lists: stats_target()),
    (re.compile(r"/v1/predict"), "/v1/predict", _predict),
]


def target_of(path: str, query_string: bytes, scope: Scope | None = None) -> Target | None:
    """The cache target a ``GET path?query`` would be stored under if it is valid, or ``None``; names the route
    template in ``scope`` (for the metrics) when one matches."""
    if not path.startswith("/v1/"):
        return None
    for pattern, template, build in ROUTES:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        if scope is not None:
            scope[ROUTE_KEY] = template
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True) if query_string else []
        single = [(name, value) for name, value in pairs if name not in REPEATABLE]
        params = dict(single)
        if len(params) != len(single):
            return None  # a repeated parameter: leave it to FastAPI
        lists: Lists = {}
        for name, value in pairs:
            if name in REPEATABLE:
                lists.setdefault(name, []).append(value)
        return build(m, params, lists)
    return None


class HitPath:
    """ASGI middleware answering cache hits of the cached ``GET`` routes without entering FastAPI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = encoded_slash(scope.get("raw_path") or b"")
        if refused is not None:
            body = json.dumps(refused.to_dict(), separators=(",", ":")).encode()
            return await _send_json(send, refused.status_code, body)
        if scope["method"] != "GET":
            return await self.app(scope, receive, send)
        target = target_of(scope["path"], scope["query_string"], scope)
        gateway = getattr(scope["app"].state, "gateway", None)
        if target is None or gateway is None or cache_policy(scope["headers"])[0]:
            return await self.app(scope, receive, send)
        version = gateway.downstreams[target.service].version
        if version is None:
            return await self.app(scope, receive, send)
        mark: Mark = await gateway.events.mark(target.events)
        scope[MARKED] = mark  # the handler keys its answer by the same mark: one store read per request
        if mark is None:  # the event store cannot be read now: the handler answers uncached
            return await self.app(scope, receive, send)
        key = cache_key(target.service, version, target.route, target.query, mark)
        state, body = await gateway.cache.get(key)
        if body is None:
            if state == "miss":
                scope[MISSED] = key  # the handler need not ask the cache again
            return await self.app(scope, receive, send)
        await _send_json(send, 200, body, [(b"x-model-version", version.encode()), (b"x-cache", b"hit")])


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or ())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
