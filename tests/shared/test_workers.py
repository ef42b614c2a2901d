"""Worker counts and the two ways offline work is spread over workers."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.workers import (
    ForkPool,
    available_cores,
    map_processes,
    map_threads,
    resolve_workers,
    shared_array,
)


def test_resolve_workers_argument_then_environment_then_cores(monkeypatch):
    monkeypatch.delenv("CHORUS_WORKERS", raising=False)
    assert resolve_workers() == available_cores() >= 1
    monkeypatch.setenv("CHORUS_WORKERS", "3")
    assert resolve_workers() == 3
    assert resolve_workers(2) == 2


@pytest.mark.parametrize("text", ["zero", "1.5", "0", "-2"])
def test_bad_environment_value_is_named(monkeypatch, text):
    monkeypatch.setenv("CHORUS_WORKERS", text)
    with pytest.raises(InvalidInput, match="CHORUS_WORKERS"):
        resolve_workers()


def test_bad_argument_is_named():
    with pytest.raises(InvalidInput, match="workers must be at least 1"):
        resolve_workers(0)


def test_maps_keep_order_and_see_closures():
    big = np.arange(10_000)

    def piece(i: int) -> tuple[int, int]:
        return i, int(big[i::7].sum()) + os.getpid() * 0

    want = [piece(i) for i in range(7)]
    assert list(map_threads(piece, list(range(7)), 3)) == want
    assert list(map_processes(piece, list(range(7)), 2)) == want
    assert list(map_processes(piece, list(range(7)), 1)) == want


def test_process_workers_are_other_processes():
    pids = set(map_processes(lambda _: os.getpid(), list(range(4)), 2))
    assert os.getpid() not in pids


def _pool_task(out: np.ndarray):
    def task(job: tuple[str, int], i: int) -> tuple[int, int]:
        kind, scale = job
        if kind == "fail" and i == 5:
            raise ValueError("task 5 failed")
        out[i] = scale * i  # written in whichever process ran it, read by the parent
        return i, os.getpid()

    return task


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_fork_pool_runs_every_task_once_in_order_and_shares_buffers(workers):
    out = shared_array(40, np.int64)
    with ForkPool(_pool_task(out), workers) as pool:
        assert pool.workers == workers
        for scale in (1, 7):  # the workers serve one job after another
            results = pool.run(("write", scale), 40)
            assert [i for i, _ in results] == list(range(40))
            np.testing.assert_array_equal(out, scale * np.arange(40))
        pids = {pid for _, pid in results}
        assert pids <= {os.getpid(), *(p.pid for p in pool._procs)} and len(pool._procs) == workers - 1
        assert pool.run(("write", 1), 0) == []


def test_fork_pool_uses_its_workers():
    def slow(job: None, i: int) -> int:
        time.sleep(0.002)  # long enough that the counter hands tasks to both processes
        return os.getpid()

    with ForkPool(slow, 2) as pool:
        assert len(set(pool.run(None, 500))) == 2


def test_fork_pool_reports_a_failed_task_and_serves_the_next_job():
    out = shared_array(10, np.int64)
    with ForkPool(_pool_task(out), 2) as pool:
        with pytest.raises((RuntimeError, ValueError), match="task 5 failed"):
            pool.run(("fail", 1), 10)
        assert [i for i, _ in pool.run(("write", 2), 10)] == list(range(10))
        np.testing.assert_array_equal(out, 2 * np.arange(10))


def test_fork_pool_holds_blas_to_one_thread_and_restores_it():
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with ForkPool(lambda job, i: blas_threads(), 2) as pool:
        assert all(t == [1] * len(before) for t in pool.run(None, 8))
    assert blas_threads() == before
