"""Dependency aliases for the gateway's handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chorus.services.gateway.core import Gateway


async def get_gateway(request: Request) -> Gateway:
    # async on purpose: a plain def dependency would be run in the thread pool, on the hot path of every hit
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
