"""``chorus up``: the compose topology as local processes.

Three uvicorn processes on loopback, exactly as ``docker-compose.yml`` wires the containers: the similarity and
rating services read the same artifact root; the gateway talks to both and caches in Redis when a Redis URL is
given (in-process LRU otherwise). :class:`Topology` is also what the end-to-end tests use, so the tests start
the system the way users do.

Training, the first one and every retraining, runs as a child process (``chorus train``): the launcher supervises
for as long as the services run, and keeps none of the training's memory.

Like compose's ``restart: unless-stopped``, ``up`` restarts a service that dies (:class:`Supervisor`: after 1, 2,
4 ... at most 30 s) while the others keep serving, and stops only on Ctrl-C or SIGTERM. On Linux every child
asks the kernel for SIGTERM when the launcher dies (``PR_SET_PDEATHSIG``), so even a launcher killed with SIGKILL
leaves no service behind.

Every service gets the event store's URL (``CHORUS_EVENTS_URL``; by default a SQLite file ``events.db`` in the
artifact root, created on first start) and the gateway the API keys (``CHORUS_API_KEYS``; without it, one key made
on first start and kept in a file only its owner may read: :func:`api_keys`). With ``--retrain-every``, a
:class:`Retrainer` runs ``chorus train --events-url`` in a child process whenever the store holds events past the
current version's cutoff; the services load the new version by themselves and keep serving meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, cast

import httpx
import sqlalchemy as sa

from chorus.demo import DEFAULT_DEMO, ensure_demo_data
from chorus.shared.artifacts import ArtifactStore, file_fingerprint, read_current
from chorus.shared.contract.errors import ChorusError
from chorus.shared.contract.names import redact_url
from chorus.shared.events.rows import cutoff_of
from chorus.shared.events.store import EventStore, sqlite_url
from chorus.shared.http.shell import uvicorn_options
from chorus.training.events import open_store, read_cutoff

SERVICES = ("similarity", "rating", "gateway")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int, nice: int = 0) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when ``parent`` dies (Linux), else None; ``nice``
    lowers the child's CPU priority by that much.

    The kernel sends the signal when the thread that forked the child ends, which for the launcher is its main
    thread, i.e. the process. A parent that died before the call is caught by comparing ``getppid``."""
    linux = sys.platform.startswith("linux")
    if not linux and not nice:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl if linux else None

    def preexec() -> None:
        if prctl is not None and (prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() != parent):
            os._exit(1)
        if nice:
            os.nice(nice)

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
    events_url: str | None = None
    api_keys: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starting: bool = False
    stop_requested: bool = False

    @classmethod
    def on_free_ports(cls, artifacts: Path, **settings: Any) -> Topology:
        """A topology whose three services listen on ports that are free now (benchmarks, tests)."""
        return cls(artifacts, free_port(), free_port(), free_port(), **settings)

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
        if self.events_url is not None:
            env["CHORUS_EVENTS_URL"] = self.events_url
        if service != "gateway":
            env.pop("CHORUS_API_KEYS", None)  # only the gateway checks keys
        elif self.api_keys is not None:
            env["CHORUS_API_KEYS"] = self.api_keys
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


def ensure_trained(
    artifacts: Path,
    data: str | None,
    log: Callable[[str], object] = print,
    events_url: str | None = None,
    format: str | None = None,
) -> str | None:
    """Make sure ``artifacts`` serves a version trained on ``data``: train when there is no version yet (on
    ``data``, or on freshly generated demo data), and retrain when the current version was trained on other data
    than ``data``. Without ``data`` an existing version is served as it is. A training takes the events of
    ``events_url`` up to its last one (``chorus train --events-url``), and reads ``data`` as ``format`` (None:
    detected).

    The training runs as a child process (:func:`train_child`), so that this process, which goes on to
    supervise the services for as long as they run, never holds the training's memory.

    Returns the data file trained on now, or ``data`` (None when neither)."""
    if read_current(artifacts) is None:
        if data is None:
            log(f"no artifact version in {artifacts}: training on the demo data")
            data = str(ensure_demo_data(log=log))
    elif data is None:
        return None
    else:
        from chorus.shared.data.loaders import check_data_file

        check_data_file(Path(data))
        name, other = _trained_on(artifacts, data)
        if other is None:
            log(f"version {name} was trained on {data}: serving it")
            return data
        log(
            f"version {name} was trained on other data ({other.get('name', 'unknown file')}, sha256 "
            f"{str(other.get('sha256', '?'))[:12]}), not on {data}: retraining on {data}"
        )
    log(f"training on {data} into {artifacts}")
    args = ["--data", data, "--artifacts", str(artifacts)] + (["--format", format] if format else [])
    train_child(args, events_url)
    return data


