"""The gateway as a real process (uvicorn) over real HTTP, with fakes of its services served on loopback.

These are contract-level tests: the services are :class:`~tests.gateway.fakes.FakeService` fakes, not the real
similarity and rating services (those are exercised by the end-to-end tests).
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request

import pytest

from tests.gateway.fakes import FakeService, asgi_app
from tests.gateway.processes import chromium_missing, chromium_page, serve_in_thread, uvicorn_process

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def system():
    """Two fakes on loopback and a gateway process pointed at them (in-process LRU cache)."""
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    with contextlib.ExitStack() as stack:
        sim_url = stack.enter_context(serve_in_thread(asgi_app(sim)))
        rat_url = stack.enter_context(serve_in_thread(asgi_app(rat)))
        env = {
            "CHORUS_SIMILARITY_URL": sim_url,
            "CHORUS_RATING_URL": rat_url,
            "CHORUS_READ_TIMEOUT": "0.5",
            "REDIS_URL": "",
        }
        gateway = stack.enter_context(uvicorn_process("chorus.services.gateway.app:create_app", env))
        yield gateway, sim, rat


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_process_answers_caches_and_reports(system):
    gateway, sim, _ = system
    status, headers, body = fetch(f"{gateway}/v1/items/B001/similar?k=2")
    assert status == 200 and headers["x-cache"] == "miss" and headers["x-model-version"] == "s1"
    status, headers, again = fetch(f"{gateway}/v1/items/B001/similar?k=2")
    assert headers["x-cache"] == "hit" and again == body
    status, _, ready = fetch(f"{gateway}/readyz")
    assert status == 200 and json.loads(ready)["cache"] == {"status": "ok"}


def test_a_real_read_timeout_is_a_504(system):
    gateway, sim, _ = system
    sim.delay = 1.0  # longer than CHORUS_READ_TIMEOUT
    try:
        status, _, body = fetch(f"{gateway}/v1/items/B002")
    finally:
        sim.delay = 0.0
    assert status == 504 and json.loads(body)["type"] == "upstream_timeout"


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/v1/items/%2E%2E/similar", "unknown item '..'"),  # reaches the service, not /v1/similar
        ("/v1/users/%2E/similar", "unknown user '.'"),
        ("/v1/items/a%2Fb/similar", "unknown item 'a/b': ids containing '/' are not supported"),
        ("/v1/users/U1%2Fsimilar", "unknown user 'U1/similar': ids containing '/' are not supported"),
    ],
)
def test_odd_ids_over_real_http_are_a_404_naming_the_id(system, path, detail):
    gateway, _, _ = system
    status, headers, body = fetch(gateway + path)
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"type": "not_found", "detail": detail}


@pytest.mark.browser
def test_web_page_in_headless_chromium(system):
    """Contract-level browser test: real Chromium, real gateway process, fake services."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    gateway, _, _ = system

    def go(action) -> None:
        with page.expect_navigation(wait_until="load"):
            action()

    with chromium_page() as page:
        page.goto(gateway + "/")
        assert page.locator("#popular-results > li").count() == 4  # the served data's most reviewed products
        page.fill("#q", "B001")
        go(lambda: page.press("#q", "Enter"))
        assert page.inner_text("#view-title") == "Fender Medium Picks, 12 Pack"
        cards = page.locator("#similar-results > li")
        assert cards.count() == 3 and "Leather Guitar Strap" in cards.nth(0).inner_text()
        assert "0.5000" not in page.inner_text("#similar-results")  # a bar, not a raw score
        page.click("#similar-options summary")
        page.select_option("#measure", "cosine")
        go(lambda: page.click("#similar-submit"))
        assert "Reviewed by the same people, with similar ratings" in page.inner_text("#similar-results")

        page.fill("#q", "guitar")
        go(lambda: page.click("#search-submit"))
        assert page.inner_text("#view-title") == "2 products match “guitar”"
        page.fill("#q", "purple banjo")
        go(lambda: page.click("#search-submit"))
        assert "No product matches “purple banjo”" in page.inner_text("#view-message")

        page.fill("#user-id", "U2")
        go(lambda: page.click("#user-submit"))
        assert "Because you reviewed Leather Guitar Strap" in page.inner_text("#model-results")
        assert "Because you liked Leather Guitar Strap" in page.inner_text("#because-results")
        page.fill("#user-id", "nobody")
        go(lambda: page.click("#user-submit"))
        assert (
            page.inner_text("#user-message") == "We do not know reviewer “nobody”. Here are popular products instead."
        )

        page.click("#basket-add summary")
        page.fill("#basket-items-input", "B001 NOPE")
        go(lambda: page.click("#basket-submit"))
        assert "Goes with Fender Medium Picks, 12 Pack in your basket" in page.inner_text("#basket-results")
        assert page.inner_text("#basket-note") == "Not known here, so not used: NOPE."
