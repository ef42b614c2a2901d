"""uvicorn's h11 protocol with the limits that need the HTTP parser: head size, read timeouts, a minimum body rate,
a cap on bodies arriving at once, lingering closes, errors in JSON.

Run every Chorus process with ``uvicorn ... --http chorus.shared.http.protocol:LimitedH11Protocol`` (the options are
:func:`chorus.shared.http.shell.uvicorn_options`). Against plain uvicorn it changes these things:

- A request line or header block over ``CHORUS_MAX_HEAD_BYTES`` is answered 414 (the request line is the larger
  part) or 431 (the headers are) with a JSON body; h11 stops buffering at that size. uvicorn would answer a
  ``text/plain`` 400 "Invalid HTTP request received." (h11's ``max_incomplete_event_size`` error); any other
  malformed request still gets a 400, now in JSON.
- A client must send a request's line and headers within ``CHORUS_HEAD_TIMEOUT`` seconds of its first byte (or of
  connecting). Its body must arrive within ``CHORUS_BODY_TIMEOUT`` seconds of its headers plus one second for
  every ``CHORUS_BODY_MIN_RATE`` bytes received, as Apache's ``mod_reqtimeout`` (``body=30,MinRate=1024``) allows:
  a body may start slowly, but must then average the minimum rate. Otherwise the server answers 408 (when it has
  not answered yet) and closes the connection. uvicorn has neither: a client trickling one byte at a time held a
  connection, and the buffer behind it, for as long as it liked.
- At most ``CHORUS_MAX_RECEIVING`` requests of a process may be sending their bodies at once (a body that arrives
  with its headers never counts). A request that would be one more takes the place of the sender furthest
  behind the minimum rate, which is answered 408; when no sender is behind, the new request is answered 503 with
  ``Retry-After``. So slow senders cannot keep fast ones out: a sender that keeps the rate is never dropped, and
  one that does not loses its place to the next request that needs one. The requests being served are counted
  apart, once their bodies are in (:class:`chorus.shared.http.limits.Limits`).
- Every close that follows an answer is a lingering close (RFC 9112, section 9.6): the server half-closes (FIN)
  after its answer and reads and discards what the client still sends, until the client closes, nothing arrived
  for :data:`LINGER_IDLE_SECONDS`, or :data:`LINGER_SECONDS` passed (asyncio closes the connection when the
  client's FIN arrives). Closing at once with unread bytes makes the
  kernel send a reset, and a client still sending a refused body (413, 414, 431, 408) then loses the answer
  before it reads it (Python's ``urllib`` does, while ``curl`` and ``httpx`` happen to read it first).
- Each refusal counts in ``chorus_http_refused_total`` (:mod:`chorus.shared.http.metrics`).

Idle keep-alive connections are closed by uvicorn itself (``--timeout-keep-alive``, 5 s by default), at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import lru_cache
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from chorus.shared.contract.errors import (
    BadRequest,
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    UriTooLong,
)
from chorus.shared.http.limits import CLOSE, RETRY_AFTER, HttpSettings, error_body, overloaded_detail
from chorus.shared.http.metrics import HTTP_REFUSED

log = logging.getLogger("chorus.http")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}

LINGER_SECONDS = 5.0
"""Longest lingering close (nginx's ``lingering_time`` is 30 s; a refused body of 1 MiB needs far less)."""
LINGER_IDLE_SECONDS = 2.0
"""A lingering close ends when nothing arrived for this long (Apache's lingering read timeout)."""


@lru_cache(maxsize=1)
def limit_settings() -> HttpSettings:
    """This process's limits, read once from the environment."""
    return HttpSettings()


def raw_response(status: int, type_: str, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A complete ``Connection: close`` JSON response, written without h11 (whose state may not allow one)."""
    body = error_body(type_, detail)
    head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), CLOSE, *headers]
    lines = b"".join(b"%s: %s\r\n" % pair for pair in head)
    return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, _REASONS[status], lines, body)


class _Transport:
    """The connection's transport as uvicorn sees it: the same, except that ``close`` closes lingering."""

    def __init__(self, transport: asyncio.Transport, protocol: LimitedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_lingering()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head size, read timeouts, a minimum body rate, a cap on bodies arriving at once
    and lingering closes; see the module docstring."""

    receiving: ClassVar[set[LimitedH11Protocol]] = set()
    """The connections of this process whose request bodies are still arriving."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limit_settings()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        self.raw: asyncio.Transport | None = None
        self.lingering = False
        self._lost = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_start: float | None = None  # loop time when the headers of a request with a body were in
        self._body_bytes = 0
        self._linger_timer: asyncio.TimerHandle | None = None
        self._linger_until = 0.0
        self._last_read = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.raw = transport
        super().connection_made(_Transport(transport, self))  # type: ignore[arg-type]
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._end_body()
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:  # the answer is out: what still arrives is read and dropped
            self._last_read = self.loop.time()
            return
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)
        if self._body_start is not None:
            self._body_bytes += len(data)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.lingering:
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            return  # still waiting for a head (or between requests: the keep-alive timeout applies)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if state is h11.SEND_BODY:
            if self._body_start is None:
                self._start_body()
        else:
            self._end_body()

    # bodies: a minimum rate, and a cap on how many arrive at once

    def _start_body(self) -> None:
        """The headers of a request whose body has not arrived with them are in: take a place among the bodies
        arriving (making room, or refusing), and start the clock of the minimum rate."""
        now = self.loop.time()
        peers = LimitedH11Protocol.receiving
        if len(peers) >= self.limits.max_receiving:
            slowest = max(peers, key=lambda p: p.behind(now))
            if slowest.behind(now) > 0:
                slowest._drop_body(408, RequestTimeout.type, slowest._slow_detail(now, "while other requests waited"))
            else:
                self._drop_body(503, Overloaded.type, overloaded_detail("too many request bodies arriving at once"))
                return
        # the part of the body that came with the head is in the cycle's buffer already
        self._body_start, self._body_bytes = now, len(self.cycle.body) if self.cycle is not None else 0
        peers.add(self)
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_check)

    def _end_body(self) -> None:
        LimitedH11Protocol.receiving.discard(self)
        self._body_start = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def behind(self, now: float) -> float:
        """Bytes this body is short of the minimum rate since its headers (negative: ahead of it)."""
        start = now if self._body_start is None else self._body_start
        return self.limits.body_min_rate * (now - start) - self._body_bytes

    def _deadline(self) -> float:
        assert self._body_start is not None
        return self._body_start + self.limits.body_timeout + self._body_bytes / self.limits.body_min_rate

    def _body_check(self) -> None:
        """The body's deadline as it stood when this was scheduled: check it again with the bytes received since."""
        self._body_timer = None
        if self._body_start is None or self.conn.their_state is not h11.SEND_BODY:
            return
        now = self.loop.time()
        deadline = self._deadline()
        if now < deadline:
            self._body_timer = self.loop.call_later(deadline - now, self._body_check)
            return
        self._drop_body(408, RequestTimeout.type, self._slow_detail(now, ""))

    def _slow_detail(self, now: float, context: str) -> str:
        elapsed = now - (self._body_start or now)
        limits = self.limits
        return (
            f"the request body arrived too slowly ({self._body_bytes} bytes in {elapsed:.0f} s{' ' if context else ''}"
            f"{context}; a body may take {limits.body_timeout:g} s plus 1 s per {limits.body_min_rate} bytes)"
        )

    def _drop_body(self, status: int, type_: str, detail: str) -> None:
        """Refuse the request whose body is arriving; the application, if it is reading the body, reads a
        disconnect. After an answer already sent, the connection is only closed."""
        self._end_body()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if cycle is not None and cycle.response_started:  # answered without reading the whole body
            HTTP_REFUSED.labels(type_).inc()
            self.close_lingering()
            return
        headers = (RETRY_AFTER,) if status == 503 else ()
        self._refuse(status, type_, detail, headers)

    # refusals and lingering closes

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _refuse(self, status: int, type_: str, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        HTTP_REFUSED.labels(type_).inc()
        log.debug("refused a request from %s: %s", self.client, detail)
        if not self.transport.is_closing():
            self.transport.write(raw_response(status, type_, detail, headers))
            self.close_lingering()

    def close_lingering(self) -> None:
        """Half-close after the answer, then read and drop what the client still sends, for a bounded time
        (see the module docstring); a connection already lost or half-closed is closed at once."""
        raw = self.raw
        if raw is None or self.lingering or raw.is_closing():
            return
        self._end_body()
        self._cancel_timers()
        self._unset_keepalive_if_required()
        if self._lost or not raw.can_write_eof():
            raw.close()
            return
        self.lingering = True
        raw.write_eof()  # after what is buffered: the answer goes out first, then the FIN
        raw.resume_reading()  # uvicorn's flow control may have paused it
        now = self.loop.time()
        self._last_read, self._linger_until = now, now + LINGER_SECONDS
        self._linger_timer = self.loop.call_later(LINGER_IDLE_SECONDS, self._linger_check)

    def _linger_check(self) -> None:
        self._linger_timer = None
        now = self.loop.time()
        due = min(self._last_read + LINGER_IDLE_SECONDS, self._linger_until)
        if now < due and self.raw is not None and not self.raw.is_closing():
            self._linger_timer = self.loop.call_later(due - now, self._linger_check)
        elif self.raw is not None:
            self.raw.close()

    def timeout_keep_alive_handler(self) -> None:
        """An idle keep-alive connection: nothing is on its way, so it closes at once."""
        if self.raw is not None and not self.raw.is_closing() and not self.lingering:
            self.conn.send(h11.ConnectionClosed())
            self.raw.close()

    def shutdown(self) -> None:
        """The server stops: a connection between requests (or lingering) closes at once, one serving a request
        after its answer."""
        if self.cycle is None or self.cycle.response_complete or self.lingering:
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            if self.raw is not None:
                self.raw.close()
        else:
            self.cycle.keep_alive = False

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            timeout = self.limits.head_timeout
            self._refuse(408, RequestTimeout.type, f"the request line and headers took over {timeout:g} s to arrive")

    def send_400_response(self, msg: str) -> None:
        data, _ = self.conn.trailing_data
        limit = self.limits.max_head_bytes
        if len(data) <= limit:
            self._refuse(400, BadRequest.type, "the request is not valid HTTP/1.1")
            return
        line, _, rest = data.partition(b"\n")
        if len(line) >= len(rest):
            self._refuse(414, UriTooLong.type, f"the URL is too long: the request line exceeds {limit} bytes")
        else:
            self._refuse(431, HeadersTooLarge.type, f"the request headers exceed {limit} bytes in all")
