"""Contract tests of the gateway's API against fakes of both services (in-process LRU cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from chorus.shared.contract.names import MAX_ID_LENGTH
from tests.gateway.conftest import make_client


def body(response) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(response.content))


# --- routing: each public route reaches the right service with a canonical query -----------------------


@pytest.mark.parametrize(
    ("url", "service", "downstream"),
    [
        ("/v1/items/B001/similar", "sim", "/v1/items/B001/similar?k=10&measure=jaccard&min_common=1"),
        (
            "/v1/items/B001/similar?measure=cosine&min_common=2&k=3",
            "sim",
            "/v1/items/B001/similar?k=3&measure=cosine&min_common=2",
        ),
        ("/v1/users/U1/similar?measure=pearson", "sim", "/v1/users/U1/similar?k=10&measure=pearson&min_common=1"),
        ("/v1/users/U1/recommendations", "rat", "/v1/users/U1/recommendations?k=10"),
        ("/v1/users/U1/recommendations?method=model&k=2", "rat", "/v1/users/U1/recommendations?k=2&method=latent"),
        ("/v1/users/U1/recommendations?method=ease", "rat", "/v1/users/U1/recommendations?k=10&method=ease"),
        (
            "/v1/users/U1/recommendations?exclude=B003&method=popular&exclude=B%20004&exclude=B003",
            "rat",
            "/v1/users/U1/recommendations?k=10&method=popular&exclude=B+004&exclude=B003",
        ),
        ("/v1/users/U1/recommendations?method=similar", "sim", "/v1/users/U1/recommendations?k=10"),
        (
            "/v1/users/U1/recommendations?exclude=B003&method=similar&exclude=NOPE",
            "sim",
            "/v1/users/U1/recommendations?k=10&exclude=B003&exclude=NOPE",
        ),
        ("/v1/predict?user_id=U1&item_id=B003", "rat", "/v1/predict?user_id=U1&item_id=B003"),
        ("/v1/items/B002", "sim", "/v1/items/B002"),
        ("/v1/items?q=guitar%20strap", "sim", "/v1/items?q=guitar+strap&limit=20"),
        ("/v1/stats", "sim", "/v1/stats"),
        ("/v1/items/B%20004/similar?k=1", "sim", "/v1/items/B%20004/similar?k=1&measure=jaccard&min_common=1"),
    ],
)
def test_route_reaches_its_service_and_passes_the_body_through(client, sim, rat, url, service, downstream):
    fake, other = (sim, rat) if service == "sim" else (rat, sim)
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert len(fake.requests) == 1 and other.api_calls() == 0
    sent = fake.requests[0]
    assert sent.url.raw_path.decode() == downstream
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-model-version"] == fake.version
    assert response.headers["x-cache"] == "miss"


def test_second_identical_request_is_a_hit_with_the_same_bytes(client, sim):
    first = client.get("/v1/items/B001/similar")
    second = client.get("/v1/items/B001/similar?k=10&measure=jaccard&min_common=1")  # defaults spelled out
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.content == first.content
    assert second.headers["x-model-version"] == "sim-v1"
    assert sim.api_calls() == 1
    assert client.get("/v1/items/B001/similar?k=9").headers["x-cache"] == "miss"


def test_no_cache_request_skips_the_lookup_but_refreshes_the_entry(client, sim):
    client.get("/v1/stats")
    fresh = client.get("/v1/stats", headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-cache"] == "miss"
    assert sim.api_calls() == 2
    assert client.get("/v1/stats").headers["x-cache"] == "hit"


def test_post_predict_goes_to_rating_uncached(client, rat, sim):
    pairs = {"pairs": [{"user_id": "U1", "item_id": "B003"}, {"user_id": "X", "item_id": "B001"}]}
    for _ in range(2):
        response = client.post("/v1/predict", json=pairs)
        assert response.status_code == 200
        assert response.headers["x-cache"] == "bypass"
        assert response.headers["x-model-version"] == "rat-v1"
    assert body(response)["count"] == 2
    assert json.loads(rat.requests[0].content) == pairs
    assert rat.api_calls() == 2 and sim.api_calls() == 0


def test_recommendations_are_cached_per_method_and_exclude_set(client, rat):
    first = client.get("/v1/users/U1/recommendations?exclude=B003&exclude=NOPE")
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    assert body(first)["model"] == "ease" and body(first)["unknown_exclude"] == ["NOPE"]
    assert "B003" not in {d["item_id"] for d in body(first)["data"]}
    again = client.get("/v1/users/U1/recommendations?exclude=NOPE&k=10&exclude=B003&exclude=NOPE")
    assert again.headers["x-cache"] == "hit" and again.content == first.content
    assert rat.api_calls() == 1
    # the default ranker and the same ranker by name are keyed apart; model and latent are one key
    assert client.get("/v1/users/U1/recommendations?method=ease&exclude=B003&exclude=NOPE").headers["x-cache"] == "miss"
    assert client.get("/v1/users/U1/recommendations?method=model").headers["x-cache"] == "miss"
    latent = client.get("/v1/users/U1/recommendations?method=latent")
    assert latent.headers["x-cache"] == "hit" and body(latent)["model"] == "latent"
    assert client.get("/v1/users/U1/recommendations?exclude=B003").headers["x-cache"] == "miss"
    assert rat.api_calls() == 4


def test_a_method_the_version_does_not_serve_is_the_services_422_uncached(client, rat):
    for _ in range(2):
        response = client.get("/v1/users/U1/recommendations?method=ials")
        assert response.status_code == 422 and response.headers["x-cache"] == "miss"
        assert body(response) == {
            "type": "invalid_input",
            "detail": "method 'ials' is not served by version rat-v1: choose one of ease, popular, latent",
        }
    assert rat.api_calls() == 2


def test_post_recommendations_goes_to_rating_uncached(client, rat, sim):
    basket = {"items": ["B001", "NOPE"], "k": 2, "exclude": ["B003"]}
    for _ in range(2):
        response = client.post("/v1/recommendations", json=basket)
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "bypass" and response.headers["x-model-version"] == "rat-v1"
    got = body(response)
    assert got["model"] == "ease" and got["unknown_items"] == ["NOPE"] and got["fallback"] is None
    assert [d["item_id"] for d in got["data"]] == ["B002", "B 004"]
    assert json.loads(rat.requests[0].content) == basket
    assert rat.api_calls() == 2 and sim.api_calls() == 0
    response = client.post("/v1/recommendations", json={"items": [], "method": "popular"})
    assert body(response)["fallback"] == "popular" and body(response)["model"] == "popular"
    calls = rat.api_calls()
    for method in ("latent", "model", "similar"):  # no ranker: the schema's enum refuses them, as documented
        response = client.post("/v1/recommendations", json={"items": ["B001"], "method": method})
        assert response.status_code == 422 and body(response)["detail"].startswith("method: Input should be 'ease'")
    assert rat.api_calls() == calls


@pytest.mark.parametrize(
    ("basket", "names"),
    [
        ({"items": ["B001"], "k": 0}, ["k: "]),
        ({"items": ["B001"], "k": 501}, ["k: "]),
        ({"items": [""]}, ["items.0: "]),
        ({"items": ["B001"] * 10_001}, ["items: ", "10000"]),
        ({"items": ["B001"], "exclude": ["x"] * 501}, ["exclude: ", "500"]),
        ({"items": ["B001"], "method": "magic"}, ["method: "]),
        ({"item": ["B001"]}, ["item: "]),
    ],
)
def test_bad_baskets_are_refused_by_the_gateway(client, rat, basket, names):
    response = client.post("/v1/recommendations", json=basket)
    assert response.status_code == 422
    error = body(response)
    assert error["type"] == "invalid_input"
    for name in names:
        assert name in error["detail"]
    assert rat.api_calls() == 0


def test_every_method_answers_in_one_shape(client):
    shapes = set()
    for method in ("similar", "ease", "latent", "model", None):
        query = {"method": method, "exclude": ["B003", "NOPE"]} if method else {}
        got = body(client.get("/v1/users/U1/recommendations", params=query))
        shapes.add((tuple(sorted(got)), tuple(sorted(got["data"][0]))))
        assert isinstance(got["data"][0]["because"], list | None) and got["model"] == (method or "ease").replace(
            "model", "latent"
        )
        if method:
            assert got["unknown_exclude"] == ["NOPE"] and "B003" not in {d["item_id"] for d in got["data"]}
    assert len(shapes) == 1


# --- bad input: refused by the gateway, never sent on --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("/v1/items/B001/similar?k=0", ["query.k: "]),
        ("/v1/items/B001/similar?k=501", ["query.k: "]),
        ("/v1/items/B001/similar?k=ten", ["query.k: "]),
        ("/v1/items/B001/similar?measure=euclid", ["query.measure: ", "jaccard"]),
        ("/v1/items/B001/similar?min_common=0", ["query.min_common: "]),
        ("/v1/users/U1/similar?measure=nope", ["query.measure: "]),
        ("/v1/users/U1/recommendations?method=magic", ["query.method: ", "'ease'", "'latent'", "'similar'"]),
        ("/v1/users/U1/recommendations?exclude=", ["query.exclude.0: "]),
        (
            "/v1/users/U1/recommendations?exclude=" + "x" * (MAX_ID_LENGTH + 1),
            ["query.exclude.0: ", str(MAX_ID_LENGTH)],
        ),
        ("/v1/users/U1/recommendations?" + "exclude=x&" * 501, ["query.exclude: ", "500"]),
        ("/v1/predict?user_id=U1", ["query.item_id: "]),
        ("/v1/items?q=", ["query.q: "]),
        ("/v1/items?q=%20%0B%00", ["query.q: empty"]),
        ("/v1/items?q=a&limit=0", ["query.limit: "]),
    ],
)
def test_bad_input_is_a_422_with_a_clear_message(client, sim, rat, url, names):
    response = client.get(url)
    assert response.status_code == 422
    error = body(response)
    assert error["type"] == "invalid_input"
    for name in names:
        assert name in error["detail"]
    assert error["errors"] and all({"loc", "msg", "type"} == set(e) for e in error["errors"])
    assert sim.api_calls() == rat.api_calls() == 0


def test_validation_errors_are_worded_as_the_services_word_them(client):
    """The gateway installs the shell's error handlers, so a 422 reads the same from the gateway or a service."""
    from fastapi import FastAPI, Query
    from fastapi.testclient import TestClient

    from chorus.shared.http.shell import install_error_handlers

    service = FastAPI()
    install_error_handlers(service)

    @service.get("/v1/items/{item_id}/similar")
    def similar(item_id: str, k: int = Query(10, ge=1, le=500)) -> dict[str, Any]:
        return {}

    url = "/v1/items/B001/similar?k=0"
    assert body(client.get(url)) == TestClient(service).get(url).json()


