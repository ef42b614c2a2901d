"""The item neighbour table on Apache Spark (``chorus train --engine spark``): the same arrays as
:func:`chorus.training.similarity.build.build_table`, computed on a cluster.

Exact co-occurrence through a self-join on users: every pair of a user's reviews ``(i, j)``, ``i ≠ j``, emits
one row with that user's contribution to each sum (1, ``R_ui·R_uj``, ``z_ui·z_uj``, ``z_ui²``, ``z_uj²``; ``z``
centred by the item's mean over all its ratings, the means computed here once and shipped with the job), and a
``groupBy(i, j)`` adds them up: the terms of :class:`chorus.services.similarity.measures.Term` for every
co-occurring pair, ``W = Σ_u |I_u|²`` rows before Spark's map-side combine. Each item's candidates are then
scored and cut to the top ``K`` in Python workers (``applyInPandas``) by the very functions the numpy engine
uses (:data:`~chorus.services.similarity.measures.REGISTRY`, :mod:`~chorus.services.similarity.ranking`), so
no formula is written twice. Spark adds a pair's contributions in no fixed order, so a sum may differ from the
numpy engine's in its last bit; scores are rounded to 10 decimals before ranking, so answers agree except for a
score that falls within one rounding step of a tie (none on the Amazon 5-core file; the tests check).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from chorus.services.similarity.measures import Term
from chorus.services.similarity.ranking import decode_keys, ranking_keys, smallest_keys
from chorus.services.similarity.side import Side, plan
from chorus.shared.contract.names import Measure

#: schema of the per-item answers collected to the driver
RESULT_SCHEMA = "measure int, item long, pos int, neighbour long, score double, n long"


def pair_sums(spark: Any, reviews: Any, mean: np.ndarray) -> Any:
    """Every co-occurring item pair with its sums: a DataFrame ``(i, j, common, dot, centred_dot, squares_a,
    squares_b)``.

    ``reviews``: DataFrame ``(u long, i long, r double)``, one row per review; ``mean``: float64 (n_items,)
    each item's mean rating (the ``z`` centring)."""
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's own convention

    means = spark.createDataFrame([(int(i), float(m)) for i, m in enumerate(mean)], "i long, m double")
    z = reviews.join(F.broadcast(means), "i").withColumn("z", F.col("r") - F.col("m")).drop("m")
    a, b = z.alias("a"), z.alias("b")
    pairs = a.join(b, F.col("a.u") == F.col("b.u")).where(F.col("a.i") != F.col("b.i"))
    return pairs.groupBy(F.col("a.i").alias("i"), F.col("b.i").alias("j")).agg(
        F.count(F.lit(1)).cast("double").alias("common"),
        F.sum(F.col("a.r") * F.col("b.r")).alias("dot"),
        F.sum(F.col("a.z") * F.col("b.z")).alias("centred_dot"),
        F.sum(F.col("a.z") * F.col("a.z")).alias("squares_a"),
        F.sum(F.col("b.z") * F.col("b.z")).alias("squares_b"),
    )


def _top_k_per_item(side: Side, k: int, measures: tuple[str, ...]) -> Any:
    """The ``applyInPandas`` function: one item's candidates in, its top ``k`` per measure out."""
    import pandas as pd

    specs, needs = plan(measures)
    columns = {
        Term.common: "common",
        Term.dot: "dot",
        Term.centred_dot: "centred_dot",
        Term.centred_squares_a: "squares_a",
        Term.centred_squares_b: "squares_b",
    }

    def top(group: pd.DataFrame) -> pd.DataFrame:
        item = int(group["i"].iloc[0])
        col = group["j"].to_numpy(np.int64)
        terms = side.row_terms(needs, np.array([item]), col)
        for term, name in columns.items():
            terms[term] = group[name].to_numpy(np.float64)
        parts = []
        for m, spec in enumerate(specs):
            keys = smallest_keys(ranking_keys(spec.score(terms), side.rank[col], side.rank_bits), k)
            idx, rounded = decode_keys(keys, side.index_of_rank, side.rank_bits)
            parts.append(
                pd.DataFrame(
                    {
                        "measure": np.full(idx.shape[0], m, np.int32),
                        "item": np.full(idx.shape[0], item, np.int64),
                        "pos": np.arange(idx.shape[0], dtype=np.int32),
                        "neighbour": idx,
                        "score": rounded,
                        "n": np.full(idx.shape[0], col.shape[0], np.int64),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    return top


def spark_table(
    spark: Any, reviews: Any, side: Side, K: int, measures: Iterable[str] = tuple(Measure)
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The neighbour table (the arrays :func:`chorus.training.similarity.build.build_table` returns) computed by
    Spark from ``reviews`` (DataFrame ``(u long, i long, r double)``); ``side`` is the item side of the index
    built from the same reviews (statistics, ranks). Returns the arrays and ``{"pairs": co-occurring pairs}``."""
    chosen = tuple(spec.measure for spec in plan(tuple(measures))[0])
    sums = pair_sums(spark, reviews, side.mean)
    answers = sums.groupBy("i").applyInPandas(_top_k_per_item(side, K, chosen), RESULT_SCHEMA).toPandas()
    n = side.n_rows
    n_nb = np.zeros(n, dtype=np.int32)
    arrays: dict[str, np.ndarray] = {}
    pairs = 0
    for m, measure in enumerate(chosen):
        rows = answers[answers["measure"] == m]
        item = rows["item"].to_numpy(np.int64)
        pos = rows["pos"].to_numpy(np.int64)
        nb = np.full((n, K), -1, dtype=np.int32)
        sc = np.zeros((n, K), dtype=np.float64)
        nb[item, pos] = rows["neighbour"].to_numpy(np.int64)
        sc[item, pos] = rows["score"].to_numpy(np.float64)
        arrays[f"neighbors_{measure}"], arrays[f"scores_{measure}"] = nb, sc
        if m == 0:
            first = rows[rows["pos"] == 0]
            counts = first["n"].to_numpy(np.int64)
            n_nb[first["item"].to_numpy(np.int64)] = np.minimum(counts, K)
            pairs = int(counts.sum())
    return {"n_neighbors": n_nb, **arrays}, {"pairs": pairs}
