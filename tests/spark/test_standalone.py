"""``chorus train --engine spark --spark-master spark://...`` against a real standalone cluster (a master and two
workers started here on loopback, :mod:`tests.spark.cluster`) on MovieLens 100K: the executors on both workers
run, the neighbour table equals the numpy engine's, and the version is served by the similarity and rating
services. Every process started is stopped, failure or not. Skipped, saying why, where pyspark or Java is
missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chorus.shared.artifacts import ArtifactStore
from chorus.training.train import train
from tests.spark.support import SPARK_MARKS, assert_same_component, assert_served

pytestmark = [
    *SPARK_MARKS,
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
    assert_same_component(trained["store"], ArtifactStore(tmp_path), "similarity")


def test_version_is_served(trained):
    assert_served(trained["store"])
