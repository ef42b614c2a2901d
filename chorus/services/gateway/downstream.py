"""Calls to the downstream services, and what the gateway knows about each one (readiness, artifact version).

One :class:`Downstream` per service wraps one pooled ``httpx.AsyncClient``. Transport failures become the most
specific :mod:`chorus.shared.contract.errors` error naming the service: a connection that cannot be opened is
:class:`~chorus.shared.contract.errors.UpstreamUnavailable` (503), an answer that does not come in time is
:class:`~chorus.shared.contract.errors.UpstreamTimeout` (504). A 4xx answer is returned as it is, so its status and
message pass through to the client; a 5xx answer becomes an error of the gateway that names the service. A service
may have several replicas (``CHORUS_RATING_URL=http://a:8002,http://b:8002``): see :class:`Downstream`.

The errors a client sees name the service and what went wrong, never its address or what the service said about
its files: those go to the log, and to ``/readyz`` with the status token (:meth:`Downstream.status`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from chorus.shared.contract.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from chorus.shared.contract.names import VERSION_HEADER

log = logging.getLogger("chorus.gateway")


@dataclass(slots=True, frozen=True)
class Upstream:
    """A downstream answer: HTTP status, raw JSON body, and the artifact version that produced it."""

    status: int
    body: bytes
    version: str | None


def _type(response: httpx.Response) -> str | None:
    """The ``type`` of a downstream error body, if it has one."""
    try:
        kind = response.json().get("type")
    except (ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def _detail(response: httpx.Response) -> str:
    """The ``detail`` of a downstream error body, or a short excerpt of whatever it sent."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    text = response.text.strip()
    return text[:200] if text else f"HTTP {response.status_code}"


