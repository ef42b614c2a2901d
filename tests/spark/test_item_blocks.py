"""The Spark engine's neighbour table, item blocks on executors (``local[2]``), against the numpy engine's on
MovieLens 100K: the same arrays, bit for bit, through ``chorus train`` and through :func:`build_table` with
blocks small enough that many jobs (waves) and many blocks per task slot run. Skipped, saying why, where
pyspark or Java is missing."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data import load_ratings
from chorus.training.train import train
from tests.spark.support import SPARK_MARKS, assert_same_component

pytestmark = [
    *SPARK_MARKS,
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def spark():
    from chorus.training.spark_engine import spark_session

    session = spark_session("local[2]", app="chorus-test-item-blocks")
    yield session
    session.stop()


def test_train_similarity_equals_the_numpy_engines(ml100k, tmp_path):
    for engine in ("numpy", "spark"):
        master = "local[2]" if engine == "spark" else None
        train(ml100k, tmp_path / engine, ["similarity"], progress=False, log=lambda _: None, engine=engine, workers=2,
              spark_master=master)  # fmt: skip
    spark, numpy_ = ArtifactStore(tmp_path / "spark"), ArtifactStore(tmp_path / "numpy")
    stats = spark.open().component_meta("similarity")["metrics"]
    assert stats["engine"] == "spark" and stats["master"] == "local[2]"
    assert any(name.startswith("neighbors_") for name in numpy_.open().component_meta("similarity")["files"])
    assert_same_component(spark, numpy_, "similarity")


@pytest.mark.parametrize("staged", [False, True], ids=["broadcast", "staged-files"])
def test_many_small_blocks_on_executors_equal_threads(ml100k, spark, staged, tmp_path):
    from chorus.services.similarity.index import SimilarityIndex
    from chorus.training.similarity.build import build_table, thread_runner
    from chorus.training.similarity.spark_build import ROUNDS, spark_runner

    ratings = load_ratings(ml100k)
    index = SimilarityIndex.from_arrays(ratings.user, ratings.item, ratings.rating, ratings.n_users, ratings.n_items)
    done: list[int] = []
    runner = spark_runner(spark, slots=2, staging=tmp_path if staged else None)
    table, stats = build_table(
        index, 20, block_rows=37, block_nnz=200_000, runner=runner, progress=lambda d, n: done.append(d)
    )
    expected, expected_stats = build_table(index, 20, block_rows=37, block_nnz=200_000, runner=thread_runner(1))
    assert stats["blocks"] > 3 * ROUNDS * 2  # several jobs, each task of several blocks
    assert done == sorted(done) and done[-1] == ratings.n_items  # answers placed in block order
    assert stats["pairs"] == expected_stats["pairs"] > 0
    for name, array in expected.items():
        np.testing.assert_array_equal(table[name], array, err_msg=name)
    assert not any(tmp_path.iterdir())  # the staged files are removed


def test_task_groups_are_consecutive_runs_of_about_equal_work():
    from chorus.training.similarity.spark_build import task_groups

    work = np.random.default_rng(0).integers(1, 100, 1000)
    blocks = [(a, min(a + 7, 1000)) for a in range(0, 1000, 7)]
    groups = task_groups(work, blocks, 8)
    assert [b for g in groups for b in g] == blocks and all(groups) and len(groups) == 8
    sums = [sum(int(work[lo:hi].sum()) for lo, hi in g) for g in groups]
    assert max(sums) - min(sums) <= 2 * max(int(work[lo:hi].sum()) for lo, hi in blocks)
    assert task_groups(work, blocks[:3], 8) == [[b] for b in blocks[:3]]
    assert task_groups(work, [], 4) == []
