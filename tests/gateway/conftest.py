"""Fixtures: a gateway whose downstream services are :class:`FakeService` fakes behind ``httpx.MockTransport``."""

from __future__ import annotations

import warnings

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from chorus.services.gateway.app import create_app
from chorus.services.gateway.settings import Settings
from tests.gateway.fakes import FakeService
from tests.redis_urls import GATEWAY_REDIS_URL

REDIS_TEST_URL = GATEWAY_REDIS_URL  # the gateway tests' own database: flushed before and after each test

warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")


@pytest.fixture
def sim() -> FakeService:
    return FakeService("similarity", version="sim-v1")


@pytest.fixture
def rat() -> FakeService:
    return FakeService("rating", version="rat-v1")


def make_settings(**overrides) -> Settings:
    base = {
        "similarity_url": "http://similarity.test",
        "rating_url": "http://rating.test",
        "redis_url": None,
        "version_poll_interval": 60.0,  # tests trigger re-polls themselves
        "read_timeout": 2.0,
    }
    return Settings(**{**base, **overrides})


def make_client(sim: FakeService, rat: FakeService, **overrides) -> TestClient:
    transports = {"similarity": httpx.MockTransport(sim), "rating": httpx.MockTransport(rat)}
    return TestClient(create_app(make_settings(**overrides), transports=transports))


@pytest.fixture
def client(sim: FakeService, rat: FakeService):
    with make_client(sim, rat) as c:
        yield c


@pytest.fixture
def redis_db():
    """The gateway tests' own Redis database, flushed before and after the test."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the cache tests need Redis at {REDIS_TEST_URL}: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
