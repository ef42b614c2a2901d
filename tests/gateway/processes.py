"""Real processes for tests that need HTTP on loopback: the gateway under uvicorn, fakes of its services, Chromium.

Kept small and generic so the end-to-end tests (real similarity and rating services) can reuse them:
:func:`uvicorn_process` starts any ``--factory`` app in its own session and always stops it;
:func:`serve_in_thread` serves an ASGI app (e.g. a :class:`~tests.gateway.fakes.FakeService`) from this process;
:func:`chromium_page` opens a page in Debian's headless Chromium through Playwright.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from chorus.launcher import free_port
from chorus.shared.http.shell import uvicorn_options

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wait_http(url: str, seconds: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers at all (any HTTP status)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


@contextlib.contextmanager
def uvicorn_process(app: str, env: dict[str, str] | None = None, port: int | None = None) -> Iterator[str]:
    """Run ``uvicorn APP --factory`` from the repository root with the options of every Chorus process
    (:func:`~chorus.shared.http.shell.uvicorn_options`); yields its base URL; always stops it."""
    with uvicorn_popen(app, env, port) as (url, _):
        yield url


@contextlib.contextmanager
def uvicorn_popen(
    app: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`uvicorn_process`, yielding the process too (for a test that kills it); always stops it."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--factory", *uvicorn_options()]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc=proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve_in_thread(app, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread of this process; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium_missing() -> str | None:
    """Why Chromium cannot be driven here, or ``None`` when it can."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


@contextlib.contextmanager
def chromium_page(timeout_ms: int = 10_000, extra_args: tuple[str, ...] = ()):
    """A fresh page in headless Chromium (Debian's binary; Playwright never downloads a browser here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = CHROMIUM_ARGS + list(extra_args)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()
