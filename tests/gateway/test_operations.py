"""What an operator relies on: cache directives read per RFC 9111, no password or internal detail shown to the
public, no Host reflection, Prometheus metrics, JSON logs."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chorus.services.gateway.hitpath import cache_policy
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.http.logs import configure_logging
from tests.gateway.conftest import make_client


def headers(**fields: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in fields.items()]


@pytest.mark.parametrize(
    "fields,expected",
    [
        ({}, (False, True)),
        ({"cache_control": "no-cache"}, (True, True)),
        ({"cache_control": "NO-CACHE"}, (True, True)),
        ({"cache_control": "max-age=0"}, (True, True)),
        ({"cache_control": 'Max-Age="0"'}, (True, True)),
        ({"cache_control": "max-age=60"}, (False, True)),
        ({"cache_control": "no-store"}, (True, False)),
        ({"cache_control": "private, No-Store"}, (True, False)),
        ({"cache_control": "max-stale=5 , no-cache"}, (True, True)),
        ({"pragma": "no-cache"}, (True, True)),
        ({"pragma": "No-Cache"}, (True, True)),
        ({"pragma": "no-cache", "cache_control": "max-age=60"}, (False, True)),  # Pragma yields (RFC 9111 5.4)
        ({"cache_control": "no-cachex"}, (False, True)),
    ],
)
def test_cache_directives_are_read_as_rfc_9111_says(fields, expected):
    assert cache_policy(headers(**fields)) == expected


def test_cache_directives_over_the_api(sim, rat):
    with make_client(sim, rat) as client:
        assert client.get("/v1/items/B001").headers["x-cache"] == "miss"
        assert client.get("/v1/items/B001").headers["x-cache"] == "hit"
        for fresh in ({"Cache-Control": "NO-CACHE"}, {"Pragma": "no-cache"}, {"Cache-Control": "max-age=0"}):
            assert client.get("/v1/items/B001", headers=fresh).headers["x-cache"] == "miss"
        assert sim.api_calls() == 4
        r = client.get("/v1/items/B002", headers={"Cache-Control": "no-store"})
        assert r.status_code == 200 and r.headers["x-cache"] == "miss"
        assert client.get("/v1/items/B002").headers["x-cache"] == "miss"  # the no-store answer was not kept


def test_no_password_or_internal_detail_is_shown_to_the_public(sim, rat, caplog):
    url = "redis://chorus:userinfo-secret@127.0.0.1:1/0?password=query-secret"  # port 1: nothing listens
    caplog.set_level(logging.DEBUG)
    with make_client(sim, rat, redis_url=url, status_token="t") as client:
        client.get("/v1/items/B001")  # Redis fails: logged
        public = client.get("/readyz").text
        details = client.get("/readyz", headers={"Authorization": "Bearer t"}).text
    assert json.loads(public)["cache"] == {"status": "down"}
    assert "127.0.0.1:1" not in public and "similarity.test" not in public
    assert "redis://chorus:***@127.0.0.1:1/0?password=***" in details
    for text in (public, details, caplog.text):
        assert "secret" not in text


def test_no_redirect_builds_a_location_from_the_host_header(client):
    r = client.get("/v1/items/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers and r.json()["type"] == "not_found"
    assert "evil.example" not in r.text
    page = client.get("/", headers={"Host": "evil.example"})
    assert page.status_code == 200 and "evil.example" not in page.text and 'href="/static/style.css"' in page.text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_routes_cache_outcomes_errors_and_versions(sim, rat):
    with make_client(sim, rat) as client:
        client.get("/v1/items/B001/similar?k=2")  # miss
        client.get("/v1/items/B001/similar?k=2")  # hit, answered by the hit path
        client.get("/v1/items/nope/similar")  # 404 from the service
        client.get("/no/such/path")
        rat.mode = "refuse"
        client.get("/v1/predict?user_id=U1&item_id=B001")  # 503: the rating service cannot be reached
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    route = "/v1/items/{item_id}/similar"

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    assert value("chorus_http_requests_total", route=route, method="GET", status="200") >= 2
    assert value("chorus_http_requests_total", route=route, method="GET", status="404") >= 1
    assert value("chorus_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    assert value("chorus_http_request_duration_seconds_count", route=route, method="GET", status="200") >= 2
    assert value("chorus_cache_requests_total", result="hit") >= 1
    assert value("chorus_cache_requests_total", result="miss") >= 1
    assert value("chorus_downstream_errors_total", service="rating", type="upstream_unavailable") >= 1
    assert value("chorus_model_version_info", service="similarity", version="sim-v1") == 1
    assert value("chorus_model_version_info", service="rating", version="rat-v1") == 1
    assert not any("nope" in str(labels) or "/no/such" in str(labels) for _, labels in got)  # templates only
    assert any(name == "process_resident_memory_bytes" for name, _ in got)


def test_json_logs(capsys):
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in names}
    level = logging.getLogger("chorus").level
    try:
        configure_logging("json")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("chorus.test").exception("it failed for %s", "x")
        logging.getLogger("uvicorn").warning("from uvicorn")
    finally:
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers = handlers
            logging.getLogger(name).propagate = propagate
        logging.getLogger("chorus").setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["level"] == "ERROR" and lines[0]["logger"] == "chorus.test"
    assert lines[0]["message"] == "it failed for x" and "ValueError: boom" in lines[0]["exception"]
    assert lines[1]["logger"] == "uvicorn" and lines[1]["message"] == "from uvicorn" and "time" in lines[1]
    with pytest.raises(InvalidInput, match="CHORUS_LOG_FORMAT"):
        configure_logging("xml")
