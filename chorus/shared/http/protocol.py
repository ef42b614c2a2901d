"""uvicorn's h11 protocol with the limits that need the HTTP parser: head size and read timeouts, errors in JSON.

Run every Chorus process with ``uvicorn ... --http chorus.shared.http.protocol:LimitedH11Protocol`` (the options are
:func:`chorus.shared.http.shell.uvicorn_options`). Against plain uvicorn it changes three things:

- A request line or header block over ``CHORUS_MAX_HEAD_BYTES`` is answered 414 (the request line is the larger
  part) or 431 (the headers are) with a JSON body; h11 stops buffering at that size. uvicorn would answer a
  ``text/plain`` 400 "Invalid HTTP request received." (h11's ``max_incomplete_event_size`` error); any other
  malformed request still gets a 400, now in JSON.
- A client must send a request's line and headers within ``CHORUS_HEAD_TIMEOUT`` seconds of its first byte (or of
  connecting), and its body within ``CHORUS_BODY_TIMEOUT`` seconds of its headers; otherwise the server answers
  408 (when it has not answered yet) and closes the connection. uvicorn has neither: a client trickling one byte
  at a time held a connection, and the buffer behind it, for as long as it liked.
- Each of these refusals counts in ``chorus_http_refused_total`` (:mod:`chorus.shared.http.metrics`).

Idle keep-alive connections are closed by uvicorn itself (``--timeout-keep-alive``, 5 s by default).
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from chorus.shared.http.limits import HttpSettings, error_body
from chorus.shared.http.metrics import HTTP_REFUSED

log = logging.getLogger("chorus.http")

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


@lru_cache(maxsize=1)
def limit_settings() -> HttpSettings:
    """This process's limits, read once from the environment."""
    return HttpSettings()


def raw_response(status: int, type_: str, detail: str) -> bytes:
    """A complete ``Connection: close`` JSON response, written without h11 (whose state may not allow one)."""
    body = error_body(type_, detail)
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        _REASONS[status],
        len(body),
    )
    return head + body


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head size and read timeouts; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limit_settings()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.IDLE:
            return  # still waiting for a head (or between requests: the keep-alive timeout applies)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _refuse(self, status: int, type_: str, detail: str) -> None:
        HTTP_REFUSED.labels(type_).inc()
        log.debug("refused a request from %s: %s", self.client, detail)
        if not self.transport.is_closing():
            self.transport.write(raw_response(status, type_, detail))
            self.transport.close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            timeout = self.limits.head_timeout
            self._refuse(408, "request_timeout", f"the request line and headers took over {timeout:g} s to arrive")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            # the application is waiting for the rest of the body: it now reads a disconnect
            cycle.disconnected = True
            cycle.message_event.set()
            detail = f"the request body took over {self.limits.body_timeout:g} s to arrive"
            self._refuse(408, "request_timeout", detail)
        else:  # answered without reading the whole body, which still trickles in
            HTTP_REFUSED.labels("request_timeout").inc()
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        data, _ = self.conn.trailing_data
        limit = self.limits.max_head_bytes
        if len(data) <= limit:
            self._refuse(400, "bad_request", "the request is not valid HTTP/1.1")
            return
        line, _, rest = data.partition(b"\n")
        if len(line) >= len(rest):
            detail = f"the URL is too long: the request line exceeds {limit} bytes (CHORUS_MAX_HEAD_BYTES)"
            self._refuse(414, "uri_too_long", detail)
        else:
            detail = f"the request headers exceed {limit} bytes in all (CHORUS_MAX_HEAD_BYTES)"
            self._refuse(431, "headers_too_large", detail)
