"""Request limits over real sockets, against a gateway process (uvicorn with Chorus's protocol and middleware).

Every refusal must be JSON ``{"type", "detail"}`` with the right status: bodies over the limit (413, told by
``Content-Length`` or counted as they stream), URLs and headers over the limit (414, 431), trickled requests
(408 and a closed connection), and requests over the concurrency limit (503 with ``Retry-After``). Slow bodies
take no place of the requests served, and a slow sender gives its place up to a new body when every place is
taken. Every refusal before the request was read whole closes lingering, so a plain client (urllib) still sending
reads the answer. The big bodies and heads are generated here; every socket has a timeout, so a regression fails
instead of hanging.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import httpx
import pytest

from tests.gateway.fakes import FakeService, asgi_app
from tests.gateway.processes import serve_in_thread, uvicorn_process

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_IN_FLIGHT = 3


@contextlib.contextmanager
def gateway_process(**settings: str):
    """A gateway process over fakes of both services, with ``settings`` in its environment; yields its URL and
    the similarity fake."""
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    with contextlib.ExitStack() as stack:
        env = {
            "CHORUS_SIMILARITY_URL": stack.enter_context(serve_in_thread(asgi_app(sim))),
            "CHORUS_RATING_URL": stack.enter_context(serve_in_thread(asgi_app(rat))),
            "REDIS_URL": "",
            **settings,
        }
        yield stack.enter_context(uvicorn_process("chorus.services.gateway.app:create_app", env)), sim


@pytest.fixture(scope="module")
def gateway():
    """A gateway process with short read timeouts and a small concurrency limit; its similarity fake can be
    made slow (``sim.delay``) to keep requests in flight."""
    with gateway_process(
        CHORUS_READ_TIMEOUT="10",
        CHORUS_HEAD_TIMEOUT=str(HEAD_TIMEOUT),
        CHORUS_BODY_TIMEOUT=str(BODY_TIMEOUT),
        CHORUS_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
    ) as (url, sim):
        yield url, sim


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def exchange(url: str, data: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    with socket.create_connection(address(url), timeout=10) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all; the answer is still there to read
        status, headers, body = read_response(sock)
        return status, headers, json.loads(body)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(gateway):
    url, _ = gateway
    head = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % (50 * MiB)
    status, headers, body = exchange(url, head)  # not one byte of the 50 MiB
    assert status == 413 and body["type"] == "payload_too_large"
    assert "1048576 bytes" in body["detail"] and headers["connection"] == "close"
    assert "CHORUS_" not in body["detail"]  # a limit is named by its value, never by the setting


def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit(gateway):
    url, _ = gateway
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(64 * MiB // len(chunk)):  # up to 64 MiB; the server stops us well before
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                sock.settimeout(0.0)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break  # an answer is waiting
                except BlockingIOError:
                    pass
                finally:
                    sock.settimeout(10)
        status, headers, body = read_response(sock)
    assert status == 413 and json.loads(body)["type"] == "payload_too_large"
    # refused while streaming, not after reading everything (what was sent includes both ends' socket buffers,
    # several MiB on loopback)
    assert sent < 24 * MiB


def test_an_allowed_body_still_works(gateway):
    url, _ = gateway
    pairs = [{"user_id": "U1", "item_id": "B001"}] * 1000
    r = httpx.post(url + "/v1/predict", json={"pairs": pairs}, timeout=10)
    assert r.status_code == 200 and r.json()["count"] == 1000


def test_an_overlong_url_is_a_json_414(gateway):
    url, _ = gateway
    status, headers, body = exchange(url, b"GET /v1/items?q=" + b"a" * MiB + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 414 and body["type"] == "uri_too_long" and headers["content-type"] == "application/json"
    assert "65536 bytes" in body["detail"]


def test_overlong_headers_are_a_json_431(gateway):
    url, _ = gateway
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * MiB + b"\r\n\r\n"
    status, _, body = exchange(url, request)
    assert status == 431 and body["type"] == "headers_too_large"
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(2000))
    status, _, body = exchange(url, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert status == 431


def test_a_malformed_request_is_a_json_400(gateway):
    url, _ = gateway
    status, _, body = exchange(url, b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
    assert status == 400 and body["type"] == "bad_request"


def test_a_trickled_head_is_dropped(gateway):
    url, _ = gateway
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
    with socket.create_connection(address(url), timeout=10) as sock:
        took, answer = trickle_on(sock, request, pause=0.1, limit=15)
    assert answer.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answer
    assert took < 10  # 1 s allowed; without the limit it would have trickled for 20 s


def test_a_trickled_body_is_dropped(gateway):
    url, _ = gateway
    body = json.dumps({"pairs": [{"user_id": "U1", "item_id": "B001"}] * 20}).encode()
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        took, answer = trickle_on(sock, body, pause=0.1, limit=15)
    assert answer.startswith(b"HTTP/1.1 408") and b"request body" in answer
    assert took < 10


def trickle_on(sock: socket.socket, data: bytes, pause: float, limit: float) -> tuple[float, bytes]:
    """Send ``data`` one byte every ``pause`` seconds until the server answers or closes; return when that
    happened (seconds from the first byte) and what it sent."""
    start = time.monotonic()
    for i in range(len(data)):
        try:
            sock.sendall(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        sock.settimeout(pause)
        try:
            answer = sock.recv(65536)
            with contextlib.suppress(TimeoutError):
                while chunk := sock.recv(65536):
                    answer += chunk
            return time.monotonic() - start, answer
        except TimeoutError:
            pass
        if time.monotonic() - start > limit:
            break
    return time.monotonic() - start, b""


def test_an_idle_connection_is_closed(gateway):
    url, _ = gateway
    with socket.create_connection(address(url), timeout=10) as sock:
        answer = sock.recv(65536)  # nothing sent at all
        assert answer.startswith(b"HTTP/1.1 408")
        assert closed_by_server(sock)


def test_requests_over_the_concurrency_limit_are_shed_at_once_with_retry_after(gateway):
    url, sim = gateway
    sim.delay = 3.0  # long enough for all twelve to arrive while the first ones wait, even on a busy machine
    try:
        with (
            httpx.Client(limits=httpx.Limits(max_connections=16), timeout=15) as http,
            concurrent.futures.ThreadPoolExecutor(12) as pool,
        ):

            def fresh_item(i: int) -> tuple[float, httpx.Response]:
                r = http.get(f"{url}/v1/items/B00{i % 3 + 1}", headers={"Cache-Control": "no-cache"})
                return time.monotonic(), r

            results = list(pool.map(fresh_item, range(12)))
            health = http.get(url + "/healthz")  # never shed
    finally:
        sim.delay = 0.0
    shed = [(end, r) for end, r in results if r.status_code == 503]
    served = [(end, r) for end, r in results if r.status_code == 200]
    assert served and len(shed) >= 12 - 2 * MAX_IN_FLIGHT  # slack: some may come after the first ones finished
    for _, r in shed:
        assert r.json()["type"] == "overloaded" and r.headers["retry-after"] == "1"
        assert "CHORUS_" not in r.text
    # answered at once, while the admitted ones still wait for the slow service: not queued behind them
    assert max(end for end, _ in shed) < min(end for end, _ in served)
    assert health.status_code == 200
    metrics = httpx.get(url + "/metrics", timeout=5).text
    assert 'chorus_http_refused_total{reason="overloaded"}' in metrics


@pytest.mark.parametrize("service", ["similarity", "rating"])
def test_each_model_service_has_the_same_limits_and_hides_its_paths(service, tmp_path):
    env = {"CHORUS_ARTIFACTS": str(tmp_path / "no-artifacts-yet"), "CHORUS_MAX_BODY_BYTES": "1000"}
    with uvicorn_process(f"chorus.services.{service}.app:create_app", env) as url:
        status, _, body = exchange(url, b"GET /v1/items?q=" + b"a" * MiB + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status == 414 and body["type"] == "uri_too_long"
        post = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1001\r\n\r\n"
        status, _, body = exchange(url, post)
        assert status == 413 and "1000 bytes" in body["detail"]
        ready = httpx.get(url + "/readyz", timeout=5)
        body = ready.json()
        assert ready.status_code == 503
        assert {k: body[k] for k in ("status", "version", "fallback")} == {
            "status": "not_ready",
            "version": None,
            "fallback": False,
        }
        assert set(body) - {"status", "version", "fallback"} <= {"events"}  # a dependency's state, no details
        assert "no-artifacts-yet" not in ready.text
        assert "chorus_http_refused_total" in httpx.get(url + "/metrics", timeout=5).text


PREDICT_HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
PAIRS = json.dumps({"pairs": [{"user_id": "U1", "item_id": "B001"}]}).encode()


def slow_sender(url: str, announced: int = 1000, first: bytes = b" ") -> socket.socket:
    """A connection that sent a POST head announcing ``announced`` body bytes, then ``first`` of them."""
    sock = socket.create_connection(address(url), timeout=10)
    sock.sendall(PREDICT_HEAD % announced + first)
    return sock


def test_slow_bodies_take_no_place_of_the_requests_served(gateway):
    url, _ = gateway
    senders = [slow_sender(url) for _ in range(2 * MAX_IN_FLIGHT)]  # twice the places of requests served
    try:
        time.sleep(0.2)  # every head is in
        with httpx.Client(timeout=10) as http:
            for item in ("B001", "B002", "B003", "B001"):
                r = http.get(f"{url}/v1/items/{item}", headers={"Cache-Control": "no-cache"})
                assert r.status_code == 200, r.text
            r = http.post(url + "/v1/predict", content=PAIRS, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text  # a body that arrives at once is served too
        # the slow ones are dropped once their time is up (CHORUS_BODY_TIMEOUT plus 1 s per 1024 bytes)
        for sock in senders:
            status, _, body = read_response(sock)
            assert status == 408 and json.loads(body)["type"] == "request_timeout"
            assert b"arrived too slowly" in body
    finally:
        for sock in senders:
            sock.close()


@pytest.fixture(scope="module")
def two_bodies():
    """A gateway that lets two bodies arrive at once, at a minimum rate of 1 byte per second after 30 s."""
    with gateway_process(CHORUS_MAX_RECEIVING="2", CHORUS_BODY_MIN_RATE="1", CHORUS_BODY_TIMEOUT="30") as (url, _):
        yield url


def post_in_two_parts(url: str) -> tuple[int, dict[str, Any]]:
    """A POST whose head and body arrive apart, so that the body takes a place among those arriving."""
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(PREDICT_HEAD % len(PAIRS))
        time.sleep(0.3)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(PAIRS)
        status, _, body = read_response(sock)
        return status, json.loads(body)


def test_when_every_place_is_taken_a_sender_behind_the_rate_gives_way(two_bodies):
    url = two_bodies
    behind = [slow_sender(url) for _ in range(2)]  # one byte each: behind 1 byte/s after a second
    try:
        time.sleep(2.5)
        status, body = post_in_two_parts(url)
        assert status == 200 and body["count"] == 1
        answers = []
        for sock in behind:
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                answers.append(read_response(sock))
        assert len(answers) == 1  # one gave its place up; the other still has its own
        status, _, dropped = answers[0]
        assert status == 408 and b"while other requests waited" in dropped
    finally:
        for sock in behind:
            sock.close()


def test_when_no_sender_is_behind_the_rate_a_new_body_is_refused_at_once(two_bodies):
    url = two_bodies
    ahead = [slow_sender(url, announced=100_000, first=b" " * 1000) for _ in range(2)]  # 1000 s ahead of 1 byte/s
    try:
        time.sleep(0.3)
        status, body = post_in_two_parts(url)
        assert status == 503 and body["type"] == "overloaded" and "CHORUS_" not in body["detail"]
    finally:
        for sock in ahead:
            sock.close()
    time.sleep(0.3)  # their places are free again
    assert post_in_two_parts(url)[0] == 200


def test_plain_urllib_reads_every_early_refusal(gateway):
    """A client that sends all of its request before it reads (urllib) reads the refusal instead of a reset:
    413 for a body over the limit, 414 and 431 for a head over it."""
    url, _ = gateway
    big = urllib.request.Request(
        url + "/v1/predict", data=b"x" * (4 * MiB), headers={"Content-Type": "application/json"}, method="POST"
    )
    long_url = urllib.request.Request(url + "/v1/items?q=" + "a" * MiB)
    big_header = urllib.request.Request(url + "/healthz", headers={"X-Big": "b" * MiB})
    for request, status, type_ in [(big, 413, "payload_too_large")] * 10 + [
        (long_url, 414, "uri_too_long"),
        (big_header, 431, "headers_too_large"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == status and json.loads(refused.value.read())["type"] == type_


def test_a_refusal_half_closes_and_reads_what_still_comes(gateway):
    """RFC 9112 section 9.6: after a 413 the server sends FIN, not RST, and drains the rest of the body."""
    url, _ = gateway
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(PREDICT_HEAD % (3 * MiB))
        status, headers, body = read_response(sock)
        assert status == 413 and headers["connection"] == "close"
        sock.sendall(b"x" * (3 * MiB))  # the body it never wanted: taken in, never reset
        assert sock.recv(1) == b""  # then the end of its side
