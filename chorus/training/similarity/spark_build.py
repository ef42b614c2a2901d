"""The item neighbour table on Apache Spark (``chorus train --engine spark``): the numpy engine's build with its
item blocks run on Spark's executors.

The table is built exactly as :func:`chorus.training.similarity.build.build_table` builds it, through that very
function: the item rows are cut into the same blocks (:func:`~chorus.training.similarity.build.block_bounds`),
and each block runs the same compiled kernel (:func:`chorus.training.similarity.cooccur.table_block`). Only
*where* a block runs differs: :func:`spark_runner` ships the blocks to the executors as an RDD of row ranges,
and each executor reads the inverted index (the item×user and user×item CSR layouts of the item side, about
40 bytes per review) from one Spark broadcast. So no co-occurring pair is ever written anywhere: each block
keeps only its rows' top ``K`` per measure, and those come back to the driver, a wave of blocks at a time, to
be placed in the table. Every row's answer depends on that row alone, computed by the same operations in the
same order, so the table is the same bytes as the numpy engine's, whatever the cluster.

An executor builds its :class:`~chorus.services.similarity.side.Side` and the kernel's input once per Python
worker and broadcast (PySpark reuses its workers between tasks), so a worker holds the index once, however
many blocks it runs.

The whole index must fit in each executor's Python memory (``spark.executor.pyspark.memory``: the item side's
two CSR layouts and the kernel's copy of them; ``docs/operations/spark.md`` has the sizes). Past that, the table
would need the index partitioned by user as well, which this engine does not do: for such data, give the
executors more memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np

from chorus.services.similarity.side import Side
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import BlockResult, BlockRunner
from chorus.training.similarity.cooccur import KernelInput, kernel_values, table_block

WAVE = 4
"""Blocks per task slot in one Spark job: enough to even out blocks of unequal cost, few enough that the
answers of one job (each block's top ``K``) stay small on the driver."""

_EXECUTOR_SIDE: dict[str, tuple[Side, KernelInput]] = {}
"""In an executor's Python worker: the side and kernel input of the build (by token) it last served."""


def side_arrays(side: Side) -> dict[str, np.ndarray]:
    """The arrays ``Side(side.name, **side_arrays(side))`` is rebuilt from (the ones ``side`` was made of)."""
    t_indices, t_indptr, _ = side._t_layout
    return {
        "indptr": side.indptr,
        "indices": side.indices,
        "ratings": side.ratings,
        "t_indptr": t_indptr,
        "t_indices": t_indices,
        "t_ratings": side.right["x"].data,
        "count": side.count,
        "mean": side.mean,
        "norm": side.norm,
        "rank": side.rank,
    }


def _executor_side(shared: Any, token: str) -> tuple[Side, KernelInput]:
    """The side and kernel input of the build ``token`` (its arrays: broadcast ``shared``), built on the first
    task of this worker that needs them (the side lazily: the kernel reads four of its layouts, never the scipy
    matrices of an online query)."""
    if token not in _EXECUTOR_SIDE:
        _EXECUTOR_SIDE.clear()  # a worker serves one build at a time: let the previous index go first
        a = shared.value
        layouts = (a["indptr"], a["indices"], a["ratings"], a["t_indptr"], a["t_indices"], a["t_ratings"])
        side = Side("item", *layouts, a["count"], a["mean"], a["norm"], a["rank"], eager=False)
        _EXECUTOR_SIDE[token] = (side, kernel_values(side))
    return _EXECUTOR_SIDE[token]


def _run_blocks(
    shared: Any, token: str, K: int, measures: tuple[Measure, ...], blocks: Iterable[tuple[int, int]]
) -> Iterator[BlockResult]:
    """The ``mapPartitions`` function: :func:`table_block` of each block of this partition."""
    side, values = _executor_side(shared, token)
    for start, stop in blocks:
        yield table_block(side, values, start, stop, K, measures)


def spark_runner(spark: Any, slots: int | None = None) -> BlockRunner:
    """A :data:`~chorus.training.similarity.build.BlockRunner` that runs the blocks on ``spark``'s executors.

    The side's arrays are broadcast once per build; the blocks go in jobs of :data:`WAVE` x ``slots`` blocks
    (default: Spark's ``defaultParallelism``, its task slots), one block per task, and the answers come back in
    block order. The broadcast is destroyed when the build ends."""

    def run(side: Side, blocks: list[tuple[int, int]], K: int, measures: tuple[Measure, ...]) -> Iterator[BlockResult]:
        sc = spark.sparkContext
        width = slots or sc.defaultParallelism
        shared = sc.broadcast(side_arrays(side))
        try:
            task = partial(_run_blocks, shared, uuid.uuid4().hex, K, measures)
            step = WAVE * width
            for w in range(0, len(blocks), step):
                wave = blocks[w : w + step]
                yield from sc.parallelize(wave, len(wave)).mapPartitions(task).collect()
        finally:
            shared.destroy()

    return run
