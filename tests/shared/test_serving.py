"""The service shell: hot reload, refusal of a bad version, readiness, error bodies, version header."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import ArtifactError, NotFound
from chorus.shared.serving import Dependency, Loaded, ServiceSettings, create_service_app, model_dependency


def publish(root, value: float) -> str:
    with VersionWriter(root) as w:
        w.save_array("toy", "value", np.array([value]))
        return w.commit()


router = APIRouter()


class Values(BaseModel):
    values: list[float]


@router.post("/sum")
def total(body: Values) -> dict[str, float]:
    return {"sum": sum(body.values)}


@router.post("/parsed")
async def parsed(request: Request) -> dict[str, float]:
    """A body parsed by pydantic's JSON parser, as the review score route does it."""
    try:
        body = Values.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    return {"sum": sum(body.values)}


@router.get("/broken")
def broken() -> None:
    raise ArtifactError("file toy/value.npy of /srv/artifacts/v9 is truncated (8 bytes, manifest says 136)")


@router.get("/value")
def value(loaded: Annotated[Loaded[Any], Depends(model_dependency)], k: Annotated[int, Query(ge=1, le=5)] = 1):
    if k == 4:
        raise NotFound("unknown thing '4'")
    if k == 5:
        raise RuntimeError("a bug")
    return {"value": loaded.model * k}


AUTH = {"Authorization": "Bearer s3cret"}  # readiness details need the status token


def make_app(root, dependencies: Sequence[Dependency] = (), **overrides: Any):
    """The toy service over ``root``; settings: no polling (tests call ``refresh``), the status token of AUTH."""
    settings = ServiceSettings(**{"artifacts": root, "reload_interval": 3600, "status_token": "s3cret", **overrides})
    return create_service_app(
        title="toy",
        description="toy",
        settings=settings,
        build=lambda v: float(v.array("toy", "value")[0]),
        components=["toy"],
        routers=[router],
        dependencies=dependencies,
    )


