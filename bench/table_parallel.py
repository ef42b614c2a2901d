"""The neighbour table's build, four ways, back to back on the same generated reviews: the numpy/scipy path
(``Side.top_k_block``, the readable reference), the compiled kernel on 1 worker, on 2 threads and on 2 forked
processes (copy-on-write index). Prints wall seconds and the co-occurring pairs; the tables are checked equal.

    .venv/bin/python bench/table_parallel.py --reviews 1000000 [--modes numpy,kernel1,threads2,procs2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chorus.services.similarity.index import SimilarityIndex  # noqa: E402
from chorus.shared.data.synthetic import FAMILY_OF_PRODUCT, PRODUCTS, PlantedModel, _pairs  # noqa: E402
from chorus.shared.workers import map_processes, map_threads  # noqa: E402
from chorus.training.similarity import build  # noqa: E402


def generated_index(n: int, seed: int = 0) -> SimilarityIndex:
    """The (user, item) pairs the generator draws for ``n`` reviews (its own sizes), with random stars."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(20, n // 6), max(20, n // 25)
    product = rng.integers(0, len(PRODUCTS), n_items)
    family = np.array([FAMILY_OF_PRODUCT[PRODUCTS[p]] for p in product.tolist()])
    user, item = _pairs(n, n_users, n_items, family, PlantedModel(), rng)
    return SimilarityIndex.from_arrays(user, item, rng.integers(1, 6, n).astype(float), n_users, n_items)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reviews", type=int, default=1_000_000)
    ap.add_argument("--modes", default="numpy,kernel1,threads2,procs2")
    args = ap.parse_args()
    index = generated_index(args.reviews)
    kernel_block, reference = build.table_block, None
    for mode in args.modes.split(","):
        workers, label = 1, mode
        if mode == "numpy":
            build.table_block = lambda side, values, lo, hi, k, m: (side.top_k_block(lo, hi, k, m), 0)
            label = "numpy/scipy path, 1 worker"
        elif mode == "kernel1":
            label = "kernel, 1 worker"
        elif mode == "threads2":
            workers, label = 2, "kernel, 2 threads"
        elif mode == "procs2":
            build.map_threads = map_processes
            workers, label = 2, "kernel, 2 forked processes"
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        t = time.perf_counter()
        arrays, stats = build.build_table(index, 50, workers=workers)
        pairs = f"  pairs {stats['pairs']:,}" if stats["pairs"] else ""  # the reference path does not count them
        print(f"{label:<28} {time.perf_counter() - t:7.1f} s{pairs}", flush=True)
        build.table_block, build.map_threads = kernel_block, map_threads
        if reference is None:
            reference = arrays
        assert all(np.array_equal(arrays[k], reference[k]) for k in reference), f"{mode}: another table"
    return 0


if __name__ == "__main__":
    sys.exit(main())
