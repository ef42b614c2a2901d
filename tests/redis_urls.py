"""The Redis databases the test suite may flush, from the environment.

``CHORUS_TEST_REDIS_URL`` names the database the gateway's cache tests own (default
``redis://127.0.0.1:6379/15``) and ``CHORUS_TEST_E2E_REDIS_URL`` the one the end-to-end tests own (default
``redis://127.0.0.1:6379/14``). Only these databases are ever flushed, so two suites running at once (or a
Redis someone else uses) stay apart by pointing these at different databases or servers.
"""

from __future__ import annotations

import os

from redis.connection import parse_url

GATEWAY_REDIS_URL = os.environ.get("CHORUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
E2E_REDIS_URL = os.environ.get("CHORUS_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/14")


def address(url: str) -> tuple[str, int]:
    """The host and port of a Redis URL (for the proxy that cuts the connection in the outage tests)."""
    parts = parse_url(url)
    return str(parts.get("host", "127.0.0.1")), int(parts.get("port", 6379))


def database(url: str) -> int:
    return int(parse_url(url).get("db", 0))
