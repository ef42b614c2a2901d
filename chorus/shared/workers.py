"""How many workers offline work uses, and the two ways it spreads work over them.

``chorus train --workers N`` (or ``CHORUS_WORKERS``; default: the cores this process may run on) sets the
count. Work is split into pieces whose results do not depend on how many workers compute them (each piece is
computed by the same code whatever ``N`` is, and the results are combined in piece order), so the trained
artifact is the same for every ``N``:

* :func:`map_threads` for pieces whose time is spent in kernels that release the GIL: the neighbour table's
  blocks (a numba kernel compiled ``nogil``, then numpy on large arrays), the ALS batches (batched products and
  LAPACK solves). Threads share the index and the factors, so memory stays that of one process;
* :func:`map_processes` for pieces that are whole fits in Python (the folds of a k-fold evaluation, the
  bias-only grid of the rating selection). Workers are forked, so they read the parent's arrays in place
  (copy-on-write shared memory): nothing is pickled on the way in, only each piece's result on the way out;
* :class:`ForkPool` for many short rounds of numbered tasks over the same large arrays (the ALS half-sweeps):
  workers forked once, the parent working beside them, tasks handed out one at a time from a shared counter,
  and results written into :func:`shared_array` buffers that every process maps. The tasks are many and short
  (about 7,600 in the rating component's training at 1M reviews, 5 ms on average), so the Python around
  each numpy call is a real share of them; processes share no GIL, so that share runs in parallel too.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from chorus.shared.contract.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

ENV = "CHORUS_WORKERS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform says, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None = None) -> int:
    """``workers`` when given, else ``$CHORUS_WORKERS``, else :func:`available_cores`.

    Raises
    ------
    InvalidInput : a count below 1, or a ``CHORUS_WORKERS`` that is not a whole number.
    """
    if workers is None:
        text = os.environ.get(ENV, "").strip()
        if not text:
            return available_cores()
        try:
            workers = int(text)
        except ValueError:
            raise InvalidInput(f"{ENV} must be a whole number of at least 1, got {text!r}") from None
        source = ENV
    else:
        source = "workers"
    if workers < 1:
        raise InvalidInput(f"{source} must be at least 1, got {workers}")
    return workers


_CURRENT: ContextVar[int | None] = ContextVar("chorus_workers", default=None)


def current_workers() -> int:
    """The count set by the innermost :func:`using_workers`, else :func:`resolve_workers` ``()``: for code deep
    in a fit (implicit's ``num_threads``) that should not carry the count through every signature."""
    n = _CURRENT.get()
    return resolve_workers() if n is None else n


@contextmanager
def using_workers(workers: int) -> Iterator[None]:
    """Within the block, :func:`current_workers` is ``workers`` and BLAS (OpenBLAS / MKL, through
    threadpoolctl) runs on at most that many threads, so ``--workers 1`` means one core."""
    token = _CURRENT.set(workers)
    try:
        with threadpool_limits(workers, "blas"):
            yield
    finally:
        _CURRENT.reset(token)


def map_threads(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``fn(x) for x in items``, computed by up to ``workers`` threads, yielded in ``items`` order as they
    complete."""
    if workers <= 1 or len(items) <= 1:
        yield from (fn(x) for x in items)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        yield from pool.map(fn, items)


_TASK: Callable[[Any], Any] | None = None


def _one_blas_thread() -> None:
    # each worker process is one core: BLAS threads inherited from the parent's limit would only contend
    threadpool_limits(1, "blas")


def _run_task(item: Any) -> Any:
    assert _TASK is not None  # set in the parent before the fork
    return _TASK(item)


def map_processes(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``fn(x) for x in items`` computed by up to ``workers`` forked processes, yielded in ``items`` order as
    they complete (so the caller can store each result and report progress while the rest run).

    ``fn`` may be a closure over large arrays: the workers are forked after it is set, so they see it and its
    arrays without pickling. Each worker runs BLAS on one thread. Where fork is not available (or one worker is
    asked for, or there is one item) the items are computed here, one after another.
    """
    global _TASK
    if workers <= 1 or len(items) <= 1 or not can_fork():
        yield from (fn(x) for x in items)
        return
    _TASK = fn
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(items)), mp_context=ctx, initializer=_one_blas_thread
        ) as pool:
            yield from pool.map(_run_task, items)
    finally:
        _TASK = None


