"""What a served version must survive: an unusable CURRENT, non-finite values, a failing canary, files changed on
disk while they are served, and a start on a CURRENT that cannot be loaded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from chorus.shared.artifacts import CURRENT, ArtifactStore, VersionWriter, read_current
from chorus.shared.contract.errors import ArtifactError
from chorus.shared.serving import ServiceSettings, create_service_app
from tests.shared.test_serving import AUTH, router


def publish(root, value: float, make_current: bool = True) -> str:
    with VersionWriter(root) as w:
        w.save_array("toy", "value", np.array([value]))
        return w.commit(make_current=make_current)


def make_app(root, canary=None):
    return create_service_app(
        title="toy",
        description="toy",
        settings=ServiceSettings(artifacts=root, reload_interval=3600, status_token="s3cret"),
        build=lambda v: float(v.array("toy", "value")[0]),
        components=["toy"],
        routers=[router],
        canary=canary,
    )


BAD_CURRENT = [
    (b"../elsewhere/v1\n", "a path"),
    (b"/etc\n", "a path"),
    (b"..\n", "parent, hidden or temporary"),
    (b".tmp-v1@host-pid1\n", "parent, hidden or temporary"),
    (b"v1\x07\n", "control characters"),
    (bytes(range(128, 256)), "not UTF-8"),
    (b"v" * 5000, "more than 1024 bytes"),
]


@pytest.mark.parametrize("content,reason", BAD_CURRENT)
def test_current_must_name_a_plain_version_directory(tmp_path, content, reason):
    (tmp_path / CURRENT).write_bytes(content)
    with pytest.raises(ArtifactError, match=reason):
        read_current(tmp_path)
    with pytest.raises(ArtifactError, match="must name a version directory"):
        ArtifactStore(tmp_path).open("../elsewhere")


@pytest.mark.parametrize("content,reason", BAD_CURRENT)
def test_an_unusable_current_is_refused_once_with_its_reason(tmp_path, caplog, content, reason):
    v1 = publish(tmp_path, 1.0)
    app = make_app(tmp_path)
    failures = REGISTRY.get_sample_value("chorus_artifact_load_failures_total") or 0.0
    with TestClient(app) as client:
        (tmp_path / CURRENT).write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="chorus.serving"):
            for _ in range(5):  # five polls
                assert not app.state.holder.refresh()
        r = client.get("/readyz", headers=AUTH)
        assert r.status_code == 200 and r.json()["version"] == v1 and not r.json()["fallback"]
        assert "CURRENT refused" in r.json()["detail"] and reason in r.json()["detail"]
        assert client.get("/value").json() == {"value": 1.0}
    assert len(caplog.records) == 1, [rec.getMessage() for rec in caplog.records]
    assert caplog.records[0].exc_info is None and reason in caplog.records[0].getMessage()
    assert app.state.holder.load_failures == 1
    assert REGISTRY.get_sample_value("chorus_artifact_load_failures_total") == failures + 1


def test_a_version_with_non_finite_values_never_goes_live(tmp_path):
    v1 = publish(tmp_path, 1.0)
    app = make_app(tmp_path)
    with TestClient(app) as client:
        v2 = publish(tmp_path, float("nan"))
        assert not app.state.holder.refresh()
        r = client.get("/readyz", headers=AUTH).json()
        assert r["version"] == v1 and f"version {v2} refused" in r["detail"] and "non-finite" in r["detail"]
        assert client.get("/value").json() == {"value": 1.0}


def test_a_version_whose_canary_fails_is_refused(tmp_path):
    def canary(model: float) -> None:
        if model < 0:
            raise ValueError(f"a negative value {model}")

    v1 = publish(tmp_path, 1.0)
    app = make_app(tmp_path, canary)
    with TestClient(app) as client:
        v2 = publish(tmp_path, -3.0)
        assert not app.state.holder.refresh()
        r = client.get("/readyz", headers=AUTH).json()
        assert r["version"] == v1 and f"version {v2} refused" in r["detail"]
        assert "canary query failed (ValueError: a negative value -3.0)" in r["detail"]
        v3 = publish(tmp_path, 4.0)
        assert app.state.holder.refresh() and client.get("/readyz", headers=AUTH).json()["version"] == v3


def test_a_file_truncated_in_place_cannot_reach_a_served_array(tmp_path):
    """The array is a private copy: truncating its file (which kills a process reading a memory map with SIGBUS)
    changes nothing. Run in a child process so that a regression fails this test instead of killing pytest."""
    big = np.arange(1 << 20, dtype=np.float64)
    with VersionWriter(tmp_path) as w:
        w.save_array("toy", "big", big)
        w.commit()
    path = next(tmp_path.glob("*/toy/big.npy"))
    script = (
        "import os, sys\n"
        "from chorus.shared.artifacts import ArtifactStore\n"
        "array = ArtifactStore(sys.argv[1]).open(load=True).array('toy', 'big')\n"
        "os.truncate(sys.argv[2], 4096)\n"
        "print(float(array.sum()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert float(done.stdout) == float(big.sum())
    assert os.path.getsize(path) == 4096


def test_a_start_on_an_unloadable_current_serves_the_newest_verified_version(tmp_path, caplog):
    v1 = publish(tmp_path, 1.0)
    v2 = publish(tmp_path, 2.0)
    v3 = publish(tmp_path, float("inf"))  # CURRENT: refused at start
    publish(tmp_path, 9.0, make_current=False)  # newest, but altered on disk: skipped
    v4 = ArtifactStore(tmp_path).versions()[-1]
    npy = tmp_path / v4 / "toy" / "value.npy"
    npy.write_bytes(npy.read_bytes()[:-8] + np.array([8.0]).tobytes())
    app = make_app(tmp_path)
    with caplog.at_level(logging.WARNING, logger="chorus.serving"), TestClient(app) as client:
        r = client.get("/readyz", headers=AUTH)
        assert r.status_code == 200 and r.json()["version"] == v2 and r.json()["fallback"] is True
        detail = r.json()["detail"]
        assert f"version {v3} refused" in detail and f"serving the newest verified version {v2} instead" in detail
        assert client.get("/value").headers["X-Model-Version"] == v2
        assert any(f"serving the newest verified version {v2}" in rec.getMessage() for rec in caplog.records)
        assert not app.state.holder.refresh()  # nothing new: stays on the fallback, no reload

        (tmp_path / CURRENT).write_text(v1 + "\n")
        assert app.state.holder.refresh()
        r = client.get("/readyz", headers=AUTH).json()
        assert r == {"status": "ready", "version": v1, "fallback": False, "detail": None}


def test_a_start_on_a_current_naming_a_path_serves_the_newest_verified_version(tmp_path):
    publish(tmp_path, 1.0)
    v2 = publish(tmp_path, 2.0)
    (tmp_path / CURRENT).write_text("../../elsewhere\n")
    with TestClient(make_app(tmp_path)) as client:
        r = client.get("/readyz", headers=AUTH).json()
        assert r["version"] == v2 and r["fallback"] and "CURRENT refused" in r["detail"]


def test_with_no_version_that_passes_the_service_is_not_ready(tmp_path):
    publish(tmp_path, float("nan"))
    with TestClient(make_app(tmp_path)) as client:
        r = client.get("/readyz", headers=AUTH)
        assert r.status_code == 503 and "non-finite" in r.json()["detail"]


def test_indices_out_of_range_are_refused_before_they_reach_numpy_or_scipy(tmp_path, amazon_tsv_sample):
    from chorus.services.rating.rankers.item_knn import ItemKnnRanker
    from chorus.shared.contract.errors import InvalidInput
    from chorus.shared.data import load_ratings
    from chorus.shared.data.component import load_data_component, save_data_component

    r = load_ratings(amazon_tsv_sample, progress=False)
    r.item = r.item.copy()
    r.item[3] = r.n_items  # one past the last item
    with VersionWriter(tmp_path) as w:
        save_data_component(w, r)
        version = w.commit()
    with pytest.raises(ArtifactError, match=rf"data/item holds an index outside 0..{r.n_items - 1}"):
        load_data_component(ArtifactStore(tmp_path).open(version, load=True))

    counts = np.ones(3, dtype=np.int64)
    good = dict(sim_indptr=np.array([0, 1, 2, 2]), sim_data=np.ones(2, np.float32))
    ItemKnnRanker(counts, {}, sim_indices=np.array([1, 0], np.int32), **good)
    with pytest.raises(InvalidInput, match="a neighbour index outside 0..2"):
        ItemKnnRanker(counts, {}, sim_indices=np.array([1, 3], np.int32), **good)
