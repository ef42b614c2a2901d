"""The gateway's API docs work with no internet: headless Chromium, every request but loopback cut off."""

from __future__ import annotations

import httpx
import pytest

from chorus.launcher import free_port
from tests.gateway.processes import chromium_missing, chromium_page, uvicorn_process

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# Chromium sends everything but loopback through this proxy, where nothing listens: no internet for the page.
NO_NETWORK = ("--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


@pytest.fixture(scope="module")
def gateway_url():
    env = {
        # the docs need no downstream service: point both at ports where nothing listens
        "CHORUS_SIMILARITY_URL": f"http://127.0.0.1:{free_port()}",
        "CHORUS_RATING_URL": f"http://127.0.0.1:{free_port()}",
        "REDIS_URL": "",
    }
    with uvicorn_process("chorus.services.gateway.app:create_app", env=env) as url:
        yield url


def test_docs_page_links_no_cdn(gateway_url):
    html = httpx.get(gateway_url + "/docs").text
    assert "cdn." not in html and "https://" not in html.replace("https://swagger.io", "")
    assert httpx.get(gateway_url + "/redoc").status_code == 200


@pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
def test_docs_list_every_operation_with_no_network(gateway_url):
    spec = httpx.get(gateway_url + "/openapi.json").json()
    expected = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert ("GET", "/v1/predict") in expected  # the spec itself is the gateway's

    requested: list[str] = []
    with chromium_page(timeout_ms=30_000, extra_args=NO_NETWORK) as page:
        page.on("request", lambda request: requested.append(request.url))
        page.goto(gateway_url + "/docs")
        page.wait_for_selector(".opblock-summary", state="attached")
        shown = page.eval_on_selector_all(
            ".opblock-summary",
            """els => els.map(e => [e.querySelector('.opblock-summary-method').textContent,
                                   e.querySelector('.opblock-summary-path').dataset.path])""",
        )
    assert {(method, path) for method, path in shown} == expected
    assert requested and all(url.startswith(gateway_url) or url.startswith("data:") for url in requested), requested