def test_batch_predict_is_bounded(client, rat):
    too_many = {"pairs": [{"user_id": "U1", "item_id": "B001"}] * 10_001}
    response = client.post("/v1/predict", json=too_many)
    assert response.status_code == 422 and "pairs" in body(response)["detail"]
    assert client.post("/v1/predict", json={"pairs": []}).status_code == 422
    assert (
        client.post("/v1/predict", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    )
    assert rat.api_calls() == 0


def test_unknown_gateway_route_is_a_json_404(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and body(response)["type"] == "not_found"
    response = client.delete("/v1/stats")
    assert response.status_code == 405 and set(body(response)) == {"type", "detail"}


# --- ids the HTTP client or the router would misread ----------------------------------------------------


@pytest.mark.parametrize("dots", [".", ".."])
@pytest.mark.parametrize(
    ("url", "kind", "downstream"),
    [
        ("/v1/items/{}/similar", "item", "/v1/items/{}/similar?k=10&measure=jaccard&min_common=1"),
        ("/v1/items/{}", "item", "/v1/items/{}"),
        ("/v1/users/{}/similar", "user", "/v1/users/{}/similar?k=10&measure=jaccard&min_common=1"),
        ("/v1/users/{}/recommendations?method=similar", "user", "/v1/users/{}/recommendations?k=10"),
    ],
)
def test_dot_ids_reach_the_service_as_ids(client, sim, dots, url, kind, downstream):
    # A client sends them encoded (httpx would resolve a literal ``..`` before sending); the gateway must too.
    response = client.get(url.format(dots.replace(".", "%2E")))
    assert response.status_code == 404
    assert body(response) == {"type": "not_found", "detail": f"unknown {kind} '{dots}'"}
    assert sim.requests[-1].url.raw_path.decode() == downstream.format("%2E" * len(dots))


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("/v1/items/a%2Fb/similar", "unknown item 'a/b'"),
        ("/v1/items/a%2fb", "unknown item 'a/b'"),
        ("/v1/items/B001%2Fsimilar", "unknown item 'B001/similar'"),  # decoded, another route: never taken
        ("/v1/users/U1%2Fsimilar", "unknown user 'U1/similar'"),
        ("/v1/users/a%2Fb/recommendations?method=similar", "unknown user 'a/b'"),
    ],
)
def test_ids_with_a_slash_are_a_404_naming_the_id(client, sim, rat, url, detail):
    client.get("/v1/items/B001/similar")  # cached: a slashed id must not be answered from it either
    calls = sim.api_calls() + rat.api_calls()
    response = client.get(url)
    assert response.status_code == 404
    assert body(response) == {"type": "not_found", "detail": f"{detail}: ids containing '/' are not supported"}
    assert sim.api_calls() + rat.api_calls() == calls


