"""The service shell: hot reload, refusal of a bad version, readiness, error bodies, version header."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.testclient import TestClient

from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import NotFound
from chorus.shared.serving import Dependency, Loaded, ServiceSettings, create_service_app, model_dependency


def publish(root, value: float) -> str:
    with VersionWriter(root) as w:
        w.save_array("toy", "value", np.array([value]))
        return w.commit()


router = APIRouter()


@router.get("/value")
def value(loaded: Annotated[Loaded[Any], Depends(model_dependency)], k: Annotated[int, Query(ge=1, le=5)] = 1):
    if k == 4:
        raise NotFound("unknown thing '4'")
    if k == 5:
        raise RuntimeError("a bug")
    return {"value": loaded.model * k}


AUTH = {"Authorization": "Bearer s3cret"}  # readiness details need the status token


def make_app(root, dependencies: Sequence[Dependency] = ()):
    settings = ServiceSettings(artifacts=root, reload_interval=3600, status_token="s3cret")
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
    import time

    publish(tmp_path, 1.0)
    settings = ServiceSettings(artifacts=tmp_path, reload_interval=0.05)
    app = create_service_app(
        title="toy",
        description="toy",
        settings=settings,
        build=lambda v: float(v.array("toy", "value")[0]),
        components=["toy"],
        routers=[router],
    )
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
