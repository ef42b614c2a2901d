"""Offline build of the similarity component: the CSR index, its statistics and the item neighbour table.

The table holds, for every item and each measure, its top ``K`` neighbours (ranked as the online query ranks
them). Like Amazon's item-to-item table it is built a block of item rows at a time: the block's rows of the
item×user matrix times the user×item matrix, so memory is bounded by the block (``block_nnz``), never by the
catalogue squared.

Artifact layout (component ``similarity``; every array a plain ``.npy``)::

    shape, item_indptr, item_users, item_ratings, user_indptr, user_items, user_ratings,
    item_rank, user_rank, item_count, item_mean, item_norm, user_count, user_mean, user_norm   (the index)
    n_neighbors int32 (n_items,)                                      (neighbours per item, ≤ K)
    neighbors_<measure> int32 (n_items, K), -1 padded                  (for jaccard, cosine, pearson)
    scores_<measure> float64 (n_items, K), 0 padded, rounded to 10 places

Titles are not repeated here: the ``data`` component of the same version holds them with the vocabularies.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from chorus.services.similarity.core import (
    _CORE_ARRAYS,
    FORMAT,
    MEASURES,
    SimilarityConfig,
    SimilarityIndex,
    _chunks,
    check_measure,
    id_rank,
    table_array_names,
)
from chorus.shared.errors import ArtifactError, InvalidInput

COMPONENT = "similarity"


class BuildResult(NamedTuple):
    """``arrays``: everything to store (see the module docstring); ``stats``: seconds, blocks, candidate pairs
    and memory figures (bytes)."""

    arrays: dict[str, np.ndarray]
    stats: dict[str, Any]


def block_bounds(work: np.ndarray, block_rows: int, block_nnz: int) -> list[tuple[int, int]]:
    """Consecutive row ranges with at most ``block_rows`` rows and a total ``work`` within ``block_nnz``
    (a single heavier row forms a block of its own). ``work``: int64 (n_rows,)."""
    out = []
    for lo, hi in _chunks(work, block_nnz):
        out.extend((s, min(hi, s + block_rows)) for s in range(lo, hi, block_rows))
    return out


def build_table(
    index: SimilarityIndex,
    K: int = 50,
    measures=MEASURES,
    *,
    block_rows: int | None = None,
    block_nnz: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Top-``K`` neighbours of every item for each of ``measures``, block by block.

    Returns the table arrays (``n_neighbors``, ``neighbors_<m>``, ``scores_<m>``) and statistics.
    ``progress(done_rows, n_items)`` is called after each block.
    """
    if K < 1:
        raise InvalidInput(f"K must be at least 1, got {K}")
    measures = tuple(check_measure(m) for m in measures)
    cfg = index.config
    block_rows = block_rows or cfg.block_rows
    block_nnz = block_nnz or cfg.block_nnz
    side = index._items
    n = index.n_items
    start = time.perf_counter()
    work = side.work()
    blocks = block_bounds(work, block_rows, block_nnz)
    n_nb = np.zeros(n, dtype=np.int32)
    tables = {m: (np.full((n, K), -1, dtype=np.int32), np.zeros((n, K), dtype=np.float64)) for m in measures}
    for lo, hi in blocks:
        out = side.top_k_block(lo, hi, K, measures)
        for m, (nb, sc, cnt) in out.items():
            tables[m][0][lo:hi] = nb
            tables[m][1][lo:hi] = sc
            n_nb[lo:hi] = cnt
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
    measures=MEASURES,
    item_rank: np.ndarray | None = None,
    user_rank: np.ndarray | None = None,
    config: SimilarityConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    trace_memory: bool = True,
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
        Raw-id order (default: index order; see :func:`chorus.services.similarity.core.id_rank`).
    progress : callable(done_rows, n_items), optional
    trace_memory : bool
        Measure the peak of numpy allocations with ``tracemalloc`` (``stats["peak_traced_bytes"]``).

    Returns
    -------
    BuildResult
        ``arrays`` for :func:`write_component` / :meth:`SimilarityIndex.from_saved`, and ``stats``: seconds
        (index, table, total), blocks, work (Σ over items of Σ_{u∈U_i}|I_u|), candidate bound per block, bytes
        of the index and of the table, and the traced peak.
    """
    config = config or SimilarityConfig(table_k=K)
    tracing = trace_memory and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        t0 = time.perf_counter()
        index = SimilarityIndex.from_arrays(
            user, item, rating, n_users, n_items, item_rank=item_rank, user_rank=user_rank, config=config
        )
        t1 = time.perf_counter()
        table, tstats = build_table(index, K, measures, block_rows=block_rows, block_nnz=block_nnz, progress=progress)
        peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else None
    finally:
        if tracing:
            tracemalloc.stop()
    arrays = {**index.to_arrays(), **table}
    stats = {
        "seconds": time.perf_counter() - t0,
        "index_seconds": t1 - t0,
        "table_seconds": tstats["seconds"],
        "blocks": tstats["blocks"],
        "work": tstats["work"],
        "max_block_work": tstats["max_block_work"],
        "index_bytes": int(sum(np.asarray(index.to_arrays()[n]).nbytes for n in _CORE_ARRAYS)),
        "table_bytes": tstats["table_bytes"],
        "peak_traced_bytes": peak,
        "reviews": int(np.asarray(user).shape[0]),
        "users": int(n_users),
        "items": int(n_items),
    }
    return BuildResult(arrays, stats)


def component_meta(config: SimilarityConfig, K: int, measures, stats: Mapping[str, Any]) -> dict[str, dict]:
    """The ``hyperparameters`` and ``metrics`` recorded for the component."""
    hyper = dataclasses.asdict(config)
    hyper.update(table_k=int(K), measures=list(measures), format=FORMAT)
    metrics = {k: (float(v) if isinstance(v, float) else v) for k, v in stats.items()}
    return {"hyperparameters": hyper, "metrics": metrics}


def write_component(writer, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Mapping]) -> None:
    """Store ``arrays`` as the ``similarity`` component of an artifact version being written.

    ``writer``: a :class:`chorus.shared.artifacts.VersionWriter`; ``meta``: ``{"hyperparameters": ..., "metrics":
    ...}`` (see :func:`component_meta`).
    """
    missing = [n for n in _CORE_ARRAYS if n not in arrays]
    if missing:
        raise ArtifactError(f"refusing to write a similarity component without {', '.join(missing)}")
    for name, array in arrays.items():
        writer.save_array(COMPONENT, name, np.asarray(array))
    writer.set_component_meta(
        COMPONENT, hyperparameters=dict(meta.get("hyperparameters", {})), metrics=dict(meta.get("metrics", {}))
    )


def load_component(version, config: SimilarityConfig | None = None) -> SimilarityIndex:
    """The ``similarity`` component of a verified :class:`chorus.shared.artifacts.Version`, as a ready index.

    Arrays stay memory-mapped (read-only); the query settings come from the stored hyperparameters unless
    ``config`` is given.

    Raises
    ------
    ArtifactError : no such component, another format, or arrays that do not fit together.
    """
    meta = version.component_meta(COMPONENT)
    hyper = dict(meta.get("hyperparameters", {}))
    if hyper.get("format") != FORMAT:
        raise ArtifactError(f"similarity component of format {hyper.get('format')!r}; this Chorus reads {FORMAT}")
    if config is None:
        fields = {f.name for f in dataclasses.fields(SimilarityConfig)}
        config = SimilarityConfig(**{k: v for k, v in hyper.items() if k in fields})
    measures = [m for m in hyper.get("measures", []) if m in MEASURES]
    names = list(_CORE_ARRAYS) + (table_array_names(measures) if measures else [])
    return SimilarityIndex.from_saved({name: version.array(COMPONENT, name) for name in names}, config)


def train_component(ratings, writer, *, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """``chorus train`` entry point: build from a :class:`chorus.shared.data.Ratings` and write the component.

    ``seed`` is unused (the build is deterministic). Returns a short summary for the CLI.
    """
    del seed
    from chorus.shared.progress import Progress

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
        )
    write_component(writer, result.arrays, component_meta(config, config.table_k, MEASURES, result.stats))
    s = result.stats
    return {
        "items": s["items"],
        "K": config.table_k,
        "seconds": round(s["seconds"], 2),
        "peak_mb": round((s["peak_traced_bytes"] or 0) / 2**20, 1),
    }
