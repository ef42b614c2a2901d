"""How many workers offline work uses, and the two ways it spreads work over them.

``chorus train --workers N`` (or ``CHORUS_WORKERS``; default: the cores this process may run on) sets the
count. Work is split into pieces whose results do not depend on how many workers compute them (each piece is
computed by the same code whatever ``N`` is, and the results are combined in piece order), so the trained
artifact is the same for every ``N``:

* :func:`map_threads` for pieces whose time is spent in kernels that release the GIL: the neighbour table's
  blocks (a numba kernel compiled ``nogil``, then numpy on large arrays), the ALS batches (batched products and
  LAPACK solves). Threads share the index and the factors, so memory stays that of one process;
* :func:`map_processes` for pieces that are whole fits in Python (the folds of a k-fold evaluation). Workers are
  forked, so they read the parent's arrays in place (copy-on-write shared memory): nothing is pickled on the way
  in, only each piece's result on the way out.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

from chorus.shared.errors import InvalidInput

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


def _run_task(item: Any) -> Any:
    assert _TASK is not None  # set in the parent before the fork
    return _TASK(item)


def map_processes(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``fn(x) for x in items`` computed by up to ``workers`` forked processes, yielded in ``items`` order as
    they complete (so the caller can store each result and report progress while the rest run).

    ``fn`` may be a closure over large arrays: the workers are forked after it is set, so they see it and its
    arrays without pickling. Where fork is not available (or one worker is asked for, or there is one item) the
    items are computed here, one after another.
    """
    global _TASK
    if workers <= 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from (fn(x) for x in items)
        return
    _TASK = fn
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
            yield from pool.map(_run_task, items)
    finally:
        _TASK = None
