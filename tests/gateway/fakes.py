"""Fakes of the similarity and rating services that speak their wire contract, for the gateway's tests.

:class:`FakeService` is an ``httpx`` handler: wrap it in ``httpx.MockTransport`` for in-process contract tests, or
serve it over real HTTP with :func:`asgi_app` (for tests that need a gateway process). Each fake counts its calls,
can switch version, become unready, refuse connections, time out, fail, or answer slowly. Given an event store,
a fake folds each user's live events into their history, as the real services do (the items they acted on count
as reviewed; a forgotten user is unknown), and the similar items of the similarity fake report the store's last
``seq`` they saw (``events_seen``).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any
from urllib.parse import unquote

import httpx

ITEMS: dict[str, dict[str, Any]] = {
    "B001": {"title": "Fender Medium Picks, 12 Pack", "reviews": 12, "mean_rating": 4.5},
    "B002": {"title": "Leather Guitar Strap", "reviews": 8, "mean_rating": 4.25},
    "B003": {"title": "Clip-on Guitar Tuner", "reviews": 5, "mean_rating": 3.8},
    "B 004": {"title": "Item with a space in its id", "reviews": 1, "mean_rating": 5.0},
}
USERS = {"U1": ["B001", "B002"], "U2": ["B002"], "U3": ["B003"]}
RECENT_DATES = ["2014-07-01", "2013-02-03", "2012-11-30", "2012-01-15", "2011-06-30"]  # of a user's newest reviews
RATING_METHODS = ["ease", "popular", "latent"]  # what the fake rating service's version serves
RATING_DEFAULT = "ease"  # and its default ranker

STATS = {
    "reviews": 26,
    "users": 3,
    "items": 4,
    "mean_rating": 4.4,
    "rating_histogram": {"1": 0, "2": 1, "3": 3, "4": 8, "5": 14},
    "verified_fraction": 0.5,
    "first_date": "2010-01-01",
    "last_date": "2014-07-01",
    "skipped_rows": 0,
    "skipped_by_reason": {},
}


def _json(status: int, body, version: str | None) -> httpx.Response:
    headers = {"X-Model-Version": version} if version else {}
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={**headers, "content-type": "application/json"}
    )


def _not_found(kind: str, ident: str, version: str | None) -> httpx.Response:
    return _json(404, {"type": "not_found", "detail": f"unknown {kind} '{ident}'"}, version)


class FakeService:
    """A downstream service: ``kind`` is ``"similarity"`` or ``"rating"``."""

    def __init__(self, kind: str, version: str = "v1", events=None):
        self.kind = kind
        self.version = version
        self.events = events  # an EventStore, or None
        self.ready = True
        self.mode = "ok"  # ok | refuse | timeout | error500 | unready | reject422
        self.delay = 0.0
        self.any_user = False  # answer similar users for any user id, not only USERS
        self.calls: Counter[str] = Counter()
        self.requests: list[httpx.Request] = []

    # --- what the tests look at -------------------------------------------------------------------------
    def api_calls(self) -> int:
        """Calls other than the health and readiness probes."""
        return sum(n for path, n in self.calls.items() if path.startswith("/v1/"))

    def history(self, user_id: str) -> list[str] | None:
        """The items a user reviewed: theirs in USERS, then those of their live events; None: an unknown user."""
        items = list(USERS.get(user_id, []))
        if self.events is not None:
            live = self.events.live(user_id)
            if live.forgotten:
                items = []
            items += [e.item_id for e in live.events if e.item_id not in items]
        return items or None

    # --- the handler ------------------------------------------------------------------------------------
    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] += 1
        if path.startswith("/v1/"):
            self.requests.append(request)
        if self.mode == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "timeout" and path != "/healthz":
            raise httpx.ReadTimeout("timed out", request=request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if path == "/healthz":
            return _json(200, {"status": "ok"}, self.version)
        if path == "/readyz":
            if self.ready and self.mode != "unready":
                return _json(200, {"status": "ready", "version": self.version, "detail": None}, self.version)
            return _json(503, {"status": "not_ready", "version": None, "detail": "no artifact loaded"}, None)
        if self.mode == "unready":
            return _json(503, {"type": "not_ready", "detail": "no artifact loaded"}, None)
        if self.mode == "error500":
            return _json(500, {"type": "error", "detail": "boom"}, self.version)
        params = request.url.params
        if self.mode == "reject422" or ("k" in params and not params["k"].isdigit()):
            # what FastAPI itself answers for a bad query parameter
            return _json(422, {"detail": [{"loc": ["query", "k"], "msg": "bad k", "type": "int_parsing"}]}, None)
        parts = [unquote(p) for p in request.url.raw_path.split(b"?")[0].decode().split("/")]
        handler = self._similarity if self.kind == "similarity" else self._rating
        return handler(request, parts, params)

    def _similarity(self, request: httpx.Request, parts: list[str], params) -> httpx.Response:
        v = self.version
        k = int(params.get("k", 10))
        match parts[1:]:
            case ["v1", "items", item_id, "similar"]:
                if item_id not in ITEMS:
                    return _not_found("item", item_id, v)
                data = [
                    {"item_id": i, "title": ITEMS[i]["title"], "score": round(1.0 / (n + 2), 10)}
                    for n, i in enumerate(i for i in ITEMS if i != item_id)
                ][:k]
                body = {"item_id": item_id, "measure": params.get("measure", "jaccard"), "data": data}
                if self.events is not None:
                    body["events_seen"] = self.events.last_seq()
                return _json(200, {**body, "count": len(data), "version_seen": v}, v)
            case ["v1", "users", user_id, "similar"]:
                if user_id not in USERS and not self.any_user:
                    return _not_found("user", user_id, v)
                data = [{"user_id": u, "score": 0.5} for u in USERS if u != user_id][:k]
                body = {"user_id": user_id, "measure": params.get("measure", "jaccard"), "data": data}
                return _json(200, {**body, "count": len(data)}, v)
            case ["v1", "users", user_id, "recommendations"]:
                history = self.history(user_id)
                if history is None:
                    return _not_found("user", user_id, v)
                liked = history[0]
                exclude = params.get_list("exclude")
                data = [
                    {
                        "item_id": i,
                        "title": ITEMS[i]["title"],
                        "score": 1.5,
                        "because": [{"item_id": liked, "title": ITEMS[liked]["title"]}],
                    }
                    for i in ITEMS
                    if i not in history and i not in exclude
                ][:k]
                unknown = [e for e in dict.fromkeys(exclude) if e not in ITEMS]
                body = {"user_id": user_id, "model": "similar", "data": data, "count": len(data), "fallback": None}
                return _json(200, {**body, "unknown_exclude": unknown}, v)
            case ["v1", "stats", "top"]:  # the busiest items and users
                k = int(params.get("k", 5))
                items = sorted(ITEMS, key=lambda i: (-ITEMS[i]["reviews"], i))[:k]
                users = sorted(USERS, key=lambda u: (-len(USERS[u]), u))[:k]
                body = {
                    "version": v,
                    "items": [{"item_id": i, **ITEMS[i]} for i in items],
                    "users": [{"user_id": u, "reviews": len(USERS[u]), "mean_rating": 4.5} for u in users],
                }
                return _json(200, body, v)
            case ["v1", "users", user_id]:  # a user's newest reviews, newest first
                history = self.history(user_id)
                if history is None:
                    return _not_found("user", user_id, v)
                recent = [
                    {"item_id": i, "title": ITEMS.get(i, {}).get("title"), "rating": max(5.0 - n, 1.0), "date": day}
                    for n, (i, day) in enumerate(zip(reversed(history), RECENT_DATES, strict=False))
                ]
                body = {"user_id": user_id, "reviews": len(history), "mean_rating": 4.5, "recent": recent}
                return _json(200, body, v)
            case ["v1", "items"] if params.get("q", "").strip() in ITEMS:  # an exact id: that item alone here
                item_id = params["q"].strip()
                return _json(200, {"q": params["q"], "data": [{"item_id": item_id, **ITEMS[item_id]}], "count": 1}, v)
            case ["v1", "items", item_id]:
                if item_id not in ITEMS:
                    return _not_found("item", item_id, v)
                return _json(200, {"item_id": item_id, **ITEMS[item_id]}, v)
            case ["v1", "items"]:
                words = params.get("q", "").lower().split()
                limit = int(params.get("limit", 20))
                found = [
                    {"item_id": i, **meta}
                    for i, meta in ITEMS.items()
                    if words and all(w in meta["title"].lower() for w in words)
                ][:limit]
                return _json(200, {"q": params.get("q", ""), "data": found, "count": len(found)}, v)
            case ["v1", "stats"]:
                return _json(200, {"version": v, "stats": STATS}, v)
            case ["v1", "predict"] if request.method == "POST":
                pairs = json.loads(request.content)["pairs"]
                data = [{**p, "prediction": 4.0, "fallback": False} for p in pairs]
                return _json(200, {"data": data, "count": len(data)}, v)
        return _json(404, {"detail": "Not Found"}, v)

    def _rating(self, request: httpx.Request, parts: list[str], params) -> httpx.Response:
        v = self.version
        match parts[1:]:
            case ["v1", "predict"] if request.method == "GET":
                user, item = params.get("user_id"), params.get("item_id")
                fallback = self.history(user) is None
                body = {"user_id": user, "item_id": item, "prediction": 3.9 if fallback else 4.2}
                return _json(200, {**body, "fallback": fallback}, v)
            case ["v1", "predict"] if request.method == "POST":
                pairs = json.loads(request.content)["pairs"]
                data = [{**p, "prediction": 4.2, "fallback": p["user_id"] not in USERS} for p in pairs]
                return _json(200, {"data": data, "count": len(data)}, v)
            case ["v1", "users", user_id, "recommendations"]:
                method = params.get("method", RATING_DEFAULT)
                if method not in RATING_METHODS:
                    return self._unserved(method)
                history = self.history(user_id)
                unknown = history is None
                seen = history or []
                body = self._ranked("popular" if unknown else method, seen, params.get_list("exclude"), params)
                return _json(200, {"user_id": user_id, **body, "fallback": "popular" if unknown else None}, v)
            case ["v1", "recommendations"] if request.method == "POST":
                basket = json.loads(request.content)
                method = basket.get("method") or RATING_DEFAULT
                if method not in RATING_METHODS or method == "latent":
                    return self._unserved(method)
                items = basket.get("items", [])
                known = [i for i in items if i in ITEMS]
                body = self._ranked(method if known else "popular", known, basket.get("exclude", []), basket)
                unknown_items = list(dict.fromkeys(i for i in items if i not in ITEMS))
                return _json(200, {**body, "fallback": None if known else "popular", "unknown_items": unknown_items}, v)
            case ["v1", "reviews", "score"] if request.method == "POST":
                review = json.loads(request.content)
                words = review["text"].lower().split()
                terms = [{"term": w, "weight": 0.1} for w in words[:3]]
                return _json(200, {"predicted_rating": 4.5, "verified_probability": 0.9, "top_terms": terms}, v)
        return _json(404, {"detail": "Not Found"}, v)

    def _ranked(self, model: str, history: list[str], exclude: list[str], params) -> dict[str, Any]:
        """What the rating service answers by ``model`` for a history: every other item not excluded, with
        the history's first items as the reasons of ``ease``."""
        k = int(params.get("k", 10))
        because = [{"item_id": i, "title": ITEMS[i]["title"]} for i in history[:3]] if model == "ease" else None
        data = [
            {
                "item_id": i,
                "title": ITEMS[i]["title"],
                "score": round(4.8 - n / 10, 4) if model == "latent" else round(1.0 / (n + 2), 4),
                "because": because,
            }
            for n, i in enumerate(i for i in ITEMS if i not in history and i not in exclude)
        ][:k]
        unknown = list(dict.fromkeys(e for e in exclude if e not in ITEMS))
        return {"model": model, "data": data, "count": len(data), "unknown_exclude": unknown}

    def _unserved(self, method: str) -> httpx.Response:
        detail = f"method {method!r} is not served by version {self.version}: choose one of {', '.join(RATING_METHODS)}"
        return _json(422, {"type": "invalid_input", "detail": detail}, self.version)


def asgi_app(service: FakeService):
    """Serve a :class:`FakeService` over real HTTP (e.g. under uvicorn)."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            raw += b"?" + scope["query_string"]
        request = httpx.Request(scope["method"], "http://fake" + raw.decode("latin-1"), content=body)
        try:
            response = await service(request)
        except httpx.TransportError:
            response = httpx.Response(500, content=b'{"detail":"fake transport error"}')
        headers = [(k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() != "content-length"]
        headers.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.content})

    return app
