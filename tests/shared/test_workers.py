"""Worker counts and the two ways offline work is spread over workers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from chorus.shared.errors import InvalidInput
from chorus.shared.workers import available_cores, map_processes, map_threads, resolve_workers


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
