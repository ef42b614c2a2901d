"""What the similarity and rating services share: artifact hot reload, their health routes and their app, built
around the HTTP shell of :mod:`chorus.shared.http.shell`.

Hot reload (:class:`ModelHolder`): a background task polls ``<artifacts>/CURRENT``; when it names a version other
than the one being served, that version is opened and verified (:class:`chorus.shared.artifacts.ArtifactStore`), the
service's model is built from it beside the old one, and the reference is swapped in one assignment. A request
takes the holder's ``(version, model)`` pair once, at its start, so requests in flight finish on the model they
began with. A version that fails validation or loading is refused, the old one keeps serving, and ``/readyz``
says why (with the status token). A refusal is remembered with the :func:`fingerprint` of the version's files, so
a bad version is neither loaded nor logged again on every poll, but is tried again at the next poll after any of
its files changed (a repair in place); a refused ``CURRENT`` is judged again on every poll, by what it holds. The
reason in ``/readyz`` is the present one: it goes when its cause does.

Public answers never carry the reason, which names artifact files and paths: a request that finds no version
loaded is answered 503 naming the service only; the log and the token ``/readyz`` say why.

Before a swap the new version passes three gates: its files (size, sha256, shape and dtype as the manifest says,
every float finite: :meth:`chorus.shared.artifacts.ArtifactStore.open` with ``load=True``, which reads them into
private memory, so nothing done to the files afterwards can reach the served arrays), the service's ``build``
(which checks that indices are in range), and the service's ``canary``, a query answered by the new model whose
answer must be sound. ``CURRENT`` itself must name a plain version directory of the root
(:func:`chorus.shared.artifacts.read_current`). A process that starts while ``CURRENT`` is unusable serves the
newest version that passes all three gates, and says so in ``/readyz`` (``fallback``) and in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic_settings import SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from chorus.shared.artifacts import CURRENT, ArtifactStore, Version
from chorus.shared.contract.errors import ArtifactError, ChorusError, NotReady
from chorus.shared.contract.names import VERSION_HEADER
from chorus.shared.http.limits import HttpSettings
from chorus.shared.http.logs import configure_logging
from chorus.shared.http.metrics import ARTIFACT_LOAD_FAILURES, metrics_router
from chorus.shared.http.shell import install_error_handlers, install_http_middleware, show_details

log = logging.getLogger("chorus.serving")

M = TypeVar("M")


class ServiceSettings(HttpSettings):
    """Settings every model service reads from the environment (prefix ``CHORUS_``), beside the limits and the
    status token of :class:`~chorus.shared.http.limits.HttpSettings`."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_")

    artifacts: Path = Path("artifacts")
    """Artifact root holding CURRENT and the versions (``CHORUS_ARTIFACTS``)."""
    reload_interval: float = 2.0
    """Seconds between checks of CURRENT for a new version (``CHORUS_RELOAD_INTERVAL``)."""
    verify_checksums: bool = True
    """Check every file's sha256 before serving a version (``CHORUS_VERIFY_CHECKSUMS``)."""


