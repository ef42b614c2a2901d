"""Deterministic splits: the same seed gives the same split on every machine.

Both splits draw one permutation from ``numpy.random.default_rng(seed)`` (PCG64, whose stream numpy keeps
stable across platforms and versions) and cut it, so they depend only on ``n`` and ``seed``.
"""

from __future__ import annotations

import numpy as np

from chorus.shared.contract.errors import DataError, InvalidInput
from chorus.shared.data.ratings import Ratings

MIN_TRAINING_ROWS = 10
"""Fewest reviews a version is trained on: the 80/10/10 hold-out split of the rating, text and evaluation code
needs one validation and one test review (``floor(0.1 * n) >= 1``)."""


def check_trainable(ratings: Ratings) -> None:
    """Refuse data too small to train on, before any component trains (each would fail later, some after minutes of
    work on the others).

    Raises
    ------
    DataError : fewer than :data:`MIN_TRAINING_ROWS` reviews, naming the file and the rows skipped.
    """
    if ratings.n >= MIN_TRAINING_ROWS:
        return
    report = ratings.report
    skipped = f" ({report.skipped_rows:,} rows skipped)" if report.skipped_rows else ""
    raise DataError(
        f"{report.path} has {ratings.n} usable reviews{skipped}; training needs at least {MIN_TRAINING_ROWS} "
        "(a validation and a test review besides the training ones): use a larger file"
    )


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


def user_holdout_split(
    user: np.ndarray, n_users: int, seed: int = 0, test_fraction: float = 0.2, min_ratings: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user hold-out for ranking evaluation: (train rows, test rows), int64, each sorted.

    The protocol (``docs/models.md``, "Ranking evaluation"): one ``numpy.random.default_rng(seed)`` generator;
    for every user with at least ``min_ratings`` rows, taking users in index order (the loader's vocabularies
    are sorted, so that is raw-id order), ``rng.permutation(n_u)`` permutes the user's rows in file order
    (ascending row index) and the first ``floor(test_fraction * n_u)`` of them are test, the rest train. Users
    with fewer rows stay entirely in train. Every eligible user draws its permutation, even one whose test
    share rounds down to nothing, so the stream of draws depends only on the per-user row counts.

    Parameters
    ----------
    user : int array (n,)
        Each row's user index in ``[0, n_users)``; row order is file order.
    n_users : int
        Size of the user vocabulary.
    seed : int
        Seed of the one generator (PCG64).
    test_fraction : float
        In ``[0, 1)``.
    min_ratings : int
        Users with fewer rows than this are never tested (at least 1).

    Returns
    -------
    train, test : int64 (n_train,), (n_test,)
        Sorted row indices; disjoint, and together every row.
    """
    user = np.asarray(user)
    if user.ndim != 1 or (user.size and not np.issubdtype(user.dtype, np.integer)):
        raise InvalidInput(f"user must be a 1-D integer array, got shape {user.shape} and dtype {user.dtype}")
    if user.size and (int(user.min()) < 0 or int(user.max()) >= n_users):
        raise InvalidInput(f"user indices must lie in [0, {n_users})")
    if not 0.0 <= test_fraction < 1.0:
        raise InvalidInput(f"test_fraction must be in [0, 1), got {test_fraction}")
    if min_ratings < 1:
        raise InvalidInput(f"min_ratings must be at least 1, got {min_ratings}")
    user = user.astype(np.int64, copy=False)
    # Rows grouped by user, each group in ascending row (file) order: a stable sort keeps file order.
    by_user = np.argsort(user, kind="stable")
    counts = np.bincount(user, minlength=n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n_test = np.floor(test_fraction * counts).astype(np.int64)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(user.size, dtype=bool)
    # One permutation per eligible user, in user index order: the generator's draws cannot be batched
    # (each shuffle consumes a data-dependent number of raw draws), so this loop is over users, not rows.
    for u in np.flatnonzero(counts >= min_ratings).tolist():
        picked = rng.permutation(int(counts[u]))[: n_test[u]]
        is_test[by_user[starts[u] + picked]] = True
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def user_validation_split(
    user: np.ndarray,
    train: np.ndarray,
    n_users: int,
    seed: int = 0,
    test_fraction: float = 0.2,
    min_ratings: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """The validation carve-out for hyperparameter selection: the same protocol on the training rows only.

    Equivalent to ``fit, val = user_holdout_split(user[train], n_users, seed, test_fraction, min_ratings)``
    mapped back through ``train`` (``train[fit], train[val]``): the training rows keep their file order, each
    user's eligibility and sizes are counted on its training rows, and test rows are never looked at.

    Parameters
    ----------
    user : int array (n,)
        Each row's user index, for all rows.
    train : int array (n_train,)
        Sorted training row indices, e.g. the first result of :func:`user_holdout_split`.

    Returns
    -------
    fit, validation : int64 (n_fit,), (n_validation,)
        Sorted row indices into the full ``user`` array, a partition of ``train``.
    """
    train = np.asarray(train, dtype=np.int64)
    if train.size > 1 and np.any(np.diff(train) <= 0):
        raise InvalidInput("train rows must be sorted and distinct (file order)")
    fit, val = user_holdout_split(np.asarray(user)[train], n_users, seed, test_fraction, min_ratings)
    return train[fit], train[val]
