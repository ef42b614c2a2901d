"""The HTTP shell every Chorus process shares, the gateway included: error bodies, the status token, the order of
the outermost middleware, and the uvicorn options.

Every error body is ``{"type", "detail"}`` (:class:`~chorus.shared.contract.errors.ChorusError` and its subclasses);
validation errors also list ``errors``. The detail of an :class:`~chorus.shared.contract.errors.ArtifactError`,
which names artifact files, goes to the log, not to the client. An answer that a model version produced carries
``X-Model-Version``, errors included (``request.state.model_version``).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from chorus.shared.contract.errors import (
    ArtifactError,
    ChorusError,
    HeadersTooLarge,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UriTooLong,
)
from chorus.shared.contract.names import NOT_BLANK, VERSION_HEADER
from chorus.shared.contract.params import error_model, summary
from chorus.shared.http.limits import NEVER_SHED, HttpSettings, Limits
from chorus.shared.http.metrics import RequestMetrics

log = logging.getLogger("chorus.http")

HTTP_PROTOCOL = "chorus.shared.http.protocol:LimitedH11Protocol"
"""uvicorn's ``--http`` for every Chorus process: h11 with head size limits and read timeouts in JSON."""


def uvicorn_options() -> list[str]:
    """Command-line options of ``uvicorn`` that every Chorus process runs with (after the app and ``--factory``):
    the HTTP protocol that enforces ``CHORUS_MAX_HEAD_BYTES``, ``CHORUS_HEAD_TIMEOUT``, ``CHORUS_BODY_TIMEOUT``,
    ``CHORUS_BODY_MIN_RATE`` and ``CHORUS_MAX_RECEIVING``, and closes lingering
    (:mod:`chorus.shared.http.protocol`)."""
    return ["--http", HTTP_PROTOCOL]


def _validation_message(exc: RequestValidationError) -> str:
    return "; ".join(_error_message(err) for err in exc.errors())


_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})
"""What pydantic calls a body that is not an object: JSON of another type, or bytes FastAPI did not parse because
their Content-Type is not JSON."""


def _error_message(err: dict[str, Any]) -> str:
    """One validation error as a sentence: the JSON parser's reason, words for an empty text, else pydantic's
    message (or a validator's) after the field's name."""
    if err.get("type") == "json_invalid":  # its location is a character offset, not a field
        return _json_message(err)
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
    ctx = err.get("ctx") or {}
    kind = err.get("type")
    if tuple(err.get("loc", ())) == ("body",) and kind in _NOT_AN_OBJECT:  # e.g. curl -d without a JSON type
        return "the request body must be a JSON object, sent with Content-Type: application/json"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NOT_BLANK:
        return f"{where}: empty; send at least one character other than white space"
    return f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}"  # a validator's own words


def _listed(err: dict[str, Any]) -> dict[str, Any]:
    """An entry of ``errors``: where, what and pydantic's message (a JSON error's reason, not "JSON decode
    error")."""
    msg = _json_message(err) if err.get("type") == "json_invalid" else err.get("msg", "invalid")
    return {"loc": err.get("loc"), "msg": msg, "type": err.get("type")}


def _json_message(err: dict[str, Any]) -> str:
    """A ``json_invalid`` error as a sentence: FastAPI's (location ``("body", <offset>)``, the reason in ``ctx``)
    or pydantic's (the reason in ``msg``)."""
    loc = err.get("loc", ())
    offset = loc[-1] if loc and isinstance(loc[-1], int) else None
    reason = (err.get("ctx") or {}).get("error")
    msg = str(err.get("msg", ""))
    if reason is None and msg.startswith("Invalid JSON: "):  # pydantic's parser, rather than json.loads
        reason = msg.removeprefix("Invalid JSON: ")
    where = f" at character {offset}" if offset is not None else ""
    return f"the request body is not valid JSON{f' ({reason}{where})' if reason else where}"


