"""Dependency aliases for the gateway's handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chorus.services.gateway.core import Gateway
from chorus.services.gateway.events import Events


async def get_gateway(request: Request) -> Gateway:
    # async on purpose: a plain def dependency would be run in the thread pool, on the hot path of every hit
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="One of the gateway's CHORUS_API_KEYS, as Authorization: Bearer <key>",
)


async def get_events(request: Request) -> Events:
    """The event store's access, when one is configured and open (else the 503 that says why not)."""
    events: Events = request.app.state.gateway.events
    events.require()
    return events


async def api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Let the request through only with one of the configured API keys (see :mod:`.keys`)."""
    request.app.state.api_keys.check(None if credentials is None else credentials.credentials)


EventsDep = Annotated[Events, Depends(get_events)]
"""The event store's access; declared before :data:`ApiKeyDep`, so a gateway without a store says so first."""
ApiKeyDep = Annotated[None, Depends(api_key)]
