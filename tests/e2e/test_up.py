"""`chorus up` as a user runs it: trains on first start (and again on other data), serves, restarts a service
that dies, and stops every child on SIGTERM and Ctrl-C, and even when the launcher itself is SIGKILLed."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from chorus.launcher import ensure_trained, free_port
from chorus.shared.artifacts import ArtifactStore, read_current
from chorus.shared.contract.errors import ChorusError
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


class Up:
    """``chorus up`` as a child process, its output collected line by line in a thread."""

    def __init__(self, tmp_path, data, artifacts, extra=(), env=None):
        self.ports = [free_port() for _ in range(3)]
        cmd = [sys.executable, "-m", "chorus.cli", "up", "--artifacts", str(artifacts), "--data", str(data)]
        cmd += ["--port", str(self.ports[0]), "--similarity-port", str(self.ports[1])]
        cmd += ["--rating-port", str(self.ports[2]), "--log-dir", str(tmp_path / "logs"), *extra]
        env = {**os.environ, "REDIS_URL": "", **(env or {})}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None  # stdout=PIPE
        threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.ports[0]}"

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 120) -> None:
        wait_for(lambda: text in self.out or self.proc.poll() is not None, timeout, f"no {text!r} in: {self.out}")
        assert text in self.out, self.out

    def child(self, service: str) -> int:
        """The pid of the launcher's child that runs ``service``."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and f"chorus.services.{service}.app" in cmdline:
                return int(stat.parent.name)
        raise AssertionError(f"no {service} child of {self.proc.pid}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def up_process(tmp_path):
    ups: list[Up] = []

    def start(data=None, artifacts=None, extra=(), env=None) -> Up:
        data = data or tmp_path / "reviews.tsv"
        if not Path(data).exists():
            generate_reviews(data, 3000, seed=4, progress=False)
        ups.append(Up(tmp_path, data, artifacts or tmp_path / "artifacts", extra, env))
        return ups[-1]

    yield start
    for up in ups:
        up.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_up_trains_serves_and_stops_every_child(tmp_path, up_process, stop_signal):
    up = up_process()
    up.wait_for_line("Ctrl-C stops every service")
    assert read_current(tmp_path / "artifacts") is not None  # it trained first, on --data
    assert f"{up.url}/docs" in up.out and "in-process LRU" in up.out
    r = httpx.get(f"{up.url}/readyz", timeout=5)
    assert r.status_code == 200
    assert all(port_open(p) for p in up.ports)

    up.proc.send_signal(stop_signal)
    time.sleep(0.05)
    up.proc.send_signal(stop_signal)  # impatient users press Ctrl-C twice: the children must still be stopped
    assert up.proc.wait(30) == 0
    wait_for(lambda: not any(port_open(p) for p in up.ports), 15, "a child service is still listening")


def test_a_dead_service_is_restarted_with_backoff_while_the_others_serve(up_process):
    up = up_process()
    up.wait_for_line("Ctrl-C stops every service")
    gateway = up.child("gateway")
    no_cache = {"Cache-Control": "no-cache"}
    predict = f"{up.url}/v1/predict?user_id=nobody&item_id=nothing"

    os.kill(up.child("rating"), signal.SIGKILL)
    killed = time.monotonic()
    while (r := httpx.get(predict, headers=no_cache, timeout=5)).status_code != 503:
        assert time.monotonic() - killed < 2, f"rating routes still answer {r.status_code} after 2 s"
        time.sleep(0.05)
    assert set(r.json()) >= {"type", "detail"} and "rating" in r.json()["detail"]
    assert httpx.get(f"{up.url}/v1/stats", headers=no_cache, timeout=5).status_code == 200  # similarity serves on
    up.wait_for_line("the rating service exited with code -9", timeout=5)
    assert "restarting it in 1 s" in up.out

    # back after about a second, with the gateway untouched; a second death right away waits 2 s
    wait_for(lambda: httpx.get(predict, headers=no_cache, timeout=5).status_code != 503, 30, "rating not back")
    assert up.child("gateway") == gateway and up.proc.poll() is None
    os.kill(up.child("rating"), signal.SIGKILL)
    up.wait_for_line("restarting it in 2 s", timeout=10)
    wait_for(lambda: httpx.get(predict, headers=no_cache, timeout=5).status_code != 503, 30, "rating not back")
    assert httpx.get(predict, headers=no_cache, timeout=5).json().get("type") != "upstream_unavailable"


def test_children_die_with_a_launcher_killed_by_sigkill(up_process):
    up = up_process()
    up.wait_for_line("Ctrl-C stops every service")
    assert all(port_open(p) for p in up.ports)
    up.proc.kill()  # no handler runs: only the kernel's parent-death signal can stop the children
    up.proc.wait(10)
    wait_for(lambda: not any(port_open(p) for p in up.ports), 15, "a child outlived the SIGKILLed launcher")


def test_up_retrains_when_the_current_version_was_trained_on_other_data(tmp_path):
    artifacts = tmp_path / "artifacts"
    first = generate_reviews(tmp_path / "first.tsv", 2000, seed=1, progress=False)
    second = generate_reviews(tmp_path / "second.tsv", 2000, seed=2, progress=False)
    said: list[str] = []
    ensure_trained(artifacts, str(first), log=said.append)
    trained_first = read_current(artifacts)

    said.clear()
    ensure_trained(artifacts, str(first), log=said.append)  # the same file: served as it is
    assert read_current(artifacts) == trained_first
    assert said == [f"version {trained_first} was trained on {first}: serving it"]

    said.clear()
    ensure_trained(artifacts, str(second), log=said.append)
    assert read_current(artifacts) != trained_first
    assert f"version {trained_first} was trained on other data (first.tsv, sha256 " in said[0]
    assert f"not on {second}: retraining on {second}" in said[0]
    manifest = ArtifactStore(artifacts).open(components=[], verify=False).manifest
    assert manifest["dataset"]["fingerprint"]["sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()

    said.clear()
    ensure_trained(artifacts, None, log=said.append)  # no --data: the current version, whatever it was trained on
    assert said == [] and read_current(artifacts) != trained_first

    with pytest.raises(ChorusError, match="no such data file"):
        ensure_trained(artifacts, str(tmp_path / "missing.tsv"), log=said.append)
    with pytest.raises(ChorusError, match="is a folder, not a data file"):
        ensure_trained(artifacts, str(tmp_path), log=said.append)


def test_up_trains_in_a_child_process_with_the_format_it_was_given(tmp_path, ml100k):
    """The launcher never imports the training code (its memory would stay with the launcher while it
    supervises), and ``--format`` reaches the training: a CSV without header or telling name is MovieLens CSV."""
    data = tmp_path / "reviews.txt"
    lines = ml100k.read_text().splitlines()[:3000]
    data.write_text("".join(",".join(line.split("\t")) + "\n" for line in lines))
    artifacts = tmp_path / "artifacts"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from chorus.launcher import ensure_trained\n"
        "ensure_trained(Path(sys.argv[1]), sys.argv[2], format='movielens-csv')\n"
        "print('training code in the launcher:', 'chorus.training.train' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(artifacts), str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "CHORUS_EVENTS_URL": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "training code in the launcher: False" in proc.stdout
    assert "published version" in proc.stdout  # the child's own output, on the launcher's terminal
    manifest = ArtifactStore(artifacts).open(components=[], verify=False).manifest
    assert manifest["components"]["data"]["format"] == "movielens-csv"
