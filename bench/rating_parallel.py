"""The rating component's parallel work, measured so that the machine's load matters little.

1. ``--modes`` runs one ALS fit (K = 50, ``--sweeps`` sweeps, no validation) on the reviews several ways, back to
   back, and checks the models equal: ``procs1`` (every task in this process), ``procs2`` / ``procs3`` (the
   :class:`chorus.shared.workers.ForkPool` with 2 or 3 processes), ``threads2`` (the same tasks on 2 threads of
   this process, through a pool with ForkPool's interface). Each line prints wall seconds and CPU seconds (this
   process and its children): on a loaded machine the wall time of a parallel mode swings, the CPU it spends less.
2. ``--amdahl`` runs :func:`chorus.training.rating.train.train_component` (what ``chorus train --components
   rating`` times; it writes into a version under a temporary folder) on one worker and splits its CPU seconds
   into the part the workers share (the pool's tasks, the bias-only grid, the refit's thread beside the pool)
   and the part only the parent runs; it then replays each round of tasks on 2 processes taking them in order
   (as the pool's counter hands them out) from their measured single-worker seconds, and prints the speed-up on
   2 idle cores this predicts (Amdahl, with each round's wait for its last task).

    .venv/bin/python bench/rating_parallel.py --data /work/gen/reviews-1000000.tsv.gz [--modes procs1,procs2,threads2]
        [--sweeps 4] [--amdahl] [--json PATH]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, write_json  # noqa: E402
from chorus.shared import workers as shared_workers  # noqa: E402
from chorus.shared.artifacts import VersionWriter  # noqa: E402
from chorus.shared.data import Ratings, holdout_split, load_ratings  # noqa: E402
from chorus.shared.workers import ForkPool, using_workers  # noqa: E402
from chorus.training.rating import als  # noqa: E402
from chorus.training.rating import train as rating_train  # noqa: E402
from chorus.training.rating.config import LatentConfig  # noqa: E402
from chorus.training.rating.fitting import Trainset  # noqa: E402


class ThreadPool:
    """ForkPool's interface over threads of this process (the tasks' buffers are then ordinary memory)."""

    def __init__(self, task: Callable[[Any, int], Any], workers: int) -> None:
        self.task, self.workers = task, workers
        self.executor = ThreadPoolExecutor(workers)

    def run(self, job: Any, n: int) -> list[Any]:
        return list(self.executor.map(lambda i: self.task(job, i), range(n)))

    def close(self) -> None:
        self.executor.shutdown()


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def modes(data: Trainset, names: list[str], sweeps: int) -> list[dict]:
    tr, _, _ = holdout_split(data.n, 0, (0.8, 0.1, 0.1))
    fit_on = data.subset(tr)
    cfg = replace(LatentConfig(), n_factors=50, reg_bias=0.1)
    rows, reference = [], None
    for name in names:
        kind, workers = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")) :] or 1)
        if kind not in ("procs", "threads"):
            raise SystemExit(f"unknown mode {name!r}: procsN or threadsN")
        als.ForkPool = ThreadPool if kind == "threads" else ForkPool  # type: ignore[misc]
        try:
            with using_workers(workers):
                t, c = time.perf_counter(), cpu_seconds()
                model, _ = als.fit_als(fit_on, cfg, n_sweeps=sweeps, workers=workers)
                wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        finally:
            als.ForkPool = ForkPool  # type: ignore[misc]
        arrays = model.to_arrays()
        same = reference is None or all(np.array_equal(arrays[k], v) for k, v in reference.items())
        reference = reference or arrays
        rows.append({"mode": name, "seconds": wall, "cpu_seconds": cpu, "same_model": same})
        print(f"{name:<9} {wall:7.2f} s wall  {cpu:7.2f} s CPU  model {'equal' if same else 'DIFFERS'}", flush=True)
    return rows


def amdahl(ratings: Ratings) -> dict:
    """CPU seconds of one-worker training: the parent's own, the bias grid's and each pool round's tasks."""
    rounds: list[list[float]] = []
    bias = [0.0]
    work = ForkPool._work

    def timed_work(self: ForkPool, job: Any, n: int) -> dict[int, Any]:
        done, seconds = {}, []
        for i in range(n):
            c = time.thread_time()
            done[i] = self._task(job, i)
            seconds.append(time.thread_time() - c)
        rounds.append(seconds)
        return done

    def timed_processes(fn: Callable, items: Any, workers: int) -> Any:
        c = time.thread_time()
        out = list(shared_workers.map_processes(fn, items, workers))
        bias[0] += time.thread_time() - c
        return iter(out)

    ForkPool._work = timed_work  # type: ignore[method-assign]
    rating_train.map_processes = timed_processes  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as folder, VersionWriter(folder) as writer, using_workers(1):
            t, c, p = time.perf_counter(), time.thread_time(), time.process_time()
            rating_train.train_component(ratings, writer, seed=0, progress=False, workers=1)
            wall, cpu = time.perf_counter() - t, time.thread_time() - c
            beside = time.process_time() - p - cpu  # other threads: the refit's mean and bias models
    finally:
        ForkPool._work = work  # type: ignore[method-assign]
        rating_train.map_processes = shared_workers.map_processes
    tasks = sum(sum(r) for r in rounds)
    serial = cpu - tasks - bias[0]
    shared = bias[0] + beside  # what 2 workers split: the bias grid, and the thread beside the pool
    replay = 0.0
    for seconds in rounds:
        free = [0.0, 0.0]
        for s in seconds:  # the next task goes to the process that is free first
            free[free.index(min(free))] += s
        replay += max(free)
    one, two = cpu + beside, serial + shared / 2 + replay
    out = {
        "wall_seconds": wall,
        "cpu_seconds": cpu + beside,
        "serial_cpu_seconds": serial,
        "bias_grid_cpu_seconds": bias[0],
        "beside_cpu_seconds": beside,
        "task_cpu_seconds": tasks,
        "rounds": len(rounds),
        "tasks": sum(len(r) for r in rounds),
        "two_process_task_seconds": replay,
        "predicted_speedup_2": one / two,
    }
    print(
        f"1 worker: {wall:.1f} s wall, {one:.2f} s CPU = parent only {serial:.2f} s ({serial / one:.1%}) + bias grid "
        f"{bias[0]:.2f} s + beside the pool {beside:.2f} s + {out['tasks']:,} pool tasks in {len(rounds)} rounds "
        f"{tasks:.2f} s\n"
        f"2 idle cores, predicted: {serial:.2f} + {shared / 2:.2f} + {replay:.2f} (rounds replayed on 2 processes; "
        f"{tasks / 2:.2f} if perfectly even) = {two:.2f} s: {one / two:.2f}x",
        flush=True,
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a review file (e.g. 1M generated reviews)")
    ap.add_argument("--modes", default="procs1,procs2,threads2", help="comma-separated; empty for none")
    ap.add_argument("--sweeps", type=int, default=4)
    ap.add_argument("--amdahl", action="store_true", help="also the one-worker breakdown of rating training")
    ap.add_argument("--json")
    args = ap.parse_args()
    r = load_ratings(args.data, progress=False, with_text=args.amdahl)  # chorus train loads the text for rating
    data = Trainset(r.user, r.item, r.rating, r.n_users, r.n_items, r.scale.low, r.scale.high)
    print(f"{data.n:,} ratings, {data.n_users:,} users, {data.n_items:,} items; {machine()}", flush=True)
    result: dict[str, Any] = {"machine": machine(), "reviews": data.n}
    if args.modes:
        result["modes"] = modes(data, args.modes.split(","), args.sweeps)
    if args.amdahl:
        result["amdahl"] = amdahl(r)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
