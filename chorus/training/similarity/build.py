"""Offline build of the similarity component: the CSR index, its statistics and the item neighbour table.

The table holds, for every item and each measure, its top ``K`` neighbours (ranked as the online query ranks
them). Like Amazon's item-to-item table it is built a block of item rows at a time: the block's rows of the
item×user matrix times the user×item matrix, so memory is bounded by the block (``block_nnz``), never by the
catalogue squared. The arrays written are described in :mod:`chorus.services.similarity.layout`.

Only ``chorus train`` and the benchmarks import this module; the service loads the component with
:mod:`chorus.services.similarity.persistence`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import numpy as np

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.layout import CORE_ARRAYS
from chorus.services.similarity.measures import measure_specs
from chorus.services.similarity.persistence import component_meta, write_component
from chorus.services.similarity.ranking import id_rank
from chorus.services.similarity.side import Side, index_dtype
from chorus.services.similarity.sparse import chunks
from chorus.shared.artifacts import VersionWriter
from chorus.shared.contract.names import Measure, check_k
from chorus.shared.progress import Progress
from chorus.shared.workers import map_threads, resolve_workers
from chorus.training.similarity.cooccur import kernel_values, table_block, warm_up

if TYPE_CHECKING:
    from chorus.shared.data import Ratings


class BuildResult(NamedTuple):
    """``arrays``: everything to store (see :mod:`chorus.services.similarity.layout`); ``stats``: seconds,
    blocks, candidate pairs and memory figures (bytes)."""

    arrays: dict[str, np.ndarray]
    stats: dict[str, Any]


BlockResult: TypeAlias = tuple[dict[Measure, tuple[np.ndarray, np.ndarray, np.ndarray]], int]
"""What :func:`chorus.training.similarity.cooccur.table_block` returns for one block."""

BlockRunner: TypeAlias = Callable[[Side, list[tuple[int, int]], int, tuple[Measure, ...]], Iterable[BlockResult]]
"""``runner(side, blocks, K, measures)``: :func:`~chorus.training.similarity.cooccur.table_block` of every block
``(start, stop)`` of ``side``'s rows, yielded in the order of ``blocks``."""


def thread_runner(workers: int) -> BlockRunner:
    """The numpy engine's :data:`BlockRunner`: the blocks on ``workers`` threads of this process."""

    def run(side: Side, blocks: list[tuple[int, int]], K: int, measures: tuple[Measure, ...]) -> Iterable[BlockResult]:
        values = kernel_values(side)
        warm_up(side.indices.dtype.type)  # load the kernel once, before the threads start (a no-op when loaded)

        def block(bounds: tuple[int, int]) -> BlockResult:
            return table_block(side, values, bounds[0], bounds[1], K, measures)

        return map_threads(block, blocks, workers)

    return run