# --- downstream errors ---------------------------------------------------------------------------------


def test_downstream_404_passes_through_uncached(client, sim):
    for _ in range(2):
        response = client.get("/v1/items/NOPE/similar")
        assert response.status_code == 404
        assert body(response) == {"type": "not_found", "detail": "unknown item 'NOPE'"}
        assert response.headers["x-cache"] == "miss"
    assert sim.api_calls() == 2


def test_downstream_422_passes_through_with_its_body(client, sim):
    sim.mode = "reject422"  # a service stricter than the gateway answers with FastAPI's own error shape
    response = client.get("/v1/items/B001/similar?k=500")
    assert response.status_code == 422
    assert body(response) == {"detail": [{"loc": ["query", "k"], "msg": "bad k", "type": "int_parsing"}]}
    assert response.headers["x-cache"] == "miss"


def test_unreachable_service_is_503_naming_it_and_the_other_still_answers(client, sim, rat):
    rat.mode = "refuse"
    response = client.get("/v1/predict?user_id=U1&item_id=B001")
    assert response.status_code == 503
    error = body(response)
    assert error["type"] == "upstream_unavailable" and "rating service" in error["detail"]
    assert client.get("/v1/items/B001/similar").status_code == 200
    assert client.get("/v1/users/U1/recommendations?method=similar").status_code == 200


