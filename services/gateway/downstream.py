"""Calls to the downstream services, and what the gateway knows about each one (readiness, artifact version).

One :class:`Downstream` per service wraps one pooled ``httpx.AsyncClient``. Transport failures become the most
specific :mod:`chorus.shared.errors` error naming the service: a connection that cannot be opened is
:class:`~chorus.shared.errors.UpstreamUnavailable` (503), an answer that does not come in time is
:class:`~chorus.shared.errors.UpstreamTimeout` (504). A 4xx answer is returned as it is, so its status and message pass
through to the client; a 5xx answer becomes an error of the gateway that names the service.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import httpx

from chorus.shared.contract import VERSION_HEADER
from chorus.shared.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger("chorus.gateway")


@dataclass(slots=True, frozen=True)
class Upstream:
    """A downstream answer: HTTP status, raw JSON body, and the artifact version that produced it."""

    status: int
    body: bytes
    version: str | None


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


class Downstream:
    """One downstream service: its client, its readiness and the artifact version it currently serves.

    ``version`` is what the cache keys use. It is set from the service's ``/readyz`` (polled in the background
    and on demand); an answer carrying another version in ``X-Model-Version`` triggers an immediate re-poll, so a
    model swap is noticed by the first answer of the new model, and no later than one poll interval otherwise.
    """

    def __init__(self, name: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.client = client
        self.version: str | None = None
        self.ready = False
        self.detail: str | None = "not checked yet"
        self._refresh: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return str(self.client.base_url)

    async def request(
        self, method: str, path: str, *, params: dict | None = None, content: bytes | None = None
    ) -> Upstream:
        """Send one request; return a 2xx/4xx answer, raise a :class:`ChorusError` for anything else."""
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = await self.client.request(method, path, params=params, content=content, headers=headers)
        except httpx.ConnectTimeout as exc:
            raise UpstreamUnavailable(
                f"the {self.name} service at {self.url} could not be reached (connection timed out)"
            ) from exc
        except httpx.PoolTimeout as exc:
            raise UpstreamUnavailable(f"the {self.name} service is busy: no free connection to it in time") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"the {self.name} service did not answer in time") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                f"the {self.name} service at {self.url} could not be reached ({type(exc).__name__})"
            ) from exc
        version = response.headers.get(VERSION_HEADER)
        if version is not None and version != self.version:
            self.observe(version)
        status = response.status_code
        if status < 500:
            return Upstream(status, response.content, version)
        if status == 503:
            raise UpstreamUnavailable(f"the {self.name} service is not ready: {_detail(response)}")
        if status == 504:
            raise UpstreamTimeout(f"the {self.name} service timed out: {_detail(response)}")
        raise UpstreamError(f"the {self.name} service failed (HTTP {status}): {_detail(response)}")

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
        """Poll ``/readyz`` once and record readiness, version and detail; never raises."""
        try:
            response = await self.client.get("/readyz", timeout=timeout or httpx.USE_CLIENT_DEFAULT)
            body = response.json()
            if not isinstance(body, dict):
                raise ValueError("readyz body is not a JSON object")
        except httpx.TimeoutException:
            self._record(False, self.version, "did not answer /readyz in time")
            return
        except httpx.TransportError as exc:
            self._record(False, self.version, f"unreachable at {self.url} ({type(exc).__name__})")
            return
        except ValueError as exc:
            self._record(False, self.version, f"bad /readyz answer: {exc}")
            return
        version = body.get("version") or response.headers.get(VERSION_HEADER)
        ready = response.status_code == 200 and body.get("status") == "ready"
        detail = body.get("detail")
        if not ready and detail is None:
            detail = f"/readyz answered HTTP {response.status_code}"
        # A service that is not ready may still serve its old version; keep the last one we knew otherwise.
        self._record(ready, version or self.version, detail if isinstance(detail, str) else json.dumps(detail))

    def _record(self, ready: bool, version: str | None, detail: str | None) -> None:
        if version != self.version and self.version is not None:
            log.info("%s service now serves version %s (was %s)", self.name, version, self.version)
        if ready != self.ready:
            (log.info if ready else log.warning)(
                "%s service is %s%s", self.name, "ready" if ready else "not ready", f": {detail}" if detail else ""
            )
        self.version, self.ready, self.detail = version, ready, detail

    def status(self) -> dict:
        """This service's entry in the gateway's ``/readyz``."""
        return {
            "status": "ready" if self.ready else "not_ready",
            "url": self.url,
            "version": self.version,
            "detail": self.detail,
        }

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        await self.client.aclose()
