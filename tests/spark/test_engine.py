"""``chorus train --engine spark`` in ``local[2]`` on the Amazon 5-core file: the version it writes loads and
serves in both services unchanged, its exact neighbour table equals the numpy engine's (the index staged as files
under ``--spark-staging``), and its rating model, trained on the driver, is the numpy engine's. Skipped, saying
why, where pyspark or Java is missing (CI installs both)."""

from __future__ import annotations

import importlib.util
import shutil
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component
from chorus.training.train import train
from tests.conftest import real_file

MISSING = [m for m in ("pyspark", "pandas", "pyarrow") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: pip install -e '.[spark]'"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH: apt-get install openjdk-17-jre-headless"),
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

COMPONENTS = ["similarity", "rating"]


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    data = real_file("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz")
    roots = {}
    for engine in ("numpy", "spark"):
        root = tmp_path_factory.mktemp(f"engine-{engine}")
        staging = tmp_path_factory.mktemp("staging")
        extra: dict[str, Any] = {"spark_master": "local[2]", "spark_staging": staging} if engine == "spark" else {}
        train(data, root, COMPONENTS, progress=False, log=lambda _: None, engine=engine, **extra)
        roots[engine] = ArtifactStore(root)
    return roots


def test_spark_version_loads_and_serves(versions):
    from chorus.services.rating.app import create_app as rating_app
    from chorus.services.rating.settings import Settings as RatingSettings
    from chorus.services.similarity.app import create_app as similarity_app
    from chorus.services.similarity.settings import Settings as SimilaritySettings

    store = versions["spark"]
    assert store.open().component_meta("similarity")["metrics"]["engine"] == "spark"
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


def test_exact_neighbour_table_equals_the_numpy_engines(versions):
    spark, numpy_ = versions["spark"].open(), versions["numpy"].open()
    names = numpy_.component_meta("similarity")["files"]
    assert names.keys() == spark.component_meta("similarity")["files"].keys()
    for name in names:
        np.testing.assert_array_equal(spark.array("similarity", name), numpy_.array("similarity", name), err_msg=name)


def test_rating_model_is_the_numpy_engines(versions):
    spark, numpy_ = versions["spark"].open(), versions["numpy"].open()
    names = numpy_.component_meta("rating")["files"]
    assert names.keys() == spark.component_meta("rating")["files"].keys()
    for name in names:
        np.testing.assert_array_equal(spark.array("rating", name), numpy_.array("rating", name), err_msg=name)


def test_spark_options_need_the_spark_engine(tmp_path):
    from chorus.shared.contract.errors import InvalidInput

    with pytest.raises(InvalidInput, match="go with --engine spark"):
        train("unused", tmp_path, COMPONENTS, engine="numpy", spark_master="local[2]")
    with pytest.raises(InvalidInput, match="unknown engine 'dask'"):
        train("unused", tmp_path, COMPONENTS, engine="dask")