def test_slow_service_is_504_naming_it(client, sim):
    sim.mode = "timeout"
    response = client.get("/v1/items/B001")
    assert response.status_code == 504
    assert body(response) == {"type": "upstream_timeout", "detail": "the similarity service did not answer in time"}


def test_service_errors_name_the_service(client, sim, rat):
    sim.mode = "error500"
    response = client.get("/v1/stats")
    assert response.status_code == 502
    assert body(response)["type"] == "upstream_error" and "similarity service" in body(response)["detail"]
    rat.mode = "unready"
    response = client.get("/v1/users/U1/recommendations")
    assert response.status_code == 503 and "rating service is not ready" in body(response)["detail"]


# --- versions: a new model never serves an old answer ---------------------------------------------------


def test_new_version_from_readyz_changes_the_key(client, sim):
    old = client.get("/v1/items/B001/similar")
    assert client.get("/v1/items/B001/similar").headers["x-cache"] == "hit"
    sim.version = "sim-v2"
    client.get("/readyz")  # what the background poll does every CHORUS_VERSION_POLL_INTERVAL seconds
    new = client.get("/v1/items/B001/similar")
    assert new.headers["x-cache"] == "miss" and new.headers["x-model-version"] == "sim-v2"
    assert body(new)["version_seen"] == "sim-v2" and body(old)["version_seen"] == "sim-v1"
    again = client.get("/v1/items/B001/similar")
    assert again.headers["x-cache"] == "hit" and again.headers["x-model-version"] == "sim-v2"


