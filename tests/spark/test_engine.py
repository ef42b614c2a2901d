"""``chorus train --engine spark`` in ``local[2]`` on the Amazon 5-core file: the version it writes loads and
serves in both services unchanged, its exact neighbour table equals the numpy engine's (the index staged as files
under ``--spark-staging``), and its rating model, trained on the driver, is the numpy engine's. Skipped, saying
why, where pyspark or Java is missing (CI installs both)."""

from __future__ import annotations

from typing import Any

import pytest

from chorus.shared.artifacts import ArtifactStore
from chorus.training.train import train
from tests.conftest import real_file
from tests.spark.support import SPARK_MARKS, assert_same_component, assert_served

pytestmark = [
    *SPARK_MARKS,
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
    assert versions["spark"].open().component_meta("similarity")["metrics"]["engine"] == "spark"
    assert_served(versions["spark"])


def test_exact_neighbour_table_equals_the_numpy_engines(versions):
    assert_same_component(versions["spark"], versions["numpy"], "similarity")


def test_rating_model_is_the_numpy_engines(versions):
    assert_same_component(versions["spark"], versions["numpy"], "rating")


def test_spark_options_need_the_spark_engine(tmp_path):
    from chorus.shared.contract.errors import InvalidInput

    with pytest.raises(InvalidInput, match="go with --engine spark"):
        train("unused", tmp_path, COMPONENTS, engine="numpy", spark_master="local[2]")
    with pytest.raises(InvalidInput, match="unknown engine 'dask'"):
        train("unused", tmp_path, COMPONENTS, engine="dask")
