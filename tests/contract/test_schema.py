"""Each service's OpenAPI document against what it does, with schemathesis: every check (``--checks all``) over
requests generated from the document, valid and invalid ones, for the similarity and rating services over a tiny
artifact and for the gateway in front of them (and of an event store, with an API key).

A failure names the operation and the disagreement: a schema-valid request refused, an invalid one accepted, an
undocumented status, a body that does not match its model, a wrong ``Allow``. The run is bounded and repeatable:
few examples per operation, derandomized (the same requests every run), no example database.
"""

from __future__ import annotations

import tomllib

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from chorus.services.gateway.app import create_app as create_gateway
from chorus.services.gateway.settings import Settings as GatewaySettings
from chorus.services.rating.app import create_app as create_rating
from chorus.services.rating.settings import Settings as RatingSettings
from chorus.services.similarity.app import create_app as create_similarity
from chorus.services.similarity.settings import Settings as SimilaritySettings
from tests.conftest import REPO, add_ranking, train_tiny

KEY = "contract-test-key"
BOUNDED = settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis's lazy schemas rename the test node through ``_nodeid``, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A tiny version with every component: similarity, rating, the review scorer and every ranker."""
    root = train_tiny(tmp_path_factory.mktemp("schema-artifacts"), 1500, 7, ["similarity", "rating", "text"])
    add_ranking(root)
    return root


@pytest.fixture(scope="module")
def similarity(root):
    with TestClient(create_similarity(SimilaritySettings(artifacts=root, reload_interval=3600))) as client:
        yield client.app


@pytest.fixture(scope="module")
def rating(root):
    with TestClient(create_rating(RatingSettings(artifacts=root, reload_interval=3600))) as client:
        yield client.app


#: the repository's settings (413 counts as a rejection, see the file), with generation made repeatable
CONFIG = {**tomllib.loads((REPO / "schemathesis.toml").read_text()), "generation": {"deterministic": True}}


def _schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture(scope="module")
def similarity_schema(similarity):
    return _schema(similarity)


@pytest.fixture(scope="module")
def rating_schema(rating):
    return _schema(rating)


@pytest.fixture(scope="module")
def gateway_schema(similarity, rating, tmp_path_factory):
    """The gateway over the two services in this process (their lifespans run by their test clients)."""
    events = tmp_path_factory.mktemp("schema-events") / "events.db"
    config = GatewaySettings(
        similarity_url="http://similarity.test",
        rating_url="http://rating.test",
        redis_url=None,
        events_url=f"sqlite:///{events}",
        api_keys=KEY,
        version_poll_interval=3600,
    )
    transports = {"similarity": httpx.ASGITransport(similarity), "rating": httpx.ASGITransport(rating)}
    return _schema(create_gateway(config, transports=transports))


similarity_api = schemathesis.pytest.from_fixture("similarity_schema")
rating_api = schemathesis.pytest.from_fixture("rating_schema")
gateway_api = schemathesis.pytest.from_fixture("gateway_schema")


@similarity_api.parametrize()
@BOUNDED
def test_the_similarity_service_does_what_its_schema_says(case):
    case.call_and_validate()


@rating_api.parametrize()
@BOUNDED
def test_the_rating_service_does_what_its_schema_says(case):
    case.call_and_validate()


@gateway_api.parametrize()
@BOUNDED
def test_the_gateway_does_what_its_schema_says(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"} if "/events" in case.path else None)


def test_an_unready_service_answers_as_its_schema_says(tmp_path):
    """Before any version is published every route of a service answers 503 not_ready (``/readyz`` its
    readiness): bodies the document must allow beside the overload 503 (schemathesis counts a 503 a server
    error, so the runs above never see one)."""
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    with TestClient(create_similarity(SimilaritySettings(artifacts=tmp_path, reload_interval=3600))) as client:
        schema = _schema(client.app)
        answered = []
        for path, query in [("/readyz", {}), ("/v1/stats", {}), ("/v1/items", {"q": "guitar"})]:
            case = schema[path]["GET"].Case(query=query)
            response = case.call_and_validate(checks=[response_schema_conformance, content_type_conformance])
            answered.append((response.status_code, response.json().get("type", response.json().get("status"))))
    assert answered == [(503, "not_ready"), (503, "not_ready"), (503, "not_ready")]
