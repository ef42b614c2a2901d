"""The item neighbour table on Apache Spark (``chorus train --engine spark``): the numpy engine's build with its
item blocks run on Spark's executors.

The table is built exactly as :func:`chorus.training.similarity.build.build_table` builds it, through that very
function: the item rows are cut into the same blocks (:func:`~chorus.training.similarity.build.block_bounds`),
and each block runs the same compiled kernel (:func:`chorus.training.similarity.cooccur.table_block`). Only
*where* a block runs differs: :func:`spark_runner` ships runs of blocks to the executors as tasks, and each
executor reads the inverted index (the item×user and user×item CSR layouts of the item side) staged by the
driver: one Spark broadcast, or ``.npy`` files in a folder every executor sees (``--spark-staging``), which the
Python workers of one host map into memory and so hold once. No co-occurring pair is ever written anywhere:
each block keeps only its rows' top ``K`` per measure, and those come back to the driver, a job at a time, to be
placed in the table. Every row's answer depends on that row alone, computed by the same operations in the same
order, so the table is the same bytes as the numpy engine's, whatever the cluster.

An executor builds its :class:`~chorus.services.similarity.side.Side` and the kernel's input once per Python
worker and build (PySpark reuses its workers between tasks), so a worker holds the index once, however many
blocks it runs.

The whole index must fit in each executor's Python memory (``spark.executor.pyspark.memory``: the item side's
two CSR layouts and the kernel's copy of them; ``docs/operations/spark.md`` has the sizes). Past that, the table
would need the index partitioned by user as well, which this engine does not do: for such data, give the
executors more memory.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from chorus.services.similarity.side import Side
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import ITEM_SIDE_ARRAYS, BlockResult, BlockRunner, item_side
from chorus.training.similarity.cooccur import KernelInput, kernel_values, table_block

ROUNDS = 4
"""Spark jobs per build: each has one task per task slot, a run of consecutive blocks of about equal work. Few
tasks, because a task's fixed cost (a fraction of a second on a loaded machine) adds up over thousands of
blocks; more than one job, so that the answers gathered on the driver at once (each block's top ``K``) stay a
fraction of the table."""

_EXECUTOR_SIDE: dict[str, tuple[Side, KernelInput]] = {}
"""In an executor's Python worker: the side and kernel input of the build (by token) it last served."""


def side_arrays(side: Side) -> dict[str, np.ndarray]:
    """The arrays :func:`~chorus.training.similarity.build.item_side` rebuilds ``side`` from (those it was made
    of: :data:`~chorus.training.similarity.build.ITEM_SIDE_ARRAYS`)."""
    t_indices, t_indptr, _ = side._t_layout
    values = (side.indptr, side.indices, side.ratings, t_indptr, t_indices, side._right_values["x"]())
    stats = (side.count, side.mean, side.norm, side.rank)
    return dict(zip(ITEM_SIDE_ARRAYS, (*values, *stats), strict=True))


def _executor_side(shared: Any, token: str) -> tuple[Side, KernelInput]:
    """The side and kernel input of the build ``token``, built on the first task of this worker that needs them
    (the side lazily: the kernel reads four of its layouts, never the scipy matrices of an online query). Its
    arrays: broadcast ``shared``, or the folder ``shared`` names (memory-mapped, so the workers of one host share
    the pages)."""
    if token not in _EXECUTOR_SIDE:
        _EXECUTOR_SIDE.clear()  # a worker serves one build at a time: let the previous index go first
        if isinstance(shared, str):
            a = {name: np.load(Path(shared) / f"{name}.npy", mmap_mode="r") for name in ITEM_SIDE_ARRAYS}
        else:
            a = shared.value
        side = item_side(a)
        _EXECUTOR_SIDE[token] = (side, kernel_values(side))
    return _EXECUTOR_SIDE[token]


def _run_blocks(
    shared: Any, token: str, K: int, measures: tuple[Measure, ...], blocks: Iterable[tuple[int, int]]
) -> Iterator[BlockResult]:
    """The ``mapPartitions`` function: :func:`table_block` of each block of this partition."""
    side, values = _executor_side(shared, token)
    for start, stop in blocks:
        yield table_block(side, values, start, stop, K, measures)


def task_groups(work: np.ndarray, blocks: list[tuple[int, int]], groups: int) -> list[list[tuple[int, int]]]:
    """``blocks`` cut into at most ``groups`` runs of consecutive blocks of about equal total ``work`` (int64
    (n_rows,), each row's), none empty."""
    if not blocks:
        return []
    csum = np.concatenate([[0], np.cumsum(work, dtype=np.int64)])
    done = csum[[hi for _, hi in blocks]].astype(np.float64)  # work up to each block's end
    total = done[-1]
    cut = np.searchsorted(done, total * np.arange(1, groups) / groups, side="left") + 1
    edges = np.unique(np.concatenate([[0], cut, [len(blocks)]]))
    return [blocks[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def spark_runner(
    spark: Any, slots: int | None = None, rounds: int = ROUNDS, staging: Path | None = None
) -> BlockRunner:
    """A :data:`~chorus.training.similarity.build.BlockRunner` that runs the blocks on ``spark``'s executors.

    The side's arrays are staged once per build: broadcast, or with ``staging`` (a folder every executor sees at
    the same path) written there as ``.npy`` files, which each executor maps into memory. The blocks are cut
    into ``rounds`` x ``slots`` runs of consecutive blocks of about equal work (:func:`task_groups`; ``slots``
    default: Spark's ``defaultParallelism``, its task slots), one task each, and run as ``rounds`` jobs of
    ``slots`` tasks; the answers come back in block order. What was staged is removed when the build ends."""

    def run(side: Side, blocks: list[tuple[int, int]], K: int, measures: tuple[Measure, ...]) -> Iterator[BlockResult]:
        sc = spark.sparkContext
        width = slots or sc.defaultParallelism
        groups = task_groups(side.row_work(), blocks, rounds * width)
        token = uuid.uuid4().hex
        arrays = side_arrays(side)
        shared: Any
        if staging is None:
            shared = sc.broadcast(arrays)
        else:
            folder = Path(staging) / f"chorus-index-{token}"
            folder.mkdir(parents=True)
            for name, array in arrays.items():
                np.save(folder / f"{name}.npy", array, allow_pickle=False)
            shared = str(folder.resolve())
        try:
            task = partial(_run_blocks, shared, token, K, measures)
            for r in range(0, len(groups), width):
                wave = groups[r : r + width]
                rdd = sc.parallelize(wave, len(wave)).flatMap(lambda group: group)  # one partition per group
                yield from rdd.mapPartitions(task).collect()
        finally:
            if staging is None:
                shared.destroy()
            else:
                shutil.rmtree(shared, ignore_errors=True)

    return run
