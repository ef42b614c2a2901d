"""`chorus up` as a user runs it: trains on first start, serves, and stops every child on SIGTERM and Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from chorus.launcher import free_port
from chorus.shared.artifacts import read_current
from chorus.shared.data.synthetic import generate_reviews
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_up_trains_serves_and_stops_every_child(tmp_path, stop_signal):
    data = generate_reviews(tmp_path / "reviews.tsv", 3000, seed=4, progress=False)
    artifacts = tmp_path / "artifacts"
    ports = [free_port() for _ in range(3)]
    cmd = [
        sys.executable,
        "-m",
        "chorus.cli",
        "up",
        "--artifacts",
        str(artifacts),
        "--data",
        str(data),
        "--port",
        str(ports[0]),
        "--similarity-port",
        str(ports[1]),
        "--rating-port",
        str(ports[2]),
        "--log-dir",
        str(tmp_path / "logs"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "REDIS_URL": ""}
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any("Ctrl-C stops every service" in ln for ln in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(proc.stdout.readline())
        out = "".join(lines)
        assert read_current(artifacts) is not None  # it trained first, on --data
        assert f"http://127.0.0.1:{ports[0]}/docs" in out and "in-process LRU" in out
        r = httpx.get(f"http://127.0.0.1:{ports[0]}/readyz", timeout=5)
        assert r.status_code == 200
        assert all(port_open(p) for p in ports)

        proc.send_signal(stop_signal)
        time.sleep(0.05)
        proc.send_signal(stop_signal)  # impatient users press Ctrl-C twice: the children must still be stopped
        assert proc.wait(30) == 0
        wait_for(lambda: not any(port_open(p) for p in ports), 15, "a child service is still listening")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