def can_fork() -> bool:
    """Whether worker processes can be forked here (they share the parent's memory: Linux, macOS)."""
    return "fork" in multiprocessing.get_all_start_methods()


def shared_array(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A zeroed array in anonymous shared memory: processes forked after it is made read and write the same
    pages (unlike an ordinary array, which a fork copies on write)."""
    dt = np.dtype(dtype)
    size = int(np.prod(shape)) * dt.itemsize
    buffer = mmap.mmap(-1, max(size, 1))  # MAP_SHARED | MAP_ANONYMOUS, zero-filled
    return np.frombuffer(buffer, dtype=dt, count=size // dt.itemsize).reshape(shape)


class ForkPool:
    """``workers - 1`` processes forked once, which with the parent run the numbered tasks of one job at a time.

    ``task(job, i)`` computes task ``i`` of ``job`` (a small picklable value sent to every worker); it may read
    anything the parent held when the pool was made (copy-on-write) and should write its output into
    :func:`shared_array` buffers made before that; its return value (small: it is pickled) comes back from
    :meth:`run`. Tasks are handed out one at a time from a shared counter, so a busy core takes fewer, and
    :meth:`run` returns after every task is done. Which process ran a task does not change what it computes,
    so the results are the same for any number of workers (with one, or where fork is not available, the
    parent runs every task). BLAS is held to one thread in every process while the pool is open.
    """

    def __init__(self, task: Callable[[Any, int], Any], workers: int) -> None:
        self._task = task
        self._limits = threadpool_limits(1, "blas")
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self._counter: Any = None
        if workers > 1 and can_fork():
            ctx = multiprocessing.get_context("fork")
            self._counter = ctx.Value("q", 0)
            for _ in range(workers - 1):
                here, there = ctx.Pipe()
                proc = ctx.Process(target=self._serve, args=(there,), daemon=True)
                proc.start()
                there.close()
                self._conns.append(here)
                self._procs.append(proc)

    @property
    def workers(self) -> int:
        """Processes working on a job, the parent included."""
        return 1 + len(self._procs)

    def _claim(self) -> int:
        with self._counter.get_lock():
            i = int(self._counter.value)
            self._counter.value = i + 1
        return i

    def _work(self, job: Any, n: int) -> dict[int, Any]:
        done: dict[int, Any] = {}
        if self._counter is None:
            for i in range(n):
                done[i] = self._task(job, i)
            return done
        while (i := self._claim()) < n:
            done[i] = self._task(job, i)
        return done

    def _serve(self, conn: Any) -> None:
        threadpool_limits(1, "blas")
        while True:
            message = conn.recv()
            if message is None:
                return
            try:
                conn.send((True, self._work(*message)))
            except BaseException:  # the parent raises it; this worker stays up for the next job
                conn.send((False, traceback.format_exc()))

    def run(self, job: Any, n: int) -> list[Any]:
        """The results of tasks ``0 .. n - 1`` of ``job``, in task order.

        Raises
        ------
        RuntimeError : a task failed in a worker (its traceback in the message) or a worker died.
        """
        if self._counter is not None:
            self._counter.value = 0
        for conn in self._conns:
            conn.send((job, n))
        done: dict[int, Any] = {}
        failure: str | None = None
        try:
            done = self._work(job, n)
        finally:
            for conn in self._conns:  # collect every worker's share, even when the parent's failed
                try:
                    ok, value = conn.recv()
                except EOFError:
                    ok, value = False, "a worker process died"
                if ok:
                    done.update(value)
                elif failure is None:
                    failure = value
        if failure is not None:
            raise RuntimeError(f"a worker's task failed:\n{failure}")
        return [done[i] for i in range(n)]

    def close(self) -> None:
        """Stop the workers and restore BLAS's thread count."""
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
        self._limits.restore_original_limits()

    def __enter__(self) -> ForkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