def train_child(train_args: list[str], events_url: str | None) -> None:
    """Run ``chorus train`` with ``train_args`` as a child process that writes to this one's terminal and dies
    with it; the event store's URL goes in its environment (``CHORUS_EVENTS_URL``), never on its command line,
    which every local user can read.

    Raises
    ------
    ChorusError : the training failed (it has said why on the terminal).
    """
    env = dict(os.environ)
    env.pop("CHORUS_EVENTS_URL", None)
    if events_url is not None:
        env["CHORUS_EVENTS_URL"] = events_url
    cmd = [sys.executable, "-m", "chorus.cli", "train", *train_args]
    child = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent(os.getpid()))
    try:
        code = child.wait()
    finally:
        if child.poll() is None:  # interrupted (Ctrl-C reaches the child too): never leave it behind
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if code != 0:
        raise ChorusError(f"the training failed (`chorus train` exited with code {code}); its messages are above")


def retraining_data(artifacts: Path, data: str | None) -> str:
    """The review file that retraining ``artifacts`` reads: ``data`` when given, else the file the current version
    was trained on, when it is still where its manifest says and unchanged (sha256), else the demo data when the
    version was trained on it.

    Raises
    ------
    ChorusError : no such file is known (then ``--data`` names it).
    """
    if data is not None:
        return data
    version = ArtifactStore(artifacts).open(components=[], verify=False)
    recorded = version.manifest.get("dataset", {}).get("fingerprint", {})
    path = version.manifest.get("components", {}).get("data", {}).get("load_report", {}).get("path")
    for candidate in (path, DEFAULT_DEMO):
        if candidate and Path(candidate).is_file() and Path(candidate).stat().st_size == recorded.get("bytes"):
            if file_fingerprint(candidate, "")["sha256"] == recorded.get("sha256"):
                return str(candidate)
    raise ChorusError(
        f"version {version.name} was trained on {path or recorded.get('name', 'a file')}, which is not there (or "
        "has changed) any more: name the review file to retrain on with --data"
    )


def default_events_url(artifacts: Path) -> str:
    """``$CHORUS_EVENTS_URL``, else a SQLite store ``events.db`` in the artifact root."""
    return os.environ.get("CHORUS_EVENTS_URL") or sqlite_url(Path(artifacts) / "events.db")


KEY_FILE = "api-key"
"""The file of the key ``chorus up`` makes (:func:`api_keys`)."""


def key_file(artifacts: Path, events_url: str) -> Path:
    """Where ``chorus up`` keeps its API key: beside a SQLite store, in the artifact root for any other store."""
    parsed = sa.engine.make_url(events_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database).resolve().parent / KEY_FILE
    return Path(artifacts).resolve() / KEY_FILE


def api_keys(path: Path, log: Callable[[str], object] = print) -> tuple[str, str]:
    """The gateway's API keys and where they come from: ``$CHORUS_API_KEYS`` when set, else the key in ``path``,
    made on first use (``secrets.token_urlsafe(32)``, 256 random bits) in a file only its owner may read or write
    (mode 0600, created so, never widened afterwards).

    Raises
    ------
    ChorusError : a key file that is empty or holds more than one line (it is never overwritten: delete it to
        get a new key).
    """
    given = os.environ.get("CHORUS_API_KEYS", "").strip()
    if given:
        return given, "CHORUS_API_KEYS"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log(f"warning: {path} is readable by others (mode {mode:04o}): chmod 600 {shlex.quote(str(path))}")
        lines = path.read_text(encoding="utf-8").split()
        if len(lines) != 1:
            raise ChorusError(
                f"{path} should hold one API key, not {len(lines)} words: delete it and `chorus up` makes a new one"
            ) from None
        return lines[0], str(path)
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
        f.flush()
        os.fsync(f.fileno())
    log(f"made an API key for the gateway, kept in {path} (mode 0600)")
    return key, str(path)


