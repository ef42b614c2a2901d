"""The compose stack, started from the images ``deploy/images.sh`` built, as a compose project of its own.

One stack per test module: a free gateway port, small generated data for its trainer, healthchecks every second,
and ``docker-compose down -v`` at the end whatever happened (its logs are kept in the test's temporary folder).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest

from chorus.launcher import free_port
from chorus.shared.data import load_ratings
from chorus.shared.data.synthetic import generate_reviews
from tests.conftest import REPO, busiest

IMAGES_ENV = REPO / "deploy" / "images.env"
API_KEY = "containers-test-key"
"""The key of the stack's event routes (CHORUS_API_KEYS)."""


def unavailable(reason: str):
    """Skip, except under CI (``CI`` set), where a container test that cannot run is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def images_env() -> dict[str, str]:
    """The variables deploy/images.sh wrote (base images and tag), or a skip saying how to build them."""
    if shutil.which("docker-compose") is None or shutil.which("docker") is None:
        unavailable("docker and docker-compose are not installed (.ci/run installs them)")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        unavailable("no Docker engine answers (start dockerd; .ci/run does)")
    if not IMAGES_ENV.exists():
        unavailable("no images: run bash deploy/images.sh first")
    pairs = (line.split("=", 1) for line in IMAGES_ENV.read_text().splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


class Stack:
    """A running compose project; :meth:`compose` runs docker-compose against it."""

    def __init__(self, project: str, env: dict[str, str], port: int, data):
        self.project, self.env, self.port, self.data = project, env, port, data
        self.url = f"http://127.0.0.1:{port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker-compose", "-p", self.project, "-f", str(REPO / "docker-compose.yml"), *args]
        proc = subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def docker(self, *args: str) -> str:
        proc: subprocess.CompletedProcess[str] = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=60, env=self.env
        )
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)

    def with_key(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A request to an event route, with the stack's API key."""
        headers = {"Authorization": f"Bearer {API_KEY}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def wait_ready(self, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.url + "/readyz", timeout=3)
                if r.status_code == 200:
                    return cast(dict[str, Any], r.json())
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise AssertionError(f"the stack's gateway was not ready within {timeout:.0f} s: {last}")


class Data:
    """The generated reviews the stack trains on, and ids worth asking about."""

    def __init__(self, path: Path):
        ratings = load_ratings(path, progress=False)
        self.user = busiest(ratings.user_ids, ratings.user)
        counts = np.bincount(ratings.user, minlength=len(ratings.user_ids))
        counts[ratings.user_ids.tolist().index(self.user)] = -1
        self.other_user = str(ratings.user_ids[int(np.argmax(counts))])  # the second busiest: the one forgotten
        self.item = busiest(ratings.item_ids, ratings.item)
        self.word = str(ratings.titles[ratings.item_ids.tolist().index(self.item)]).split()[0]


@pytest.fixture(scope="module")
def stack(request):
    env_images = images_env()
    # world-readable: the trainer runs as an unprivileged user; pytest's own temporary folders are private
    data_dir = Path(tempfile.mkdtemp(prefix="chorus-containers-"))
    data_dir.chmod(0o755)
    path = generate_reviews(data_dir / "reviews.tsv.gz", 20_000, seed=7, progress=False)
    path.chmod(0o644)
    project = f"chorustest{secrets.token_hex(3)}"
    port = free_port()
    env = {
        **os.environ,
        **env_images,
        "CHORUS_PORT": str(port),
        "CHORUS_DATA_DIR": str(data_dir),
        "CHORUS_TRAIN_DATA": "/input/reviews.tsv.gz",
        "CHORUS_RELOAD_INTERVAL": "1",
        "CHORUS_HEALTHCHECK_INTERVAL": "1s",
        "CHORUS_API_KEYS": API_KEY,
    }
    env.pop("CHORUS_RETRAIN", None)
    stack = Stack(project, env, port, Data(path))
    logs = Path(tempfile.gettempdir()) / f"{project}.log"
    try:
        stack.compose("up", "-d", "--no-build", timeout=600)
        stack.wait_ready()
        yield stack
    finally:
        try:
            logs.write_text(stack.compose("logs", "--no-color", check=False, timeout=120).stdout)
            print(f"\ncompose logs of {project}: {logs}")
        finally:
            stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
            shutil.rmtree(data_dir, ignore_errors=True)