def trim_heap() -> None:
    """Hand the heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing). The build
    frees hundreds of MB in pieces that glibc would keep for this process, and the components trained after it
    allocate theirs elsewhere (shared memory, their own processes), so the kept pieces would only add to the
    peak."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def block_bounds(work: np.ndarray, block_rows: int, block_nnz: int) -> list[tuple[int, int]]:
    """Consecutive row ranges with at most ``block_rows`` rows and a total ``work`` within ``block_nnz``
    (a single heavier row forms a block of its own). ``work``: int64 (n_rows,)."""
    out: list[tuple[int, int]] = []
    for lo, hi in chunks(work, block_nnz):
        out.extend((s, min(hi, s + block_rows)) for s in range(lo, hi, block_rows))
    return out


#: The index arrays (:meth:`SimilarityIndex.index_arrays`) the item side is made of, in :class:`Side`'s order
ITEM_SIDE_ARRAYS = (
    "item_indptr",
    "item_users",
    "item_ratings",
    "user_indptr",
    "user_items",
    "user_ratings",
    "item_count",
    "item_mean",
    "item_norm",
    "item_rank",
)


def item_side(arrays: Mapping[str, np.ndarray]) -> Side:
    """The item side of the index ``arrays`` (:data:`ITEM_SIDE_ARRAYS`) as the table build needs it: its scipy
    matrices (those of an online query, two of them complex) formed only if something asks for them, which the
    kernel does not."""
    indptr, indices, ratings, t_indptr, t_indices, t_ratings, count, mean, norm, rank = (
        arrays[name] for name in ITEM_SIDE_ARRAYS
    )
    return Side("item", indptr, indices, ratings, t_indptr, t_indices, t_ratings, count, mean, norm, rank, eager=False)


def build_table(
    index: SimilarityIndex | Side,
    K: int = 50,
    measures: Iterable[str] = tuple(Measure),
    *,
    block_rows: int | None = None,
    block_nnz: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    runner: BlockRunner | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Top-``K`` neighbours of every item for each of ``measures``, block by block
    (:func:`chorus.training.similarity.cooccur.table_block`), the blocks computed by ``runner`` (default
    :func:`thread_runner`: spread over ``workers`` threads, the kernel runs without the GIL; see the README,
    "Scaling", for threads against processes; the Spark engine passes one that runs them on executors). Every
    block is computed by the same kernel whoever computes it, so the table is the same for any runner.

    ``index``: the index, or its item side alone (:func:`item_side`; block limits then default to
    :class:`SimilarityConfig`'s). Returns the table arrays (``n_neighbors``, ``neighbors_<m>``, ``scores_<m>``)
    and statistics (``pairs``: the co-occurring pairs scored). ``progress(done_rows, n_items)`` is called after
    each block.
    """
    K = check_k(K, "K")
    chosen = tuple(spec.measure for spec in measure_specs(measures))
    cfg = index.config if isinstance(index, SimilarityIndex) else SimilarityConfig()
    block_rows = block_rows or cfg.block_rows
    block_nnz = block_nnz or cfg.block_nnz
    side = index.items if isinstance(index, SimilarityIndex) else index
    n = side.n_rows
    start = time.perf_counter()
    work = side.row_work()
    blocks = block_bounds(work, block_rows, block_nnz)
    n_nb = np.zeros(n, dtype=np.int32)
    tables = {m: (np.full((n, K), -1, dtype=np.int32), np.zeros((n, K), dtype=np.float64)) for m in chosen}
    runner = runner or thread_runner(workers)
    pairs = 0
    for (lo, hi), (out, n_pairs) in zip(blocks, runner(side, blocks, K, chosen), strict=True):
        for m, (nb, sc, cnt) in out.items():
            tables[m][0][lo:hi] = nb
            tables[m][1][lo:hi] = sc
            n_nb[lo:hi] = cnt
        pairs += n_pairs
        if progress is not None:
            progress(hi, n)
    arrays: dict[str, np.ndarray] = {"n_neighbors": n_nb}
    for m, (nb, sc) in tables.items():
        arrays[f"neighbors_{m}"], arrays[f"scores_{m}"] = nb, sc
    stats = {
        "seconds": time.perf_counter() - start,
        "blocks": len(blocks),
        "max_block_work": int(max((work[lo:hi].sum() for lo, hi in blocks), default=0)),
        "work": int(work.sum()),
        "pairs": pairs,
        "workers": workers,
        "table_bytes": int(sum(a.nbytes for a in arrays.values())),
    }
    return arrays, stats


