"""Request limits every Chorus process applies: body size, requests in flight, and JSON bodies parsed off the loop.

:class:`Limits` is a plain ASGI middleware, outermost in each app, so refusing costs as little as possible:

- A request whose ``Content-Length`` exceeds ``CHORUS_MAX_BODY_BYTES`` is answered 413 before the app runs and
  before a byte of its body is read; a body sent without a length (chunked) is counted as it streams in, and the
  413 comes as soon as the count passes the limit, so no process ever holds more than the limit of one body.
- A request's body is read whole before the request takes one of the ``CHORUS_MAX_IN_FLIGHT`` places of the
  requests being served: a client that sends its body slowly holds a connection, never a place that fast clients
  need. How long a body may take, and how many may arrive at once, is the HTTP parser's part
  (:mod:`chorus.shared.http.protocol`: a minimum data rate, and a cap on connections still sending).
- At most ``CHORUS_MAX_IN_FLIGHT`` requests are served at once; one more is answered 503 with ``Retry-After`` at
  once instead of queueing behind the others (a client that waits seconds for an answer has usually given up).
  ``/healthz`` and ``/metrics`` are never shed, so probes and scrapes see a busy process as alive.

A refusal sent before the body was read closes the connection (``Connection: close``); the protocol closes it
lingering, so that the client reads the answer instead of a reset.

:class:`OffLoopRoute` is the route class of the routers with JSON bodies: a body over :data:`OFF_LOOP_BYTES` is
decoded and validated on a thread of its own, so a batch of thousands of pairs does not stall the event loop (and
``/healthz`` with it) for the tens of milliseconds that takes.

Error bodies name limits by their values, never by the settings that hold them: settings are for operators, the
README lists them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chorus.shared.contract.errors import Overloaded, PayloadTooLarge
from chorus.shared.contract.params import utf8_text
from chorus.shared.http.metrics import HTTP_REFUSED

OFF_LOOP_BYTES = 64 * 1024
"""JSON bodies larger than this are decoded and validated on a thread of their own."""
RETRY_AFTER_SECONDS = 1
"""What a shed request is told to wait before trying again."""
NEVER_SHED = frozenset({"/healthz", "/metrics"})


class HttpSettings(BaseSettings):
    """What every HTTP process of Chorus (each service and the gateway) reads from the environment (prefix
    ``CHORUS_``): its limits, and the token that shows readiness details."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_")

    max_body_bytes: int = Field(1_048_576, ge=0)
    """Largest request body accepted, in bytes (``CHORUS_MAX_BODY_BYTES``); larger: 413."""
    max_in_flight: int = Field(64, ge=1)
    """Requests served at once by one process, bodies already read (``CHORUS_MAX_IN_FLIGHT``); more: 503 with
    ``Retry-After``."""
    max_head_bytes: int = Field(65_536, ge=1024)
    """Longest request line plus headers, in bytes (``CHORUS_MAX_HEAD_BYTES``); longer: 414 or 431."""
    head_timeout: float = Field(10.0, gt=0)
    """Seconds a client has to send a request's line and headers (``CHORUS_HEAD_TIMEOUT``)."""
    body_timeout: float = Field(30.0, gt=0)
    """Seconds a client has to send a request's body once its headers are in, plus one second for every
    ``body_min_rate`` bytes of it received (``CHORUS_BODY_TIMEOUT``); later: 408."""
    body_min_rate: int = Field(1024, ge=1)
    """Bytes per second a body must average, after ``body_timeout`` seconds of grace (``CHORUS_BODY_MIN_RATE``)."""
    max_receiving: int = Field(128, ge=1)
    """Requests whose bodies are still arriving, at once (``CHORUS_MAX_RECEIVING``). When every place is taken, the
    sender furthest behind ``body_min_rate`` is dropped (408) to make room; when none is behind, the new request
    is answered 503 with ``Retry-After``."""
    status_token: SecretStr | None = None
    """Bearer token that shows the details of ``/readyz`` (``CHORUS_STATUS_TOKEN``); unset: never shown."""


def error_body(type_: str, detail: str) -> bytes:
    """The ``{"type", "detail"}`` body every Chorus error has, as bytes."""
    return json.dumps({"type": type_, "detail": detail}, separators=(",", ":")).encode()


def too_large_detail(limit: int) -> str:
    return f"the request body is larger than {limit} bytes; send fewer pairs or items per request"


def overloaded_detail(what: str) -> str:
    return f"the server is busy ({what}); retry in {RETRY_AFTER_SECONDS} s"


RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_SECONDS).encode())
CLOSE = (b"connection", b"close")


async def send_error(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or ())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's ``Content-Length`` (None when absent) and whether it has a body at all."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                pass  # h11 refuses such a request before it gets here
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked or bool(length)


class Limits:
    """ASGI middleware: body size limit, bodies read before a place is taken, and load shedding (see the module
    docstring)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_in_flight: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = scope["path"] not in NEVER_SHED
        length, has_body = _framing(scope)
        if counted and self.in_flight >= self.max_in_flight:  # at once, before any body is read
            return await self._shed(send, close=has_body)
        if length is not None and length > self.max_body_bytes:
            return await self._too_large(send)
        if has_body:
            body = await self._read_body(receive, send)
            if body is None:
                return  # refused, or the client went away (or was dropped for sending too slowly)
            receive = _replay(body, receive)
            if counted and self.in_flight >= self.max_in_flight:  # places may have filled while it arrived
                return await self._shed(send, close=False)
        if counted:
            self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                self.in_flight -= 1

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, counted as it arrives; None when it was refused (413) or the client is gone."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return None
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        HTTP_REFUSED.labels(PayloadTooLarge.type).inc()
        body = error_body(PayloadTooLarge.type, too_large_detail(self.max_body_bytes))
        await send_error(send, 413, body, [CLOSE])

    async def _shed(self, send: Send, close: bool) -> None:
        HTTP_REFUSED.labels(Overloaded.type).inc()
        body = error_body(Overloaded.type, overloaded_detail(f"{self.in_flight} requests in flight"))
        await send_error(send, 503, body, [RETRY_AFTER, CLOSE] if close else [RETRY_AFTER])


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then whatever the server sends next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chorus-json")
"""One thread for large bodies: decoding holds the GIL, so more threads would decode no faster and would take
turns with the event loop more often (each time it waits for the GIL, up to the 5 ms switch interval)."""


class _OffLoopRequest(Request):
    body_model: type[BaseModel] | None = None

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            text = utf8_text(body)
            if len(body) <= OFF_LOOP_BYTES:
                self._json = json.loads(text)
            else:
                self._json = await asyncio.get_running_loop().run_in_executor(_DECODER, _decode, body, self.body_model)
        return self._json


def _decode(body: bytes, model: type[BaseModel] | None) -> Any:
    """The body decoded and validated as ``model`` in one pass (pydantic's JSON parser, faster than json.loads
    and then validation): FastAPI then accepts the instance as it is. An invalid body is returned decoded only
    (or raises json.JSONDecodeError), for FastAPI to validate again and word the 422 as usual."""
    if model is not None:
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass
    return json.loads(body.decode("utf-8"))  # UTF-8 already checked


class OffLoopRoute(APIRoute):
    """A route whose large JSON body is decoded and validated on a thread of its own (FastAPI's documented way to
    give a route its own ``Request`` class)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        annotation = getattr(getattr(self.body_field, "field_info", None), "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        request_class = type("OffLoopRequest", (_OffLoopRequest,), {"body_model": model})

        async def off_loop_handler(request: Request) -> Response:
            return await handler(request_class(request.scope, request.receive))

        return off_loop_handler
