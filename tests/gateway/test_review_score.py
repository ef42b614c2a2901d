"""The gateway's POST /v1/reviews/score: passed through to the rating service, never cached, and its limits
(empty text, text over 20,000 characters, a body that is not UTF-8) answered 422 naming the problem without
calling the service."""

from __future__ import annotations

import json

import pytest

from chorus.shared.contract.reviews import MAX_TEXT_CHARS


def test_score_goes_to_rating_uncached(client, rat, sim):
    review = {"text": "Great strings, bright tone", "rating": 5, "item_id": "B001"}
    for _ in range(2):
        response = client.post("/v1/reviews/score", json=review)
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "bypass"
    assert response.json()["predicted_rating"] == 4.5
    assert json.loads(rat.requests[0].content) == review
    assert rat.api_calls() == 2 and sim.api_calls() == 0


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (json.dumps({"text": ""}).encode(), "text: String should have at least 1 character"),
        (json.dumps({"text": "   \n "}).encode(), "text: empty"),
        (
            json.dumps({"text": "a" * (MAX_TEXT_CHARS + 1)}).encode(),
            "text: String should have at most 20000 characters",
        ),
        (b'{"text": "caf\xe9 au lait"}', "not valid UTF-8: byte 0xe9 at character 13"),
        (b'{"text": ', "the request body is not valid JSON (Expecting value at character 9)"),
        (json.dumps({"rating": 5}).encode(), "text: Field required"),
        (json.dumps({"text": "ok", "item_id": ""}).encode(), "item_id"),
    ],
)
def test_score_limits_are_422_naming_the_problem(client, rat, content, needle):
    response = client.post("/v1/reviews/score", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "invalid_input" and needle in response.json()["detail"]
    assert rat.api_calls() == 0


def test_text_at_the_limit_is_accepted(client):
    response = client.post("/v1/reviews/score", json={"text": "b" * MAX_TEXT_CHARS})
    assert response.status_code == 200


def test_the_route_and_its_body_are_documented(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/reviews/score"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"text", "rating", "item_id"} and schema["required"] == ["text"]