def build_similarity(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    K: int = 50,
    block_rows: int | None = None,
    block_nnz: int | None = None,
    measures: Iterable[str] = tuple(Measure),
    item_rank: np.ndarray | None = None,
    user_rank: np.ndarray | None = None,
    config: SimilarityConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    trace_memory: bool = True,
    workers: int = 1,
    runner: BlockRunner | None = None,
) -> BuildResult:
    """Build the whole similarity component from rating columns.

    Parameters
    ----------
    user, item : int (n,); rating : float (n,); n_users, n_items : int
        As :meth:`SimilarityIndex.from_arrays` (dense indices, unique pairs).
    K : int
        Neighbours per item in the table.
    block_rows, block_nnz : int, optional
        Block limits (default: ``config``'s); ``block_nnz`` bounds the candidate pairs held at once.
    item_rank, user_rank : int (n_items,), (n_users,), optional
        Raw-id order (default: index order; see :func:`chorus.services.similarity.ranking.id_rank`).
    progress : callable(done_rows, n_items), optional
    trace_memory : bool
        Measure the peak of numpy allocations with ``tracemalloc`` (``stats["peak_traced_bytes"]``).
    workers : int
        Threads the table's blocks are spread over (the table is the same for any number).
    runner : BlockRunner, optional
        Where the blocks run (default :func:`thread_runner` of ``workers``; the Spark engine's runs them on
        executors); see :func:`build_table`.

    Returns
    -------
    BuildResult
        ``arrays`` for :func:`~chorus.services.similarity.persistence.write_component` /
        :meth:`SimilarityIndex.from_saved`, and ``stats``: seconds
        (index, table, total), blocks, work (Σ over items of Σ_{u∈U_i}|I_u|), candidate bound per block, bytes
        of the index and of the table, and the traced peak.
    """
    config = config or SimilarityConfig(table_k=K)
    tracing = trace_memory and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        t0 = time.perf_counter()
        warming = None
        if workers > 1:  # load the kernel beside the index build (with one worker, one core does both in turn)
            index_type = index_dtype(np.asarray(user).shape[0], n_users, n_items)
            warming = threading.Thread(target=warm_up, args=(index_type,), daemon=True)
            warming.start()
        # the index's arrays and its item side only: the table never reads the user side or the scipy matrices
        # an online query multiplies (together about twice what the kernel reads)
        index = SimilarityIndex.index_arrays(
            user, item, rating, n_users, n_items, item_rank=item_rank, user_rank=user_rank
        )
        side = item_side(index)
        t1 = time.perf_counter()
        if warming is not None:
            warming.join()
        table, tstats = build_table(
            side,
            K,
            measures,
            block_rows=block_rows or config.block_rows,
            block_nnz=block_nnz or config.block_nnz,
            progress=progress,
            workers=workers,
            runner=runner,
        )
        peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else None
    finally:
        if tracing:
            tracemalloc.stop()
    del side
    gc.collect()  # a side refers to itself (its lazily formed matrices): let it go now, not at the next collection
    trim_heap()
    arrays = {**index, **table}
    stats = {
        "seconds": time.perf_counter() - t0,
        "index_seconds": t1 - t0,
        "table_seconds": tstats["seconds"],
        "blocks": tstats["blocks"],
        "work": tstats["work"],
        "max_block_work": tstats["max_block_work"],
        "pairs": tstats["pairs"],
        "workers": workers,
        "index_bytes": int(sum(np.asarray(index[n]).nbytes for n in CORE_ARRAYS)),
        "table_bytes": tstats["table_bytes"],
        "peak_traced_bytes": peak,
        "reviews": int(np.asarray(user).shape[0]),
        "users": int(n_users),
        "items": int(n_items),
    }
    return BuildResult(arrays, stats)


def train_component(
    ratings: Ratings,
    writer: VersionWriter,
    *,
    seed: int = 0,
    progress: bool = True,
    workers: int | None = None,
    runner: BlockRunner | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``chorus train`` entry point: build from a :class:`chorus.shared.data.Ratings` and write the component.

    ``seed`` is unused (the build is deterministic); ``workers``: :func:`chorus.shared.workers.resolve_workers`;
    ``runner``: where the table's blocks run (:func:`build_table`); ``engine``: what to record about the engine
    in the component's statistics (the Spark engine's name and master). Returns a short summary for the CLI.
    """
    del seed
    workers = resolve_workers(workers)
    config = SimilarityConfig()
    with Progress("similarity table", total=ratings.n_items) as bar:
        bar.enabled = bar.enabled and progress
        result = build_similarity(
            ratings.user,
            ratings.item,
            ratings.rating,
            ratings.n_users,
            ratings.n_items,
            K=config.table_k,
            item_rank=id_rank(ratings.item_ids),
            user_rank=id_rank(ratings.user_ids),
            config=config,
            progress=lambda done, total: bar.update(done),
            workers=workers,
            runner=runner,
        )
    stats = {**result.stats, **(engine or {})}
    write_component(writer, result.arrays, component_meta(config, config.table_k, tuple(Measure), stats))
    s = result.stats
    return {
        "items": s["items"],
        "K": config.table_k,
        "seconds": round(s["seconds"], 2),
        "pairs": s["pairs"],
        "workers": workers,
        "peak_mb": round((s["peak_traced_bytes"] or 0) / 2**20, 1),
    }