def build_client(
    base_url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    pool_timeout: float,
    retries: int,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One long-lived pooled client for one service; ``transport`` replaces the network (tests)."""
    if transport is None:
        # httpx retries only failed connection attempts, never a request that reached the service.
        transport = httpx.AsyncHTTPTransport(
            retries=retries,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
    timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=pool_timeout)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)


class Replica:
    """One process of a service: its pooled client, and whether its last health check (or connection) passed."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.version: str | None = None
        self.ready = False
        self.detail: str | None = "not checked yet"

    @property
    def url(self) -> str:
        return str(self.client.base_url)


class Downstream:
    """One downstream service, served by one or more replicas: their clients, their readiness and the artifact
    version the service currently serves.

    Requests go to the ready replicas in turn (round robin). A replica is ejected when its ``/readyz`` fails or
    a connection to it cannot be opened (the request then goes to the next replica: it never reached the
    ejected one, so trying again is safe), and readmitted by the first ``/readyz`` poll that passes. When no
    replica is ready every one is tried, so a stale verdict cannot keep a recovered service out.

    ``version`` is what the cache keys use: the newest version among the ready replicas (version names sort by
    time). It is set from ``/readyz`` (polled in the background and on demand); an answer carrying another
    version in ``X-Model-Version`` triggers an immediate re-poll, so a model swap is noticed by the first
    answer of the new model, and no later than one poll interval otherwise.
    """

    def __init__(self, name: str, clients: httpx.AsyncClient | list[httpx.AsyncClient]) -> None:
        self.name = name
        self.replicas = [Replica(c) for c in (clients if isinstance(clients, list) else [clients])]
        if not self.replicas:
            raise ValueError(f"the {name} service needs at least one base URL")
        self.version: str | None = None
        self.ready = False
        self.detail: str | None = "not checked yet"
        self._refresh: asyncio.Task[None] | None = None
        self._turn = 0

    @property
    def url(self) -> str:
        return ",".join(r.url for r in self.replicas)

    def _order(self) -> list[Replica]:
        """The replicas to try for one request: the ready ones from the next in turn, else all of them."""
        ready = [r for r in self.replicas if r.ready] or self.replicas
        self._turn = (self._turn + 1) % len(ready)
        return ready[self._turn :] + ready[: self._turn]

    async def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, content: bytes | None = None
    ) -> Upstream:
        """Send one request; return a 2xx/4xx answer, raise a :class:`ChorusError` for anything else."""
        headers = {"content-type": "application/json"} if content is not None else None
        order = self._order()
        for n, replica in enumerate(order):
            try:
                response = await replica.client.request(method, path, params=params, content=content, headers=headers)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._eject(replica, f"unreachable at {replica.url} ({type(exc).__name__})")
                if n + 1 < len(order):
                    continue  # the request never reached this replica: the next one may take it
                how = "the connection timed out" if isinstance(exc, httpx.ConnectTimeout) else "no connection"
                raise UpstreamUnavailable(
                    f"the {self.name} service could not be reached ({how}); retry in a few seconds"
                ) from exc
            except httpx.PoolTimeout as exc:
                raise UpstreamUnavailable(f"the {self.name} service is busy: no free connection to it in time") from exc
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(f"the {self.name} service did not answer in time") from exc
            except httpx.TransportError as exc:
                log.warning("the %s service at %s failed mid-request: %r", self.name, replica.url, exc)
                raise UpstreamUnavailable(
                    f"the {self.name} service could not be reached (the connection failed); retry in a few seconds"
                ) from exc
        version = response.headers.get(VERSION_HEADER)
        if version is not None and version != self.version:
            self.observe(version)
        status = response.status_code
        if status < 500:
            return Upstream(status, response.content, version)
        # what the service said may name its files: to the log only
        (log.info if status in (503, 504) else log.warning)(
            "the %s service at %s answered HTTP %d: %s", self.name, replica.url, status, _detail(response)
        )
        if status == 503 and _type(response) == "overloaded":
            raise UpstreamUnavailable(f"the {self.name} service is busy; retry in a second")
        if status == 503:
            raise UpstreamUnavailable(f"the {self.name} service is not ready; retry in a few seconds")
        if status == 504:
            raise UpstreamTimeout(f"the {self.name} service timed out")
        raise UpstreamError(f"the {self.name} service failed (HTTP {status})")

    def observe(self, version: str) -> None:
        """An answer came from ``version``: adopt it if nothing is known yet, and re-poll ``/readyz`` now.

        A different version is not adopted from the answer alone, because a slow answer of the old model can
        arrive after the swap; ``/readyz`` says which one serves now.
        """
        if self.version is None:
            self.version = version
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self.check(), name=f"chorus-readyz-{self.name}")

    async def check(self, timeout: float | None = None) -> None:
        """Poll every replica's ``/readyz`` once and record readiness, version and detail; never raises."""
        await asyncio.gather(*(self._check(r, timeout) for r in self.replicas))
        self._summarise()

    async def _check(self, replica: Replica, timeout: float | None) -> None:
        try:
            response = await replica.client.get("/readyz", timeout=timeout or httpx.USE_CLIENT_DEFAULT)
            body = response.json()
            if not isinstance(body, dict):
                raise ValueError("readyz body is not a JSON object")
        except httpx.TimeoutException:
            self._set(replica, False, replica.version, "did not answer /readyz in time")
            return
        except httpx.TransportError as exc:
            self._set(replica, False, replica.version, f"unreachable at {replica.url} ({type(exc).__name__})")
            return
        except ValueError as exc:
            self._set(replica, False, replica.version, f"bad /readyz answer: {exc}")
            return
        version = body.get("version") or response.headers.get(VERSION_HEADER)
        ready = response.status_code == 200 and body.get("status") == "ready"
        detail = body.get("detail")
        if not ready and detail is None:
            detail = f"/readyz answered HTTP {response.status_code}"
        # A service that is not ready may still serve its old version; keep the last one we knew otherwise.
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail)
        self._set(replica, ready, version or replica.version, detail)

    def _set(self, replica: Replica, ready: bool, version: str | None, detail: str | None) -> None:
        if ready != replica.ready and len(self.replicas) > 1:
            (log.info if ready else log.warning)(
                "%s replica %s is %s%s",
                self.name,
                replica.url,
                "ready (admitted)" if ready else "not ready (ejected)",
                f": {detail}" if detail else "",
            )
        replica.ready, replica.version, replica.detail = ready, version, detail

    def _eject(self, replica: Replica, detail: str) -> None:
        self._set(replica, False, replica.version, detail)
        self._summarise()

    def _summarise(self) -> None:
        """The service's readiness and version from its replicas': ready when any is, the newest ready version."""
        ready = [r for r in self.replicas if r.ready]
        versions = [r.version for r in (ready or self.replicas) if r.version is not None]
        version = max(versions) if versions else self.version
        if len(self.replicas) == 1:
            detail = self.replicas[0].detail
        elif ready:
            detail = (
                None if len(ready) == len(self.replicas) else f"{len(ready)} of {len(self.replicas)} replicas ready"
            )
        else:
            detail = "; ".join(f"{r.url}: {r.detail}" for r in self.replicas)
        self._record(bool(ready), version, detail)

    def _record(self, ready: bool, version: str | None, detail: str | None) -> None:
        if version != self.version and self.version is not None:
            log.info("%s service now serves version %s (was %s)", self.name, version, self.version)
        if ready != self.ready:
            (log.info if ready else log.warning)(
                "%s service is %s%s", self.name, "ready" if ready else "not ready", f": {detail}" if detail else ""
            )
        self.version, self.ready, self.detail = version, ready, detail

    def status(self) -> dict[str, Any]:
        """This service's entry in the gateway's ``/readyz`` (with several replicas, each one's too)."""
        out: dict[str, Any] = {
            "status": "ready" if self.ready else "not_ready",
            "url": self.url,
            "version": self.version,
            "detail": self.detail,
        }
        if len(self.replicas) > 1:
            out["replicas"] = [
                {"url": r.url, "status": "ready" if r.ready else "not_ready", "version": r.version, "detail": r.detail}
                for r in self.replicas
            ]
        return out

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        for replica in self.replicas:
            await replica.client.aclose()
