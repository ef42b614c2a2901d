"""The documentation site: ``mkdocs build --strict`` builds every page of the nav, and the built site shows itself,
the API reference included, with no network (Chromium with every request but loopback cut off)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.gateway.processes import chromium_missing, chromium_page

ROOT = Path(__file__).resolve().parents[2]
# Chromium sends everything but loopback through this proxy, where nothing listens: no network for the page.
NO_NETWORK = ("--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")

pytestmark = [
    pytest.mark.timeout(360),
    pytest.mark.skipif(
        importlib.util.find_spec("mkdocs") is None, reason="the docs extra is not installed (pip install -e '.[docs]')"
    ),
]


def nav_pages(nav) -> list[str]:
    """The Markdown files of mkdocs.yml's nav, in order."""
    pages: list[str] = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out: Path = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def served(site) -> Iterator[str]:
    """The built site over HTTP on loopback."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_every_page_of_the_nav_is_built_and_the_models_page_is_the_repositorys(site):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert {"index.md", "getting-started.md", "concepts.md", "api.md", "models.md", "benchmarks.md"} <= set(pages)
    assert [p for p in pages if p.startswith("operations/")] == [
        f"operations/{name}.md" for name in ("configuration", "metrics", "logs", "artifacts", "spark", "security")
    ]
    for page in pages:
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.exists(), page
    first_heading = next(
        line for line in (ROOT / "docs" / "models.md").read_text().splitlines() if line.startswith("#")
    )
    assert first_heading.lstrip("# ").strip() in (site / "models" / "index.html").read_text()


def test_the_site_loads_nothing_from_elsewhere(site):
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        loaded = re.findall(r'<(?:script|link|img|iframe)[^>]*\b(?:src|href)="([^"]+)"', text)
        assert not [url for url in loaded if re.match(r"(https?:)?//", url)], html


def test_the_benchmarks_page_names_the_machine_once():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert text.count("2 cores (AMD EPYC), 23 GiB, Python 3.11") == 1


@pytest.mark.browser
@pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
def test_the_api_page_lists_every_operation_with_no_network(served):
    spec = json.loads((ROOT / "docs" / "openapi.json").read_text())
    expected = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    requested: list[str] = []
    with chromium_page(timeout_ms=30_000, extra_args=NO_NETWORK) as page:
        page.on("request", lambda request: requested.append(request.url))
        page.goto(served + "/api/")
        frame = page.frame_locator("iframe.swagger-ui-iframe")
        frame.locator(".opblock-summary").first.wait_for(state="attached")
        shown = frame.locator(".opblock-summary").evaluate_all(
            """els => els.map(e => [e.querySelector('.opblock-summary-method').textContent,
                                   e.querySelector('.opblock-summary-path').dataset.path])"""
        )
        page.goto(served + "/")  # the search works offline too
        page.fill("input.md-search__input", "readiness")
        # the search index is built by a web worker: minutes, not seconds, on a loaded 2-core machine
        page.wait_for_selector(".md-search-result__item", timeout=150_000)
    assert {(method, path) for method, path in shown} == expected
    assert requested and all(url.startswith(served) or url.startswith("data:") for url in requested), requested
