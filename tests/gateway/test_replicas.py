"""Several replicas of a service behind one gateway process: requests are balanced over them, a replica that
fails its health check (or refuses connections) is ejected and readmitted when it recovers. Real uvicorn
processes over real HTTP: the gateway, and both the rating service's real processes and fakes served on
loopback (the fakes count the requests each one received)."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from chorus.launcher import free_port
from tests.gateway.fakes import FakeService, asgi_app
from tests.gateway.processes import serve_in_thread, uvicorn_process

pytestmark = pytest.mark.timeout(120)

POLL = "0.2"  # seconds between the gateway's /readyz polls, so ejection and readmission show up quickly
TOKEN = "replica-test-token"  # the replicas' states are readiness details, shown with the status token


def call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def replicas_status(gateway: str) -> dict[str, str]:
    _, body = call(f"{gateway}/readyz", token=TOKEN)
    return {r["url"]: r["status"] for r in body["services"]["rating"]["replicas"]}


def wait_for(condition, seconds: float = 15.0, show=None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {seconds} s: {show() if show else ''}")
        time.sleep(0.05)


PAIRS = {"pairs": [{"user_id": "U1", "item_id": "B001"}]}


@pytest.fixture
def fakes():
    """A fake similarity service, two fake rating replicas, and a gateway process over both replicas."""
    sim, r1, r2 = FakeService("similarity", "s1"), FakeService("rating", "r1"), FakeService("rating", "r1")
    with contextlib.ExitStack() as stack:
        sim_url = stack.enter_context(serve_in_thread(asgi_app(sim)))
        urls = [stack.enter_context(serve_in_thread(asgi_app(r))) for r in (r1, r2)]
        env = {
            "CHORUS_SIMILARITY_URL": sim_url,
            "CHORUS_RATING_URL": ",".join(urls),
            "CHORUS_VERSION_POLL_INTERVAL": POLL,
            "CHORUS_STATUS_TOKEN": TOKEN,
            "REDIS_URL": "",
        }
        gateway = stack.enter_context(uvicorn_process("chorus.services.gateway.app:create_app", env))
        yield gateway, (r1, r2), urls


def test_requests_are_balanced_over_the_replicas(fakes):
    gateway, (r1, r2), urls = fakes
    assert replicas_status(gateway) == {urls[0]: "ready", urls[1]: "ready"}
    for _ in range(20):
        assert call(f"{gateway}/v1/predict", PAIRS)[0] == 200  # POST: never cached, always downstream
    assert r1.api_calls() == r2.api_calls() == 10


def test_a_replica_failing_its_health_check_is_ejected_then_readmitted(fakes):
    gateway, (r1, r2), urls = fakes
    r1.ready = False
    wait_for(lambda: replicas_status(gateway)[urls[0]] == "not_ready")
    _, ready = call(f"{gateway}/readyz")
    assert ready["services"]["rating"]["status"] == "ready"  # the service still is: one replica serves
    before = r1.api_calls()
    for _ in range(6):
        assert call(f"{gateway}/v1/predict", PAIRS)[0] == 200
    assert r1.api_calls() == before and r2.api_calls() >= 6
    r1.ready = True
    wait_for(lambda: replicas_status(gateway)[urls[0]] == "ready")
    for _ in range(6):
        assert call(f"{gateway}/v1/predict", PAIRS)[0] == 200
    assert r1.api_calls() == before + 3


def test_no_ready_replica_is_a_503_naming_the_service(fakes):
    gateway, (r1, r2), _ = fakes
    r1.mode = r2.mode = "unready"
    status, body = call(f"{gateway}/v1/predict", PAIRS)
    assert status == 503 and "rating" in body["detail"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    from chorus.training.train import train
    from tests.conftest import real_file

    data = real_file("amazon-customer-reviews-tsv-sample", "amazon_reviews_us_sample_761rows.tsv")
    root = tmp_path_factory.mktemp("replica-artifacts")
    train(data, root, ["rating", "ranking"], progress=False, log=lambda _: None, workers=1)
    return root


def test_real_replicas_survive_one_stopping_and_take_it_back(artifacts):
    env = {"CHORUS_ARTIFACTS": str(artifacts), "CHORUS_RELOAD_INTERVAL": "60", "CHORUS_STATUS_TOKEN": TOKEN}
    app = "chorus.services.rating.app:create_app"
    ports = [free_port(), free_port()]
    sim = FakeService("similarity", "s1")
    with contextlib.ExitStack() as stack:
        sim_url = stack.enter_context(serve_in_thread(asgi_app(sim)))
        first = stack.enter_context(contextlib.ExitStack())
        urls = [first.enter_context(uvicorn_process(app, env, port=ports[0]))]
        urls.append(stack.enter_context(uvicorn_process(app, env, port=ports[1])))
        gateway_env = {
            "CHORUS_SIMILARITY_URL": sim_url,
            "CHORUS_RATING_URL": ",".join(urls),
            "CHORUS_VERSION_POLL_INTERVAL": POLL,
            "CHORUS_STATUS_TOKEN": TOKEN,
            "REDIS_URL": "",
        }
        gateway = stack.enter_context(uvicorn_process("chorus.services.gateway.app:create_app", gateway_env))
        wait_for(
            lambda: set(replicas_status(gateway).values()) == {"ready"},
            show=lambda: call(f"{gateway}/readyz", token=TOKEN),
        )
        status, want = call(f"{gateway}/v1/stats")
        assert status == 200
        first.close()  # stop replica 1: its port now refuses connections
        for _ in range(6):  # every request is answered, by replica 2, including those sent to 1 before ejection
            status, body = call(f"{gateway}/v1/predict", PAIRS)
            assert status == 200, body
        wait_for(lambda: replicas_status(gateway)[urls[0]] == "not_ready")
        stack.enter_context(uvicorn_process(app, env, port=ports[0]))  # replica 1 is back, same address
        wait_for(lambda: replicas_status(gateway)[urls[0]] == "ready")
        _, ready = call(f"{gateway}/readyz", token=TOKEN)
        assert ready["services"]["rating"]["status"] == "ready" and ready["services"]["rating"]["detail"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://a:8002,,http://b:8002", "without empty entries"),
        ("http://a:8002,b:8002", "must start with http:// or https://, got b:8002"),
        ("http://a:8002,http://a:8002", "listed twice"),
    ],
)
def test_bad_replica_lists_are_refused_naming_the_problem(value, message):
    from pydantic import ValidationError

    from chorus.services.gateway.settings import Settings

    with pytest.raises(ValidationError, match=message):
        Settings(rating_url=value)
    assert Settings(rating_url=" http://a:8002 , http://b:8002").urls("rating") == ["http://a:8002", "http://b:8002"]
