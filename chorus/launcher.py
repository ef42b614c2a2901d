"""``chorus up``: the compose topology as local processes.

Three uvicorn processes on loopback, exactly as ``docker-compose.yml`` wires the containers: the similarity and
rating services read the same artifact root; the gateway talks to both and caches in Redis when a Redis URL is
given (in-process LRU otherwise). :class:`Topology` is also what the end-to-end tests use, so the tests start
the system the way users do.

Like compose's ``restart: unless-stopped``, ``up`` restarts a service that dies (:class:`Supervisor`: after 1, 2,
4 ... at most 30 s) while the others keep serving, and stops only on Ctrl-C or SIGTERM. On Linux every child
asks the kernel for SIGTERM when the launcher dies (``PR_SET_PDEATHSIG``), so even a launcher killed with SIGKILL
leaves no service behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import httpx

from chorus.demo import ensure_demo_data
from chorus.shared.artifacts import ArtifactStore, file_fingerprint, read_current
from chorus.shared.contract.errors import ChorusError
from chorus.shared.contract.names import redact_url
from chorus.shared.http.shell import uvicorn_options
from chorus.training.train import parse_components, train

SERVICES = ("similarity", "rating", "gateway")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when ``parent`` dies (Linux), else None.

    The kernel sends the signal when the thread that forked the child ends, which for the launcher is its main
    thread, i.e. the process. A parent that died before the call is caught by comparing ``getppid``."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)

    return preexec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Topology:
    """The three services as child processes. Use as a context manager; :meth:`stop` ends every child."""

    artifacts: Path
    port: int = 8000
    similarity_port: int = 8001
    rating_port: int = 8002
    redis_url: str | None = None
    host: str = "127.0.0.1"
    reload_interval: float = 2.0
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starting: bool = False
    stop_requested: bool = False

    def url(self, service: str = "gateway") -> str:
        port = {"gateway": self.port, "similarity": self.similarity_port, "rating": self.rating_port}[service]
        return f"http://{self.host}:{port}"

    def env(self, service: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "CHORUS_ARTIFACTS": str(Path(self.artifacts).resolve()),
                "CHORUS_RELOAD_INTERVAL": str(self.reload_interval),
                "CHORUS_SIMILARITY_URL": self.url("similarity"),
                "CHORUS_RATING_URL": self.url("rating"),
                "CHORUS_VERSION_POLL_INTERVAL": str(min(2.0, self.reload_interval)),
            }
        )
        if self.redis_url and service == "gateway":
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def start(self, service: str) -> None:
        """Start (or restart) one service."""
        old = self.procs.get(service)
        if old is not None and old.poll() is None:
            raise ChorusError(f"{service} is already running (pid {old.pid})")
        port = {"gateway": self.port, "similarity": self.similarity_port, "rating": self.rating_port}[service]
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            f"chorus.services.{service}.app:create_app",
            "--factory",
            *uvicorn_options(),
            "--host",
            self.host,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{service}.log", "ab")  # noqa: SIM115 - owned by the child
        # A stop signal arriving between fork and bookkeeping would leave a child nobody stops, so the signal
        # handler of `up` only records a stop while this runs (masking the signals instead would be inherited
        # by the child, which then could not be stopped).
        self.starting = True
        try:
            self.procs[service] = subprocess.Popen(
                cmd,
                env=self.env(service),
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        finally:
            self.starting = False
        if self.stop_requested:
            raise KeyboardInterrupt

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def stop(self, service: str, timeout: float = 10.0, kill: bool = False) -> None:
        """Stop one service: SIGTERM (or SIGKILL with ``kill``), then SIGKILL after ``timeout``."""
        proc = self.procs.get(service)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop_all(self) -> None:
        for service in reversed(SERVICES):
            self.stop(service)

    def wait_ready(self, service: str = "gateway", timeout: float = 120.0) -> dict[str, Any]:
        """Poll ``/readyz`` until it answers 200; raise with the last answer (or the child's exit) on timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ChorusError(
                        f"the {name} service exited with code {proc.returncode}"
                        + (f"; see {self.log_dir / (name + '.log')}" if self.log_dir else "")
                    )
            try:
                r = httpx.get(self.url(service) + "/readyz", timeout=2.0)
                if r.status_code == 200:
                    return cast(dict[str, Any], r.json())
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            time.sleep(0.2)
        raise ChorusError(f"the {service} was not ready within {timeout:.0f} s: {last}")

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def _trained_on(artifacts: Path, data: str) -> tuple[str, dict[str, Any] | None]:
    """The current version's name and, when it was trained on another file than ``data``, its dataset
    fingerprint (None when ``data`` is the file it was trained on, compared by size, then sha256)."""
    version = ArtifactStore(artifacts).open(components=[], verify=False)
    recorded = version.manifest.get("dataset", {}).get("fingerprint", {})
    size = Path(data).stat().st_size
    if recorded.get("bytes") == size and file_fingerprint(data, "")["sha256"] == recorded.get("sha256"):
        return version.name, None
    return version.name, recorded


