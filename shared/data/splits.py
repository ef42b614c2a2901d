"""Deterministic splits: the same seed gives the same split on every machine.

Both splits draw one permutation from ``numpy.random.default_rng(seed)`` (PCG64, whose stream numpy keeps
stable across platforms and versions) and cut it, so they depend only on ``n`` and ``seed``.
"""

from __future__ import annotations

import numpy as np
from chorus.shared.errors import InvalidInput


def holdout_split(
    n: int, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train/validation/test row indices (int64, each sorted).

    ``fractions`` must be three non-negative numbers summing to 1; sizes are ``floor(f * n)`` for validation
    and test, the rest is train.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise InvalidInput(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(np.floor(fractions[1] * n))
    n_test = int(np.floor(fractions[2] * n))
    n_train = n - n_val - n_test
    train, val, test = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    return np.sort(train), np.sort(val), np.sort(test)


def kfold_split(n: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) pairs of sorted row indices; the test parts are disjoint and cover all rows."""
    if k < 2 or k > n:
        raise InvalidInput(f"k-fold needs 2 <= folds <= rows, got folds={k} for {n} rows")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, k)
    folds = []
    for f in range(k):
        test = np.sort(parts[f])
        train = np.sort(np.concatenate([parts[g] for g in range(k) if g != f]))
        folds.append((train, test))
    return folds
