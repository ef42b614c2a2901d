"""``chorus train --engine spark [--spark-master URL] [--spark-staging DIR]``: the similarity component's neighbour
table computed by Apache Spark's executors, written in the numpy engine's artifact format so the services load it
unchanged.

The dump is parsed once, on the driver, by Chorus's own loader: the row rules, the skipped-row counts and the
vocabularies need one pass over the whole file, and the ``data`` component every version holds is made from that
pass anyway. The similarity component is the numpy engine's build with the neighbour table's item blocks run on
the executors (:mod:`chorus.training.similarity.spark_build`): the table is the numpy engine's, bit for bit, and
no co-occurring pair is ever materialised. What the executors read, the driver stages: the inverted index goes
to them as a Spark broadcast, or, with ``--spark-staging DIR`` (a folder every executor sees at the same path, a
shared mount), as ``.npy`` files there that each executor host maps into memory once for all its Python workers.

The other components are trained by the numpy engine on the driver, with ``--workers`` cores:

* rating: its fit is a few sweeps over the ratings with memory in proportion to them, and one machine fits it
  faster than a cluster (MLlib's ALS, with the biases fitted beside it, took several times the numpy engine's
  time on the same 2-core machine; ``docs/benchmarks.md``); on the driver it is also the very model the numpy
  engine selects (the same grid, early stopping and bytes);
* ranking and text: their models are dense or single-machine by design.

``pyspark`` is the optional extra ``.[spark]``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import Ratings

DEFAULT_MASTER = "local[*]"
"""Where Spark runs when neither ``--spark-master`` nor ``spark-submit --master`` says."""


def require_pyspark() -> None:
    """Raise :class:`InvalidInput` saying how to install pyspark when it is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise InvalidInput(
            "--engine spark needs pyspark, which is not installed: "
            "pip install -e '.[spark]' (and Java 17: apt-get install openjdk-17-jre-headless)"
        ) from None


def spark_session(master: str | None = None, app: str = "chorus-train") -> Any:
    """A SparkSession on ``master`` (``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn``, ...; None: the
    master ``spark-submit`` was given, else :data:`DEFAULT_MASTER`), with the web UI off. In local mode the Python
    workers run this interpreter; elsewhere the executors run ``PYSPARK_PYTHON``, which must have Chorus and its
    ``train`` extra installed (docs/operations/spark.md)."""
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
        .config("spark.driver.memory", os.environ.get("CHORUS_SPARK_DRIVER_MEMORY", "4g"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkEngine:
    """The Spark session of one ``chorus train --engine spark`` run; :meth:`trainers` are the component trainers
    it replaces (same signature as the numpy engine's ``train_component``). ``staging``: a folder every executor
    sees at the same path, where the driver stages the index as files (default: none, a broadcast)."""

    def __init__(self, master: str | None = None, staging: str | Path | None = None) -> None:
        self.staging = Path(staging) if staging else None
        if self.staging is not None:
            try:
                self.staging.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInput(f"--spark-staging {staging}: cannot make the folder ({exc.strerror})") from None
        self.spark = spark_session(master)
        self.master = str(self.spark.sparkContext.master)

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.spark.stop()

    def trainers(self) -> dict[str, Callable[..., dict[str, Any]]]:
        """The trainers this engine replaces: the similarity component's (the others run on the driver)."""
        return {"similarity": self.train_similarity}

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
            runner=spark_runner(self.spark, staging=self.staging),
            engine={"engine": "spark", "master": self.master},
        )