def duration_text(seconds: float) -> str:
    """``seconds`` as ``1h``, ``30m``, ``90s`` (the largest unit that divides it)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _store_error(url: str, exc: Exception) -> str:
    if isinstance(exc, ChorusError):
        return exc.detail
    return f"{redact_url(url)}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@dataclass
class Retrainer:
    """Retrains ``artifacts`` in a child process (``chorus train``) when the event store holds events past the
    current version's cutoff, checking every ``every`` seconds; call :meth:`check` periodically.

    The child runs at a lower CPU priority (``nice`` 10) so that the services keep answering; it reads the store
    URL from its environment (never its command line, which every local user can read), dies with this process,
    and its output is logged line by line with a ``retrain:`` prefix. A retraining that fails is logged and tried
    again at the next check. The new version's rows depend only on the data file and the events up to its cutoff.

    Parameters
    ----------
    artifacts : Path
    train_args : list of str
        ``chorus train``'s arguments (``--data``, ``--artifacts`` and any others).
    store : EventStore
    every : float
        Seconds between checks.
    """

    artifacts: Path
    train_args: list[str]
    store: EventStore
    every: float
    log: Callable[[str], object] = print
    clock: Callable[[], float] = time.monotonic
    child: subprocess.Popen[str] | None = None
    relay: threading.Thread | None = None
    due: float = 0.0
    runs: int = 0

    def start(self, now: bool = False) -> None:
        """Schedule the first check: at once with ``now``, else after ``every`` seconds."""
        self.due = self.clock() + (0.0 if now else self.every)

    def pending(self) -> str | None:
        """Why the artifact root should be retrained now, or None when its version holds every event."""
        name = read_current(self.artifacts)
        if name is None:
            return "no version yet"
        manifest = ArtifactStore(self.artifacts).open(name, components=[], verify=False).manifest
        last, cutoff = read_cutoff(self.store), cutoff_of(manifest)
        recorded = (manifest.get("events") or {}).get("store")
        if recorded is not None and recorded != self.store.public_url:
            return f"version {name} was trained on the events of another store ({recorded})"
        if last > cutoff:
            return f"the event store is at seq {last:,}, version {name} at {cutoff:,}"
        return None

    def check(self) -> None:
        if self.child is not None:
            code = self.child.poll()
            if code is None:
                return
            self.child = None
            if self.relay is not None:
                self.relay.join(5)  # its last lines before the verdict
            if code == 0:
                self.log(f"retrained: version {read_current(self.artifacts)} is current")
            else:
                self.log(f"retraining failed (exit code {code}); trying again in {duration_text(self.every)}")
        now = self.clock()
        if now < self.due:
            return
        self.due = now + self.every
        try:
            reason = self.pending()
        except (ChorusError, sa.exc.SQLAlchemyError, OSError) as exc:
            self.log(f"cannot tell whether to retrain ({_store_error(self.store.url, exc)}); trying again later")
            return
        if reason is None:
            return
        self.launch(reason)

    def launch(self, reason: str) -> None:
        cmd = [sys.executable, "-m", "chorus.cli", "train", *self.train_args]
        env = {**os.environ, "CHORUS_EVENTS_URL": self.store.url, "PYTHONUNBUFFERED": "1"}
        self.log(f"retraining: {reason}")
        self.child = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent(os.getpid(), nice=10),
        )
        self.runs += 1
        stream = self.child.stdout
        assert stream is not None
        self.relay = threading.Thread(target=self._relay, args=(stream,), daemon=True)
        self.relay.start()

    def _relay(self, stream: IO[str]) -> None:
        for line in stream:
            self.log(f"retrain: {line.rstrip()}")

    def stop(self, timeout: float = 10.0) -> None:
        """End a retraining in progress (its unfinished version is never published)."""
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def retrain_loop(
    artifacts: Path, train_args: list[str], events_url: str, every: float, log: Callable[[str], object] = print
) -> int:
    """``chorus train --every``: train now when the artifact root has no version or its version lacks events of
    the store, then check again every ``every`` seconds, until SIGTERM or Ctrl-C (then 0)."""
    store = open_store(events_url)
    retrainer = Retrainer(artifacts, train_args, store, every, log=log)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    log(f"checking {store.public_url} for new events every {duration_text(every)}")
    try:
        retrainer.start(now=True)
        while True:
            retrainer.check()
            time.sleep(0.2)
    except KeyboardInterrupt:
        log("stopping")
        return 0
    finally:
        try:
            retrainer.stop()
            store.close()
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            signal.signal(signal.SIGINT, previous_int)


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


def _curl_example(url: str, key: str, artifacts: Path) -> str:
    """A command that posts one rating of an item the current version knows (``key``: a key made by
    :func:`api_keys`, URL-safe characters only, or a shell variable)."""
    try:
        items = ArtifactStore(artifacts).open(components=[], verify=False).array("data", "item_ids")
        item = str(items[0]) if items.size else "ITEM_ID"
    except (ChorusError, OSError, KeyError):
        item = "ITEM_ID"
    body = json.dumps({"events": [{"user_id": "me", "item_id": item, "kind": "rating", "rating": 5}]})
    return (
        f"curl -H \"Authorization: Bearer {key}\" -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)} {url}/v1/events"
    )


def up(
    artifacts: Path,
    data: str | None,
    port: int,
    redis_url: str | None,
    similarity_port: int,
    rating_port: int,
    log_dir: Path | None,
    events_url: str | None = None,
    retrain_every: float | None = None,
    format: str | None = None,
) -> int:
    """``chorus up`` (see the module docstring); ``events_url`` None: :func:`default_events_url`; ``format``: of
    ``data`` (None: detected)."""
    with contextlib.closing(open_store(events_url or default_events_url(artifacts), create=True)) as store:
        trained_on = ensure_trained(artifacts, data, events_url=store.url, format=format)
        retrainer = None
        if retrain_every is not None:
            train_args = ["--data", retraining_data(artifacts, trained_on), "--artifacts", str(artifacts)]
            if format is not None and trained_on == data:
                train_args += ["--format", format]
            retrainer = Retrainer(artifacts, train_args, store, retrain_every, log=_say)
        keys, keys_from = api_keys(key_file(artifacts, store.url), log=_say)
        topo = Topology(
            artifacts=artifacts,
            port=port,
            similarity_port=similarity_port,
            rating_port=rating_port,
            redis_url=redis_url,
            log_dir=log_dir,
            events_url=store.url,
            api_keys=keys,
        )
        return _serve(topo, store, retrainer, keys_from)


def _say(message: str) -> None:
    print(f"chorus up: {message}", file=sys.stderr, flush=True)


def _serve(topo: Topology, store: EventStore, retrainer: Retrainer | None, keys_from: str) -> int:
    """Start the services, print the banner, supervise (and retrain) until SIGTERM or Ctrl-C; stop everything."""

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
        cache = f"Redis at {redact_url(topo.redis_url)}" if topo.redis_url else "in-process LRU (no --redis-url)"
        print(f"  cache     {cache}")
        print(f"  events    {store.public_url}")
        if keys_from == "CHORUS_API_KEYS":
            print("  API keys  from CHORUS_API_KEYS")
            print(f"  try       {_curl_example(topo.url(), '$KEY', topo.artifacts)}")
        else:
            print(f"  API key   {topo.api_keys}  (kept in {keys_from})")
            print(f"  try       {_curl_example(topo.url(), str(topo.api_keys), topo.artifacts)}")
        retraining = (
            "off (--retrain-every)" if retrainer is None else f"every {duration_text(retrainer.every)}, on new events"
        )
        print(f"  retrain   {retraining}")
        print("Ctrl-C stops every service; a service that exits is restarted.", flush=True)
        supervisor = Supervisor(topo, log=_say)
        supervisor.watch()
        if retrainer is not None:
            retrainer.start()
        while True:
            supervisor.check()
            if retrainer is not None:
                # a stop signal during its Popen leaves no child behind either: the child dies with this process
                retrainer.check()
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # also when leaving for another reason than a signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if retrainer is not None:
                retrainer.stop()
            topo.stop_all()
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            signal.signal(signal.SIGINT, previous_int)