def test_an_answer_from_a_new_version_triggers_a_repoll(client, sim):
    import time

    client.get("/v1/items/B001/similar")
    sim.version = "sim-v2"
    polls = sim.calls["/readyz"]
    client.get("/v1/items/B002")  # a miss, answered by v2: the gateway re-polls /readyz at once
    deadline = time.monotonic() + 2
    while sim.calls["/readyz"] == polls and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    response = client.get("/v1/items/B001/similar")
    assert response.headers["x-cache"] == "miss" and response.headers["x-model-version"] == "sim-v2"


def test_background_poll_follows_the_version(sim, rat):
    import time

    with make_client(sim, rat, version_poll_interval=0.05) as c:
        c.get("/v1/stats")
        sim.version = "sim-v3"
        time.sleep(0.3)
        response = c.get("/v1/stats")
    assert response.headers["x-cache"] == "miss" and response.headers["x-model-version"] == "sim-v3"


# --- health, readiness, docs ---------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and body(response) == {"status": "ok"}


def test_readyz_lists_services_versions_and_cache(sim, rat):
    auth = {"Authorization": "Bearer s3cret"}
    with make_client(sim, rat, status_token="s3cret") as client:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert body(response) == {  # the public answer: no URL, no detail
            "status": "ready",
            "services": {
                "similarity": {"status": "ready", "version": "sim-v1"},
                "rating": {"status": "ready", "version": "rat-v1"},
            },
            "cache": {"status": "ok"},
            "events": {"status": "off"},  # no event store configured
        }
        ready = body(client.get("/readyz", headers=auth))
        assert ready["cache"]["backend"] == "memory" and "REDIS_URL" in ready["cache"]["detail"]
        assert "CHORUS_EVENTS_URL" in ready["events"]["detail"]
        assert ready["services"]["rating"]["url"] == "http://rating.test"
        client.get("/v1/items/B001")
        assert sim.requests[-1].headers["authorization"] == "Bearer s3cret"  # passed on, for the services' details
        rat.ready = False
        response = client.get("/readyz")
        assert response.status_code == 503
        assert body(response)["services"]["rating"] == {"status": "not_ready", "version": "rat-v1"}
        ready = body(client.get("/readyz", headers=auth))
        assert ready["status"] == "not_ready"
        assert ready["services"]["rating"] == {
            "status": "not_ready",
            "url": "http://rating.test",
            "version": "rat-v1",  # the last version it served
            "detail": "no artifact loaded",
        }
        rat.mode = "refuse"
        assert "unreachable" in body(client.get("/readyz", headers=auth))["services"]["rating"]["detail"]
        assert client.get("/readyz", headers={"Authorization": "Bearer guess"}).status_code == 401


def test_readyz_without_a_configured_token_never_shows_details(client):
    assert client.get("/readyz", headers={"Authorization": "Bearer anything"}).status_code == 401
    assert "url" not in json.dumps(body(client.get("/readyz")))


