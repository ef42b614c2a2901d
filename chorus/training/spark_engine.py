"""``chorus train --engine spark [--spark-master URL]``: the similarity and rating components computed by Apache
Spark, written in the numpy engine's artifact format so the services load them unchanged.

The dump is parsed once, on the driver, by Chorus's own loader: the row rules, the skipped-row counts and the
vocabularies need one pass over the whole file, and the ``data`` component every version holds is made from that
pass anyway. What the executors then read, the driver stages:

* the similarity component is the numpy engine's build with the neighbour table's item blocks run on the
  executors against a broadcast of the inverted index (:mod:`chorus.training.similarity.spark_build`), so the
  table is the numpy engine's, bit for bit, and no co-occurring pair is ever materialised;
* the rating model is MLlib ALS with biases (:mod:`chorus.training.rating.spark_als`) on the rating columns
  staged as a Parquet file (``--spark-staging DIR``; on a cluster, a path every executor can read, such as
  ``hdfs://`` or a shared mount);
* the ranking component, when asked for, is trained by the numpy engine on the driver: its models are dense
  or fit in one machine by design, and its selection ranks every user's whole catalogue on the driver.

``pyspark`` is the optional extra ``.[spark]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import Ratings

DEFAULT_MASTER = "local[*]"
"""Where Spark runs when neither ``--spark-master`` nor ``spark-submit --master`` says."""


def require_pyspark() -> None:
    """Raise :class:`InvalidInput` saying how to install pyspark (and pandas, pyarrow) when it is missing."""
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"--engine spark needs pyspark with pandas and pyarrow ({exc.name} is not installed): "
            "pip install -e '.[spark]' (and Java 17: apt-get install openjdk-17-jre-headless)"
        ) from None


def spark_session(master: str | None = None, app: str = "chorus-train") -> Any:
    """A SparkSession on ``master`` (``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn``, ...; None: the
    master ``spark-submit`` was given, else :data:`DEFAULT_MASTER`), with Arrow transfers on and the web UI off.
    In local mode the Python workers run this interpreter."""
    require_pyspark()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    master = master or SparkConf().get("spark.master", DEFAULT_MASTER)
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", os.environ.get("CHORUS_SPARK_PARTITIONS", "16"))
        .config("spark.driver.memory", os.environ.get("CHORUS_SPARK_DRIVER_MEMORY", "4g"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stage(ratings: Ratings, folder: str | Path) -> str:
    """Write the rating columns ``(row, u, i, r)`` as Parquet under ``folder``; return the path Spark reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(folder) / "reviews.parquet"
    table = pa.table(
        {
            "row": np.arange(ratings.n, dtype=np.int64),
            "u": np.asarray(ratings.user, dtype=np.int64),
            "i": np.asarray(ratings.item, dtype=np.int64),
            "r": np.asarray(ratings.rating, dtype=np.float64),
        }
    )
    pq.write_table(table, path)
    return str(path)


class SparkEngine:
    """The Spark session and the staged data of one ``chorus train --engine spark`` run; :meth:`trainers` are the
    component trainers it replaces (same signature as the numpy engine's ``train_component``)."""

    def __init__(self, master: str | None = None, staging: str | Path | None = None) -> None:
        self.spark = spark_session(master)
        self.master = str(self.spark.sparkContext.master)
        self._tmp = None if staging else tempfile.TemporaryDirectory(prefix="chorus-spark-")
        self.staging = Path(staging) if staging else Path(self._tmp.name)  # type: ignore[union-attr]
        self.staging.mkdir(parents=True, exist_ok=True)
        self._reviews: tuple[int, Any] | None = None

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.spark.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def reviews(self, ratings: Ratings) -> Any:
        """The ratings as a cached DataFrame ``(row, u, i, r)`` read by Spark from the staged Parquet file."""
        if self._reviews is None or self._reviews[0] != id(ratings):
            self._reviews = (id(ratings), self.spark.read.parquet(stage(ratings, self.staging)).cache())
        return self._reviews[1]

    def trainers(self) -> dict[str, Callable[..., dict[str, Any]]]:
        return {"similarity": self.train_similarity, "rating": self.train_rating}

    def train_similarity(
        self, ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True, workers: int = 1
    ) -> dict[str, Any]:
        """The similarity component: the numpy engine's build (:mod:`chorus.training.similarity.build`) with the
        neighbour table's item blocks run on the executors (:mod:`chorus.training.similarity.spark_build`)."""
        from chorus.training.similarity.build import train_component
        from chorus.training.similarity.spark_build import spark_runner

        return train_component(
            ratings,
            writer,
            seed=seed,
            progress=progress,
            workers=workers,
            runner=spark_runner(self.spark),
            engine={"engine": "spark", "master": self.master},
        )

    def train_rating(
        self, ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True, workers: int = 1
    ) -> dict[str, Any]:
        """The rating component: biases and MLlib ALS (:mod:`chorus.training.rating.spark_als`)."""
        from chorus.services.rating.persistence import write_component
        from chorus.training.rating.fitting import Trainset
        from chorus.training.rating.spark_als import train_spark_rating

        del progress, workers
        scale = ratings.scale
        data = Trainset(
            ratings.user, ratings.item, ratings.rating, ratings.n_users, ratings.n_items, scale.low, scale.high
        )
        result = train_spark_rating(self.spark, self.reviews(ratings), data, seed=seed)
        meta = {
            "hyperparameters": result.hyperparameters | {"engine": "spark", "master": self.master},
            "metrics": result.metrics | {"seconds": result.seconds},
        }
        write_component(writer, result.model, meta)
        test = result.metrics["test"]
        return {
            "K": result.hyperparameters["n_factors"],
            "reg_bias": result.hyperparameters["reg_bias"],
            "reg_factors": result.hyperparameters["reg_factors"],
            "test_rmse": {name: round(m["rmse"], 4) for name, m in test.items()},
            "seconds": round(result.seconds, 2),
        }