def install_error_handlers(app: FastAPI) -> None:
    """Every error body is ``{"type", "detail"}``; validation errors also list ``errors``; anything unexpected
    is logged and answered 500 ``{"type": "internal_error", ...}``."""

    def _with_version(request: Request, response: JSONResponse) -> JSONResponse:
        version = getattr(request.state, "model_version", None)
        if version:
            response.headers[VERSION_HEADER] = version
        return response

    @app.exception_handler(ChorusError)
    async def _chorus_error(request: Request, exc: ChorusError) -> JSONResponse:
        body = exc.to_dict()
        if isinstance(exc, ArtifactError):  # it names artifact files: to the log only
            log.error("%s %s: %s", request.method, request.url.path, exc.detail)
            body["detail"] = "the service cannot use its model version; its operator finds why in its log"
        return _with_version(request, JSONResponse(body, status_code=exc.status_code))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = {
            "type": "invalid_input",
            "detail": _validation_message(exc),
            "errors": [_listed(e) for e in exc.errors()],
        }
        return _with_version(request, JSONResponse(body, status_code=422))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # no logging here: Starlette re-raises after this response and the server logs the traceback once
        body = {
            "type": "internal_error",
            "detail": f"an unexpected {type(exc).__name__} occurred; the service log has the details",
        }
        return _with_version(request, JSONResponse(body, status_code=500))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route matched
            body = {"type": "not_found", "detail": f"no route {request.url.path}; see /docs"}
        elif exc.status_code == 405:
            allowed = allowed_methods(request)
            detail = f"{request.method} is not allowed on {request.url.path}; it allows {', '.join(allowed)}"
            body = {"type": "method_not_allowed", "detail": detail}
            headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
            return _with_version(request, JSONResponse(body, status_code=405, headers=headers))
        else:
            body = {"type": "not_found" if exc.status_code == 404 else "http_error", "detail": str(exc.detail)}
        return _with_version(request, JSONResponse(body, status_code=exc.status_code, headers=exc.headers))


_ALLOWABLE = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app serves at ``request``'s path (Starlette's 405 names only those of the
    first route matching the path, so ``GET /v1/predict`` would hide ``POST /v1/predict``)."""
    scope = request.scope
    routes = request.app.router.routes
    return [m for m in _ALLOWABLE if any(r.matches({**scope, "method": m})[0] == Match.FULL for r in routes)]


def show_details(request: Request) -> bool:
    """Whether ``request`` may see readiness details: it carries ``Authorization: Bearer $CHORUS_STATUS_TOKEN``.

    Without the header the public answer is given; with a wrong token, or any token where none is configured,
    401. Without a configured token details are never shown (they name internal URLs and artifact paths).
    """
    given = request.headers.get("authorization")
    if given is None:
        return False
    token = request.app.state.settings.status_token
    if token is None:
        raise Unauthorized(
            "no status token is configured on this process, so its /readyz shows no details: set "
            "CHORUS_STATUS_TOKEN on it (the gateway and both services), or send no Authorization header for the "
            "public answer"
        )
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.get_secret_value().encode()):
        raise Unauthorized(
            "a wrong status token: send Authorization: Bearer $CHORUS_STATUS_TOKEN, "
            "or no Authorization header for the public answer"
        )
    return True


def install_http_middleware(app: FastAPI, settings: HttpSettings) -> None:
    """The outermost middleware of every Chorus app, added last: request metrics, then the limits; and every
    route's documented answers gain the refusals of the limits (:func:`document_refusals`)."""
    app.add_middleware(Limits, max_body_bytes=settings.max_body_bytes, max_in_flight=settings.max_in_flight)
    app.add_middleware(RequestMetrics)
    document_refusals(app)


#: What every route may be refused with before it runs, by the HTTP parser (408, 414, 431) or the limits (413).
REFUSALS: tuple[type[ChorusError], ...] = (RequestTimeout, PayloadTooLarge, UriTooLong, HeadersTooLarge)
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def document_refusals(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document list the answers of the HTTP layer on every operation: 408, 413, 414 and
    431, and 503 ``overloaded`` wherever a request may be shed (beside what the route documents for 503 itself,
    as ``anyOf``). The refusals come before any route runs, so they are added to the generated document (FastAPI's
    documented way to extend it) rather than declared on each route."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_refusals(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_refusals(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for error in (*REFUSALS, Overloaded):
        model = error_model(error)
        schemas.setdefault(model.__name__, model.model_json_schema(ref_template="#/components/schemas/{model}"))
    for path, operations in doc.get("paths", {}).items():
        refusals = REFUSALS if path in NEVER_SHED else (*REFUSALS, Overloaded)
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for error in refusals:
                _add_response(responses, error)
    return doc


def _add_response(responses: dict[str, Any], error: type[ChorusError]) -> None:
    """``error``'s model as an answer of its status: the only one, or one more of the ``anyOf``."""
    ref = {"$ref": f"#/components/schemas/{error_model(error).__name__}"}
    text = summary(error)
    own = responses.get(str(error.status_code))
    if own is None:
        responses[str(error.status_code)] = {"description": text, "content": {"application/json": {"schema": ref}}}
        return
    own["description"] = f"{own.get('description') or ''}; or {text[0].lower()}{text[1:]}".lstrip("; ")
    schema = own.get("content", {}).get("application/json", {}).get("schema")
    if not schema:  # the route documents this status with any body (or none said): it stays so
        return
    media = own["content"]["application/json"]
    if "anyOf" in schema:
        schema["anyOf"].append(ref)
    else:
        media["schema"] = {"anyOf": [schema, ref], **({"title": schema["title"]} if "title" in schema else {})}
