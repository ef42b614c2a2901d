"""``chorus train --engine spark --spark-master spark://...`` against a real standalone cluster (a master and two
workers started here on loopback, :mod:`tests.spark.cluster`) on MovieLens 100K: the executors on both workers
run, the neighbour table equals the numpy engine's, and the version is served by the similarity and rating
services. Every process started is stopped, failure or not. Skipped, saying why, where pyspark or Java is
missing."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component
from chorus.training.train import train

MISSING = [m for m in ("pyspark", "pandas", "pyarrow") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: pip install -e '.[spark]'"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH: apt-get install openjdk-17-jre-headless"),
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import real_file
    from tests.spark.cluster import spark_env, standalone_cluster

    data = real_file("movielens-100k", "u.data")
    root = tmp_path_factory.mktemp("spark-cluster")
    with standalone_cluster(root / "cluster", workers=2, cores=1) as cluster:
        cmd = [sys.executable, "-m", "chorus.cli", "train", "--data", str(data), "--artifacts", str(root / "artifacts")]
        cmd += ["--components", "similarity,rating", "--engine", "spark", "--spark-master", cluster.url]
        done = subprocess.run(cmd, env=spark_env(), capture_output=True, text=True, timeout=420)
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{cluster.log_tail()}"
        apps = {w: sorted(p.name for p in (root / "cluster" / w).glob("app-*")) for w in ("worker-0", "worker-1")}
        yield {"store": ArtifactStore(root / "artifacts"), "url": cluster.url, "apps": apps, "data": data}


def test_both_workers_ran_executors_of_the_training(trained):
    assert all(len(apps) == 1 for apps in trained["apps"].values()), trained["apps"]
    stats = trained["store"].open().component_meta("similarity")["metrics"]
    assert stats["engine"] == "spark" and stats["master"] == trained["url"]


def test_neighbour_table_equals_the_numpy_engines(trained, tmp_path):
    train(trained["data"], tmp_path, ["similarity"], progress=False, log=lambda _: None, workers=2)
    expected, got = ArtifactStore(tmp_path).open(), trained["store"].open()
    names = expected.component_meta("similarity")["files"]
    assert names.keys() == got.component_meta("similarity")["files"].keys()
    for name in names:
        np.testing.assert_array_equal(got.array("similarity", name), expected.array("similarity", name), err_msg=name)


def test_version_is_served(trained):
    from chorus.services.rating.app import create_app as rating_app
    from chorus.services.rating.settings import Settings as RatingSettings
    from chorus.services.similarity.app import create_app as similarity_app
    from chorus.services.similarity.settings import Settings as SimilaritySettings

    store = trained["store"]
    ratings = load_data_component(store.open(components=["data"]))
    item, user = str(ratings.item_ids[ratings.item[0]]), str(ratings.user_ids[ratings.user[0]])
    with TestClient(similarity_app(SimilaritySettings(artifacts=store.root, reload_interval=3600))) as c:
        assert c.get("/readyz").status_code == 200
        body = c.get(f"/v1/items/{item}/similar", params={"k": 5}).json()
        assert len(body["data"]) == 5
    with TestClient(rating_app(RatingSettings(artifacts=store.root, reload_interval=3600))) as c:
        assert c.get("/readyz").status_code == 200
        answer = c.get("/v1/predict", params={"user_id": user, "item_id": item})
        assert answer.status_code == 200 and 1.0 <= answer.json()["prediction"] <= 5.0
