"""The latent factor model on Apache Spark (``chorus train --engine spark``): MLlib's ALS, with biases, written as
the same ``rating`` component the numpy engine writes (``f(u,i) = α + β_u + β_i + γ_u·γ_i``).

MLlib's ALS (Zhou et al. 2008, "ALS-WR": each user's and item's ridge penalty scaled by its rating count) has no
bias terms, so they are fitted first and the factors model what they leave:

1. α = the mean training rating; β_i = Σ_{u∈U_i} (R_ui − α) / (n_i + λ_b); β_u = Σ_{i∈I_u} (R_ui − α − β_i) /
   (n_u + λ_b) (Koren's baseline estimates, one pass each, as DataFrame aggregations);
2. ALS on the residuals ``R_ui − α − β_u − β_i`` with rank K, ``regParam`` λ and ``maxIter`` sweeps.

The split (``chorus.shared.data.holdout_split``, 80/10/10) is the numpy engine's: λ_b and λ are chosen on the
validation rows from :data:`GRID`, the model is refitted on train + validation, and the test rows are scored
once, so the figures compare directly with the numpy engine's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chorus.services.rating.models import RatingModel
from chorus.training.rating.accuracy import metrics, rmse
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.objective import Params


@dataclass(frozen=True)
class SparkAlsConfig:
    """Hyperparameters of the Spark engine's rating model (defaults in one place).

    ``rank`` K; ``reg_bias`` λ_b candidates; ``reg`` MLlib ``regParam`` candidates; ``max_iter`` ALS sweeps;
    ``seed`` MLlib's."""

    rank: int = 10
    reg_bias: tuple[float, ...] = (5.0,)
    reg: tuple[float, ...] = (0.3, 1.0)
    max_iter: int = 10
    seed: int = 0


def _per_key(frame: Any, key: str, value: Any, n: int, reg_bias: float) -> np.ndarray:
    """Σ value / (count + λ_b) per ``key`` (0..n-1), collected: float64 (n,)."""
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's own convention

    out = np.zeros(n)
    rows = frame.groupBy(key).agg(F.sum(value).alias("s"), F.count(F.lit(1)).alias("n")).toPandas()
    out[rows[key].to_numpy(np.int64)] = rows["s"].to_numpy(np.float64) / (rows["n"].to_numpy(np.float64) + reg_bias)
    return out


def _lookup(spark: Any, key: str, values: np.ndarray, name: str) -> Any:
    import pandas as pd

    return spark.createDataFrame(pd.DataFrame({key: np.arange(values.shape[0], dtype=np.int64), name: values}))


def fit_spark_als(
    spark: Any, reviews: Any, n_users: int, n_items: int, config: SparkAlsConfig, reg_bias: float, reg: float
) -> Params:
    """Biases, then MLlib ALS on the residuals, on ``reviews`` (DataFrame ``u long, i long, r double``)."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's own convention

    alpha = float(reviews.agg(F.avg("r")).first()[0])
    bi = _per_key(reviews, "i", F.col("r") - alpha, n_items, reg_bias)
    with_bi = reviews.join(F.broadcast(_lookup(spark, "i", bi, "bi")), "i")
    bu = _per_key(with_bi, "u", F.col("r") - alpha - F.col("bi"), n_users, reg_bias)
    residual = with_bi.join(F.broadcast(_lookup(spark, "u", bu, "bu")), "u").select(
        "u", "i", (F.col("r") - alpha - F.col("bu") - F.col("bi")).alias("r")
    )
    als = ALS(
        rank=config.rank,
        maxIter=config.max_iter,
        regParam=reg,
        userCol="u",
        itemCol="i",
        ratingCol="r",
        seed=config.seed,
        coldStartStrategy="nan",
    )
    model = als.fit(residual)
    pu = np.zeros((n_users, config.rank))
    qi = np.zeros((n_items, config.rank))
    for factors, out in ((model.userFactors, pu), (model.itemFactors, qi)):
        frame: Any = factors.toPandas()
        if len(frame):
            out[frame["id"].to_numpy(np.int64)] = np.stack(frame["features"].to_numpy())
    return Params(alpha, bu, bi, pu, qi)


@dataclass
class SparkRatingResult:
    model: RatingModel
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    seconds: float


def train_spark_rating(
    spark: Any, reviews: Any, data: Trainset, *, seed: int = 0, config: SparkAlsConfig | None = None
) -> SparkRatingResult:
    """Select (λ_b, λ) on validation, refit on train + validation, score test (the numpy engine's split).

    ``reviews``: DataFrame ``(row long, u long, i long, r double)`` of ``data``'s rows (``row`` its index in
    ``data``); ``data`` the same ratings on the driver (the split, the scale and the test predictions)."""
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's own convention

    from chorus.shared.data import holdout_split

    t0 = time.perf_counter()
    config = config or SparkAlsConfig(seed=seed)
    tr, va, te = holdout_split(data.n, seed, (0.8, 0.1, 0.1))
    part = np.zeros(data.n, dtype=np.int64)
    part[va], part[te] = 1, 2
    split = _lookup(reviews.sparkSession, "row", part, "part")
    labelled = reviews.join(split, "row").cache()
    train_rows = labelled.where(F.col("part") == 0).select("u", "i", "r").cache()
    fit_rows = labelled.where(F.col("part") < 2).select("u", "i", "r").cache()
    grid = []
    best: tuple[float, float, float] | None = None
    for lb in config.reg_bias:
        for lam in config.reg:
            p = fit_spark_als(spark, train_rows, data.n_users, data.n_items, config, lb, lam)
            error = rmse(np.clip(p.scores(data.user[va], data.item[va]), data.low, data.high), data.rating[va])
            grid.append({"reg_bias": lb, "reg": lam, "validation_rmse": error})
            if best is None or error < best[0]:
                best = (error, lb, lam)
    assert best is not None  # the grid is not empty
    _, lb, lam = best
    params = fit_spark_als(spark, fit_rows, data.n_users, data.n_items, config, lb, lam)
    model = params.to_model("latent", data.subset(np.concatenate([tr, va])))
    for frame in (labelled, train_rows, fit_rows):
        frame.unpersist()
    test = {}
    if te.size:
        test["latent"] = metrics(model.predict(data.user[te], data.item[te]).rating, data.rating[te])
    hyper = {
        "selected": "latent",
        "trainer": "spark-mllib-als",
        "n_factors": config.rank,
        "reg_bias": lb,
        "reg_factors": lam,
        "max_iter": config.max_iter,
        "seed": config.seed,
        "grid": grid,
    }
    result_metrics = {
        "validation_rmse": {"latent": best[0]},
        "test": test,
        "split": {"train": int(tr.size), "validation": int(va.size), "test": int(te.size), "seed": seed},
    }
    return SparkRatingResult(model, hyper, result_metrics, time.perf_counter() - t0)