def ensure_trained(artifacts: Path, data: str | None, log: Callable[[str], object] = print) -> None:
    """Make sure ``artifacts`` serves a version trained on ``data``: train when there is no version yet (on
    ``data``, or on freshly generated demo data), and retrain when the current version was trained on other data
    than ``data``. Without ``data`` an existing version is served as it is."""
    if read_current(artifacts) is None:
        if data is None:
            log(f"no artifact version in {artifacts}: training on the demo data")
            data = str(ensure_demo_data(log=log))
    elif data is None:
        return
    else:
        if not Path(data).is_file():
            raise ChorusError(f"--data {data}: no such file")
        name, other = _trained_on(artifacts, data)
        if other is None:
            log(f"version {name} was trained on {data}: serving it")
            return
        log(
            f"version {name} was trained on other data ({other.get('name', 'unknown file')}, sha256 "
            f"{str(other.get('sha256', '?'))[:12]}), not on {data}: retraining on {data}"
        )
    log(f"training on {data} into {artifacts}")
    train(data, artifacts, parse_components(None), log=log)


BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
"""A service that ran this many seconds before dying is restarted after :data:`BACKOFF_FIRST` again."""


def backoff(failures: int) -> float:
    """Seconds before restart number ``failures`` (1, 2, 3 ...) in a row: 1, 2, 4 ... at most 30."""
    delay: float = BACKOFF_FIRST * 2 ** (failures - 1)  # int ** int is typed Any: the exponent may be negative
    return min(BACKOFF_MAX, delay)


@dataclass
class Supervisor:
    """Restarts the services of a :class:`Topology` that exit, after :func:`backoff` seconds; the others keep
    running meanwhile (the gateway answers 503 for a missing service's routes). Call :meth:`check` periodically."""

    topo: Topology
    log: Callable[[str], object] = print
    clock: Callable[[], float] = time.monotonic
    failures: dict[str, int] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)

    def watch(self) -> None:
        """Start counting the running services' uptime (after :meth:`Topology.start_all`)."""
        now = self.clock()
        for name in self.topo.procs:
            self.started[name] = now

    def check(self) -> None:
        now = self.clock()
        for name, proc in list(self.topo.procs.items()):
            if name in self.due:
                if now >= self.due[name]:
                    del self.due[name]
                    self.topo.start(name)
                    self.started[name] = now
                    self.log(f"restarted the {name} service (pid {self.topo.procs[name].pid})")
                continue
            if proc.poll() is None:
                continue
            ran = now - self.started.get(name, now)
            self.failures[name] = 1 if ran >= STABLE_AFTER else self.failures.get(name, 0) + 1
            delay = backoff(self.failures[name])
            self.due[name] = now + delay
            self.log(
                f"the {name} service exited with code {proc.returncode} after {ran:.0f} s; "
                f"restarting it in {delay:.0f} s"
            )


def up(
    artifacts: Path,
    data: str | None,
    port: int,
    redis_url: str | None,
    similarity_port: int,
    rating_port: int,
    log_dir: Path | None,
) -> int:
    ensure_trained(artifacts, data)
    topo = Topology(
        artifacts=artifacts,
        port=port,
        similarity_port=similarity_port,
        rating_port=rating_port,
        redis_url=redis_url,
        log_dir=log_dir,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # further Ctrl-C / SIGTERM must not interrupt the shutdown that this one starts
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        topo.stop_requested = True
        if not topo.starting:  # otherwise Topology.start raises once the child is on record
            raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    try:
        topo.start_all()
        ready = topo.wait_ready("gateway")
        versions = {name: (svc or {}).get("version") for name, svc in ready.get("services", {}).items()}
        print("Chorus is up: " + ", ".join(f"{name} serves version {v}" for name, v in versions.items()))
        print(f"  web page  {topo.url()}/")
        print(f"  API docs  {topo.url()}/docs")
        cache = f"Redis at {redact_url(redis_url)}" if redis_url else "in-process LRU (no --redis-url)"
        print(f"  cache     {cache}")
        print("Ctrl-C stops every service; a service that exits is restarted.", flush=True)
        supervisor = Supervisor(topo, log=lambda message: print(f"chorus up: {message}", file=sys.stderr, flush=True))
        supervisor.watch()
        while True:
            supervisor.check()
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # also when leaving for another reason than a signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            topo.stop_all()
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            signal.signal(signal.SIGINT, previous_int)