def test_not_ready_until_a_version_exists_then_hot_reload(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json() == {
            "status": "not_ready",
            "version": None,
            "fallback": False,
        }  # no path
        r = client.get("/readyz", headers=AUTH)
        assert r.status_code == 503 and "CURRENT does not exist" in r.json()["detail"]
        r = client.get("/readyz", headers={"Authorization": "Bearer guess"})
        assert r.status_code == 401 and r.json()["type"] == "unauthorized"
        r = client.get("/value")
        assert r.status_code == 503 and r.json()["type"] == "not_ready"
        assert "the toy service has no model version loaded yet" in r.json()["detail"]
        assert str(tmp_path) not in r.text and "CURRENT" not in r.text  # the reason is for the operator only
        assert client.get("/healthz").json() == {"status": "ok"}

        v1 = publish(tmp_path, 2.0)
        assert app.state.holder.refresh()
        r = client.get("/value", params={"k": 3})
        assert r.json() == {"value": 6.0} and r.headers["X-Model-Version"] == v1

        v2 = publish(tmp_path, 5.0)
        assert app.state.holder.refresh()
        r = client.get("/value")
        assert r.json() == {"value": 5.0} and r.headers["X-Model-Version"] == v2
        assert client.get("/readyz", headers=AUTH).json() == {
            "status": "ready",
            "version": v2,
            "fallback": False,
            "detail": None,
        }


def test_a_corrupt_new_version_is_refused_and_the_old_one_keeps_serving(tmp_path):
    v1 = publish(tmp_path, 1.0)
    app = make_app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/value").headers["X-Model-Version"] == v1
        v2 = publish(tmp_path, 7.0)
        npy = tmp_path / v2 / "toy" / "value.npy"
        npy.write_bytes(npy.read_bytes()[:-8] + np.array([9.0]).tobytes())
        assert not app.state.holder.refresh()
        r = client.get("/value")
        assert r.json() == {"value": 1.0} and r.headers["X-Model-Version"] == v1
        ready = client.get("/readyz", headers=AUTH).json()
        assert ready["status"] == "ready" and ready["version"] == v1
        assert f"version {v2} refused" in ready["detail"] and "checksum" in ready["detail"]
        assert not app.state.holder.refresh()  # remembered: not reloaded on every poll


def test_error_bodies(tmp_path):
    v1 = publish(tmp_path, 1.0)
    with TestClient(make_app(tmp_path)) as client:
        r = client.get("/value", params={"k": 9})
        assert r.status_code == 422 and r.json()["type"] == "invalid_input"
        assert "k" in r.json()["detail"] and "less than or equal to 5" in r.json()["detail"]
        r = client.get("/value", params={"k": 4})
        assert r.status_code == 404 and r.json() == {"type": "not_found", "detail": "unknown thing '4'"}
        assert r.headers["X-Model-Version"] == v1
        r = client.get("/no/such/route")
        assert r.status_code == 404 and r.json()["type"] == "not_found"


def test_reload_by_polling(tmp_path):
    publish(tmp_path, 1.0)
    app = make_app(tmp_path, reload_interval=0.05, status_token=None)
    with TestClient(app) as client:
        v2 = publish(tmp_path, 3.0)
        deadline = time.monotonic() + 10
        while client.get("/value").headers["X-Model-Version"] != v2:
            assert time.monotonic() < deadline, "the new version was not picked up"
            time.sleep(0.05)
        assert client.get("/value").json() == {"value": 3.0}


def test_unexpected_errors_are_json_500(tmp_path):
    publish(tmp_path, 1.0)
    with TestClient(make_app(tmp_path), raise_server_exceptions=False) as client:
        r = client.get("/value", params={"k": 5})
        assert r.status_code == 500
        assert r.json() == {
            "type": "internal_error",
            "detail": "an unexpected RuntimeError occurred; the service log has the details",
        }


def test_a_refused_version_is_tried_again_once_its_files_change(tmp_path, caplog):
    v1 = publish(tmp_path, 1.0)
    npy = tmp_path / v1 / "toy" / "value.npy"
    good = npy.read_bytes()
    npy.write_bytes(good[:-8])  # truncated, as a full disk leaves it
    app = make_app(tmp_path)
    with caplog.at_level(logging.INFO, logger="chorus.serving"), TestClient(app) as client:
        assert client.get("/readyz").status_code == 503
        failures = app.state.holder.load_failures
        caplog.clear()
        for _ in range(3):  # polls with nothing changed: not loaded, logged or counted again
            assert not app.state.holder.refresh()
        assert app.state.holder.load_failures == failures and not caplog.records
        assert f"version {v1} refused" in client.get("/readyz", headers=AUTH).json()["detail"]

        npy.write_bytes(good)  # repaired in place, under the same name
        assert app.state.holder.refresh()
        assert client.get("/value").json() == {"value": 1.0}
        assert client.get("/readyz", headers=AUTH).json() == {
            "status": "ready",
            "version": v1,
            "fallback": False,
            "detail": None,
        }


def test_a_version_refused_and_repaired_serves_again_by_polling(tmp_path):
    v1 = publish(tmp_path, 1.0)
    npy = tmp_path / v1 / "toy" / "value.npy"
    good = npy.read_bytes()
    npy.write_bytes(good[:-8])
    app = make_app(tmp_path, reload_interval=0.05, status_token=None)
    with TestClient(app) as client:
        assert client.get("/value").status_code == 503
        npy.write_bytes(good)
        deadline = time.monotonic() + 10
        while client.get("/value").status_code != 200:
            assert time.monotonic() < deadline, "the repaired version was not tried again"
            time.sleep(0.05)


def test_a_refused_current_stops_being_the_reason_once_repaired(tmp_path):
    v1 = publish(tmp_path, 1.0)
    app = make_app(tmp_path)
    with TestClient(app) as client:
        (tmp_path / "CURRENT").write_text("../elsewhere\n")
        assert not app.state.holder.refresh()
        assert "CURRENT refused" in client.get("/readyz", headers=AUTH).json()["detail"]
        (tmp_path / "CURRENT").write_text(v1 + "\n")
        assert not app.state.holder.refresh()  # the version served all along: nothing to load
        assert client.get("/readyz", headers=AUTH).json()["detail"] is None


def test_a_status_token_sent_where_none_is_configured_is_told_so(tmp_path):
    publish(tmp_path, 1.0)
    app = make_app(tmp_path, status_token=None)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        r = client.get("/readyz", headers=AUTH)
        assert r.status_code == 401 and "no status token is configured" in r.json()["detail"]
        assert "wrong" not in r.json()["detail"]


def test_a_body_that_is_not_json_is_named_so(tmp_path):
    publish(tmp_path, 1.0)
    with TestClient(make_app(tmp_path)) as client:
        r = client.post("/sum", content=b'{"values": [1, 2', headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["type"] == "invalid_input"
        assert r.json()["detail"].startswith("the request body is not valid JSON (")
        assert "at character" in r.json()["detail"] and "0:" not in r.json()["detail"]
        r = client.post("/parsed", content=b'{"values": [1, 2', headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert r.json()["detail"] == "the request body is not valid JSON (EOF while parsing a list at line 1 column 16)"


def test_an_artifact_error_met_while_answering_keeps_its_files_to_the_log(tmp_path, caplog):
    publish(tmp_path, 1.0)
    with caplog.at_level(logging.ERROR, logger="chorus.http"), TestClient(make_app(tmp_path)) as client:
        r = client.get("/broken")
    assert r.status_code == 503 and r.json()["type"] == "bad_artifact"
    assert "value.npy" not in r.text and "/srv" not in r.text and "manifest" not in r.text
    assert any("value.npy" in record.getMessage() for record in caplog.records)
