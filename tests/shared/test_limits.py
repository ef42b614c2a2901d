"""The limits and metrics every service shares: large bodies validated off the event loop, bodies over the limit
refused, the served version and refused versions in ``/metrics``. (Over real sockets: tests/gateway/test_limits.py.)"""

from __future__ import annotations

import threading

import numpy as np
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, field_validator

from chorus.shared.http.limits import OFF_LOOP_BYTES, OffLoopRoute
from chorus.shared.http.shell import install_error_handlers
from tests.shared.test_serving import make_app, publish


class Batch(BaseModel):
    ids: list[str]

    @field_validator("ids")
    @classmethod
    def record_thread(cls, ids: list[str]) -> list[str]:
        if not ids:
            raise ValueError("at least one id")
        VALIDATED_IN.append(threading.get_ident())
        return ids


VALIDATED_IN: list[int] = []


def batch_app() -> FastAPI:
    router = APIRouter(route_class=OffLoopRoute)

    @router.post("/batch")
    async def batch(body: Batch) -> dict[str, int]:
        return {"count": len(body.ids), "loop_thread": threading.get_ident()}

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return app


def test_a_large_body_is_validated_off_the_event_loop_and_a_small_one_on_it():
    with TestClient(batch_app()) as client:
        VALIDATED_IN.clear()
        r = client.post("/batch", json={"ids": ["a", "b"]})
        assert r.json()["count"] == 2 and VALIDATED_IN == [r.json()["loop_thread"]]

        VALIDATED_IN.clear()
        ids = [f"item-{i:08d}" for i in range(OFF_LOOP_BYTES // 10)]
        r = client.post("/batch", json={"ids": ids})
        assert r.json()["count"] == len(ids)
        assert len(VALIDATED_IN) == 1 and VALIDATED_IN[0] != r.json()["loop_thread"]

        r = client.post("/batch", json={"ids": [], "padding": "x" * OFF_LOOP_BYTES})  # invalid: worded as usual
        assert r.status_code == 422 and "at least one id" in r.json()["detail"]
        r = client.post("/batch", content=b"{" * (OFF_LOOP_BYTES + 1), headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["type"] == "invalid_input"


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def test_a_service_refuses_a_body_over_the_limit(tmp_path):
    publish(tmp_path, 1.0)
    with TestClient(make_app(tmp_path)) as client:
        r = client.post("/value", content=b"x" * (1024 * 1024 + 1))
        assert r.status_code == 413 and r.json()["type"] == "payload_too_large"
        assert r.headers["connection"] == "close"


def test_service_metrics_name_the_served_version_and_count_refused_versions(tmp_path):
    v1 = publish(tmp_path, 1.0)
    app = make_app(tmp_path)
    with TestClient(app) as client:
        client.get("/value")
        text = client.get("/metrics").text
        assert metric(text, "chorus_model_version_info", service="toy", version=v1) == 1
        assert metric(text, "chorus_http_requests_total", route="/value", method="GET", status="200") >= 1
        assert "python_info" not in text and "process_resident_memory_bytes" in text  # no interpreter version
        failures = metric(text, "chorus_artifact_load_failures_total")

        v2 = publish(tmp_path, 7.0)
        npy = tmp_path / v2 / "toy" / "value.npy"
        npy.write_bytes(npy.read_bytes()[:-8] + np.array([9.0]).tobytes())
        assert not app.state.holder.refresh()
        text = client.get("/metrics").text
        assert metric(text, "chorus_artifact_load_failures_total") == failures + 1
        assert metric(text, "chorus_model_version_info", service="toy", version=v1) == 1
