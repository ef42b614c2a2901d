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


async def keyed_events(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Events:
    """The event store's access, for a request with one of the configured API keys (see :mod:`.keys`).

    The key is checked first (a 401 without one, a 403 with a wrong one, a 503 when the gateway has no keys),
    then the store (a 503 when none is configured or open): a caller without a key learns nothing about the
    store. Both checks in one dependency: the event routes are the hot write path, and FastAPI's cost per
    request grows with each dependency it solves."""
    events: Events = request.app.state.gateway.events
    request.app.state.api_keys.check(None if credentials is None else credentials.credentials)
    events.require()
    return events


KeyedEventsDep = Annotated[Events, Depends(keyed_events)]
"""The event store's access, once the request showed an API key."""