def test_openapi_documents_every_route(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in [
        "/v1/items/{item_id}/similar",
        "/v1/users/{user_id}/similar",
        "/v1/users/{user_id}/recommendations",
        "/v1/predict",
        "/v1/items/{item_id}",
        "/v1/items",
        "/v1/stats",
        "/healthz",
        "/readyz",
    ]:
        assert path in paths
    similar = paths["/v1/items/{item_id}/similar"]["get"]
    assert {"200", "404", "422", "503", "504"} <= set(similar["responses"])
    assert "X-Cache" in similar["responses"]["200"]["headers"]
    assert "post" in paths["/v1/predict"]
    ranked = paths["/v1/users/{user_id}/recommendations"]["get"]
    assert {"200", "404", "422", "503", "504"} <= set(ranked["responses"])
    names = {p["name"] for p in ranked["parameters"]}
    assert {"k", "method", "exclude"} <= names
    refs = json.dumps(ranked["responses"]["200"])
    assert "RankedRecommendationsPublic" in refs and "Because" not in refs  # one shape for every method
    basket = paths["/v1/recommendations"]["post"]
    assert "BasketRequest" in json.dumps(basket["requestBody"])
    assert "BasketRecommendationsPublic" in json.dumps(basket["responses"]["200"])
    assert {"422", "503", "504"} <= set(basket["responses"])
    assert client.get("/docs").status_code == 200


def test_predict_documents_unknown_ids_as_a_flagged_fallback_in_openapi_and_readme(client):
    """One behaviour for unknown ids at /v1/predict: 200 with ``fallback`` set (the rating service's code:
    tests/rating/test_api.py), documented as such in the OpenAPI schema and the README (never 404)."""
    paths = client.get("/openapi.json").json()["paths"]
    for method in ("get", "post"):
        route = paths["/v1/predict"][method]
        assert "404" not in route["responses"] and {"200", "422", "503", "504"} <= set(route["responses"])
    assert "fallback prediction flagged in ``fallback``" in paths["/v1/predict"]["get"]["description"]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "`/v1/predict` never answers 404" in readme


def test_every_route_documents_the_refusals_of_the_http_layer(client):
    """408, 413, 414 and 431 on every operation, and 503 overloaded beside each route's own 503 (not on the probes
    and scrapes that are never shed)."""
    doc = client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"408", "413", "414", "431"} <= set(responses), (method, path)
            shed = json.dumps(responses.get("503", {}))
            assert ("OverloadedPublic" in shed) == (path != "/healthz"), (method, path)
    overloaded = doc["components"]["schemas"]["OverloadedPublic"]["properties"]["type"]
    assert overloaded["const"] == "overloaded"
    predict = doc["paths"]["/v1/predict"]["post"]["responses"]["503"]["content"]["application/json"]["schema"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in predict["anyOf"]] == [
        "UpstreamUnavailablePublic",
        "NotReadyPublic",
        "OverloadedPublic",
    ]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/predict", "GET, POST"),
        ("PUT", "/v1/predict", "GET, POST"),
        ("DELETE", "/v1/items/B001", "GET"),
        ("POST", "/readyz", "GET"),
        ("GET", "/v1/events", "POST"),
        ("PUT", "/v1/users/U1", "DELETE"),
    ],
)
def test_a_405_names_every_method_of_the_path(client, method, path, allowed):
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allowed
    assert body(response) == {
        "type": "method_not_allowed",
        "detail": f"{method} is not allowed on {path}; it allows {allowed}",
    }


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/recommendations", "/v1/reviews/score", "/v1/events"])
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x0b\xff\xfe", "not valid UTF-8: byte 0xff at character 1"),
        (b"{\x00\x00\x00", "at character 1"),  # json would guess UTF-32 from the NULs and fail unworded (400)
        (b'{"pairs": [', "at character 11"),
        (b"", None),
    ],
)
def test_a_body_that_is_not_json_is_one_documented_422_on_every_route(client, rat, path, content, reason):
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    response = client.post(path, content=content, headers=headers)
    got = body(response)
    if reason is None:  # no body at all: the body is missing, worded as any missing field
        assert response.status_code in (422, 503) and "JSON decode error" not in response.text
        return
    assert response.status_code == 422 and got["type"] == "invalid_input", response.text
    assert got["detail"].startswith("the request body is not valid JSON (") and reason in got["detail"]
    assert "JSON decode error" not in response.text and not got["detail"].startswith("0:")
    assert rat.api_calls() == 0


@pytest.mark.parametrize(
    ("path", "content", "type_"),
    [
        ("/v1/predict", b'{"pairs": []}', "application/x-www-form-urlencoded"),  # curl -d without -H
        ("/v1/recommendations", b'{"items": []}', "application/x-www-form-urlencoded"),
        ("/v1/predict", b"[1, 2]", "application/json"),
        ("/v1/recommendations", b'"B001"', "application/json"),
        ("/v1/reviews/score", b"[1, 2]", "application/json"),
    ],
)
def test_a_body_that_is_no_json_object_says_what_to_send(client, rat, path, content, type_):
    response = client.post(path, content=content, headers={"content-type": type_})
    assert response.status_code == 422 and rat.api_calls() == 0
    assert (
        body(response)["detail"] == "the request body must be a JSON object, sent with Content-Type: application/json"
    )