class Dependency(Protocol):
    """Something a model service uses besides its artifact (the event store): started in the lifespan before the
    first version loads, shown in ``/readyz`` under its ``name``, closed at shutdown. Its state never makes the
    service unready: the routes that do not need it keep answering, those that do answer 503 themselves."""

    name: str

    def start(self) -> None:
        """Open what can be opened now; raise only for a configuration that can never work."""

    def readiness(self, details: bool) -> dict[str, Any]:
        """``{"status": ...}`` and, with ``details`` (the status token), whatever helps an operator."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Loaded(Generic[M]):
    version: str
    model: M


Fingerprint = tuple[tuple[str, int, int, int, int], ...]


def fingerprint(path: Path) -> Fingerprint:
    """What a version directory holds, told without reading it: each file's path under it, size, modification
    and change times (ns) and inode. Writing a file, or putting another in its place, changes its change time
    or inode (neither can be set back by a user), so a repaired version never has its broken one's fingerprint."""
    entries = []
    for folder, subfolders, files in os.walk(path):
        subfolders.sort()
        for name in sorted(files):
            file = os.path.join(folder, name)
            try:
                st = os.stat(file)
            except OSError:  # removed while walking: its absence is the fingerprint
                continue
            entries.append((os.path.relpath(file, path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(entries)


@dataclass(frozen=True)
class Refusal:
    """Why a version failed a gate, and the :func:`fingerprint` of its files when it did."""

    fingerprint: Fingerprint
    reason: str


class ModelHolder(Generic[M]):
    """Holds the served ``(version, model)`` and swaps in new versions; see the module docstring.

    ``canary(model)`` runs a query on a freshly built model and raises (any exception) when the answer is not
    sound; ``load_failures`` counts refusals (a hook for metrics); ``name`` is the service's, for public
    messages."""

    def __init__(
        self,
        root: Path,
        build: Callable[[Version], M],
        components: Sequence[str],
        verify: bool = True,
        canary: Callable[[M], None] | None = None,
        name: str | None = None,
    ) -> None:
        self.store = ArtifactStore(root)
        self.build = build
        self.canary = canary
        self.components = tuple(components)
        self.name = name or self.components[-1]
        self.verify = verify
        self.loaded: Loaded[M] | None = None
        self.last_error: str | None = None
        self.fallback = False
        self.load_failures = 0
        self._problem: str | None = None  # why CURRENT's version is not the one served (None: it is)
        self._bad: dict[str, Refusal] = {}  # versions that failed a gate, by name
        self._lock = threading.Lock()

    def get(self) -> Loaded[M]:
        loaded = self.loaded
        if loaded is None:
            # the reason names artifact paths and files: it goes to the log and the token /readyz only
            raise NotReady(
                f"the {self.name} service has no model version loaded yet; retry in a few seconds (its operator "
                "finds why in its log and /readyz)"
            )
        return loaded

    def refresh(self) -> bool:
        """Load CURRENT if it names a version other than the one served, or a refused one whose files changed
        since; return True when a new version was swapped in."""
        with self._lock:
            try:
                name = self.store.current()
            except OSError as exc:
                self._note(f"cannot read CURRENT: {exc}")
                return self._fall_back()
            except ArtifactError as exc:  # not a version name: logged once per reason
                self._note(f"CURRENT refused: {exc.detail}", refusal=True)
                return self._fall_back()
            if name is None:
                if self.loaded is None:
                    self._note(f"no version yet: {self.store.root / CURRENT} does not exist")
                return False
            if self.loaded is not None and name == self.loaded.version and not self.fallback:
                self._note(None)  # whatever was wrong before (a CURRENT refused) is not any more
                return False
            try:
                model = self._load(name)
            except ArtifactError as exc:
                self._note(f"version {name} refused: {exc.detail}", refusal=True)
                return self._fall_back()
            self._swap(name, model, fallback=False)
            return True

    def _load(self, name: str) -> M:
        """The model of version ``name`` once it passed every gate (files, build, canary).

        A version refused before is tried again only when its files changed since (:func:`fingerprint`).

        Raises
        ------
        ArtifactError : the first gate it fails, and why (also remembered with the fingerprint of its files).
        """
        before = fingerprint(self.store.root / name)  # before reading: a repair during the read shows next time
        refused = self._bad.get(name)
        if refused is not None and refused.fingerprint == before:
            raise ArtifactError(refused.reason)
        try:
            version = self.store.open(name, components=self.components, verify=self.verify, load=True)
            model = self.build(version)
        except ChorusError as exc:
            raise self._refused(name, before, exc.detail) from exc
        except Exception as exc:  # a broken artifact must never take the service down
            log.warning("loading version %s failed", name, exc_info=True)
            raise self._refused(name, before, f"{type(exc).__name__}: {exc}") from exc
        if self.canary is not None:
            try:
                self.canary(model)
            except Exception as exc:
                raise self._refused(name, before, f"its canary query failed ({type(exc).__name__}: {exc})") from exc
        self._bad.pop(name, None)
        return model

    def _refused(self, name: str, before: Fingerprint, reason: str) -> ArtifactError:
        self._bad[name] = Refusal(before, reason)
        return ArtifactError(reason)

    def _swap(self, name: str, model: M, fallback: bool) -> None:
        self.loaded = Loaded(name, model)
        self.fallback = fallback
        if fallback:
            self.last_error = f"{self._problem}; serving the newest verified version {name} instead"
            log.warning(self.last_error)
        else:
            self._note(None)
            log.info("serving version %s", name)

    def _fall_back(self) -> bool:
        """With nothing served yet (a start with an unusable CURRENT), serve the newest version that passes every
        gate; True when one was swapped in."""
        if self.loaded is not None:
            return False
        for name in reversed(self.store.versions()):
            refused = self._bad.get(name)
            if refused is not None and refused.fingerprint == fingerprint(self.store.root / name):
                continue
            try:
                model = self._load(name)
            except ArtifactError as exc:
                log.warning("fallback version %s refused: %s", name, exc.detail)
                continue
            self._swap(name, model, fallback=True)
            return True
        return False

    def _note(self, problem: str | None, refusal: bool = False) -> None:
        """Record why CURRENT's version is not served (None: it is). A refusal is counted and logged once, when
        its reason is new; the same reason on later polls changes nothing."""
        if problem == self._problem:
            return
        self._problem = problem
        if problem is None:
            self.last_error = None
            return
        keeps = f"; still serving {self.loaded.version}" if self.loaded else ""
        if self.loaded is not None and self.fallback:
            keeps = f"; serving the newest verified version {self.loaded.version} instead"
        self.last_error = f"{problem}{keeps}"
        if refusal:
            self.load_failures += 1
            ARTIFACT_LOAD_FAILURES.inc()
            log.error(self.last_error)

    async def poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await run_in_threadpool(self.refresh)
            except Exception:  # keep polling whatever happens
                log.exception("reload check failed")

    def readiness(self) -> tuple[int, dict[str, Any]]:
        loaded = self.loaded
        body = {
            "status": "ready" if loaded else "not_ready",
            "version": loaded.version if loaded else None,
            "fallback": self.fallback,
            "detail": self.last_error,
        }
        return (200 if loaded else 503), body


def model_dependency(request: Request, response: Response) -> Loaded[Any]:
    """The ``(version, model)`` a request works with, taken once; also labels the response (and any error
    response, through the handlers below) with the version."""
    loaded: Loaded[Any] = request.app.state.holder.get()
    request.state.model_version = loaded.version
    response.headers[VERSION_HEADER] = loaded.version
    return loaded


def health_router(dependencies: Sequence[Dependency] = ()) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="An artifact version is loaded and served",
        description="``status``, ``version`` and ``fallback`` (true while a start on an unusable CURRENT serves "
        "the newest verified version instead), and the state of each dependency by name (``events``: the event "
        "store); with ``Authorization: Bearer $CHORUS_STATUS_TOKEN`` also ``detail`` (why not ready, what was "
        "refused) and each dependency's details.",
        responses={
            503: {"description": "No version loaded yet"},
            401: {"description": "A wrong status token, or one sent where none is configured"},
        },
    )
    def readyz(request: Request) -> JSONResponse:
        status, body = request.app.state.holder.readiness()
        details = show_details(request)
        if not details:
            body = {"status": body["status"], "version": body["version"], "fallback": body["fallback"]}
        for dependency in dependencies:
            body[dependency.name] = dependency.readiness(details)
        response = JSONResponse(body, status_code=status)
        if body["version"]:
            response.headers[VERSION_HEADER] = body["version"]
        return response

    return router


def create_service_app(
    *,
    title: str,
    description: str,
    settings: ServiceSettings,
    build: Callable[[Version], Any],
    components: Sequence[str],
    routers: Sequence[APIRouter],
    version: str = "1",
    canary: Callable[[Any], None] | None = None,
    dependencies: Sequence[Dependency] = (),
) -> FastAPI:
    """The shell both model services use: lifespan with first load and reload polling, error handlers,
    health routes, the version header, then the service's own routers. ``canary``: see :class:`ModelHolder`;
    ``dependencies``: see :class:`Dependency` (each is also ``app.state.<name>``)."""
    service = components[-1]
    holder = ModelHolder(
        settings.artifacts, build, components, verify=settings.verify_checksums, canary=canary, name=service
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for dependency in dependencies:
            await run_in_threadpool(dependency.start)
        await run_in_threadpool(holder.refresh)
        task = asyncio.create_task(holder.poll(settings.reload_interval))
        try:
            yield
        finally:
            task.cancel()
            for dependency in dependencies:
                dependency.close()

    configure_logging()
    # no redirect from /path/ to /path: Starlette builds its Location from the Host header
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan, redirect_slashes=False)
    app.state.holder = holder
    app.state.settings = settings
    for dependency in dependencies:
        setattr(app.state, dependency.name, dependency)
    install_error_handlers(app)
    app.include_router(health_router(dependencies))
    app.include_router(
        metrics_router(lambda request: {service: _served(request.app.state.holder)}), include_in_schema=False
    )
    for router in routers:
        app.include_router(router)
    install_http_middleware(app, settings)
    return app


def _served(holder: ModelHolder[Any]) -> str | None:
    loaded = holder.loaded
    return loaded.version if loaded else None
