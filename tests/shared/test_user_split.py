"""The per-user ranking split: reproducible, exact sizes, and equal to the protocol written as a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import load_ratings
from chorus.shared.data.splits import user_holdout_split, user_validation_split


def protocol_reference(user, n_users, seed=0, test_fraction=0.2, min_ratings=5):
    """The protocol's text, literally: one generator; users in index order; each eligible user's rows, in
    file order, permuted by it; the first floor(f * n_u) are test."""
    rng = np.random.default_rng(seed)
    test = []
    for u in range(n_users):
        rows = [r for r in range(len(user)) if user[r] == u]
        if len(rows) >= min_ratings:
            permuted = rng.permutation(np.array(rows))
            test.extend(permuted[: math.floor(test_fraction * len(rows))].tolist())
    train = sorted(set(range(len(user))) - set(test))
    return train, sorted(test)


def random_users(seed, n, n_users):
    return np.random.default_rng(seed).integers(0, n_users, n).astype(np.int32)


def test_partition_sizes_and_ineligible_users():
    user = random_users(1, 2000, 300)
    train, test = user_holdout_split(user, 300, seed=5)
    assert train.dtype == test.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(2000))
    counts = np.bincount(user, minlength=300)
    tested = np.bincount(user[test], minlength=300)
    expected = np.where(counts >= 5, np.floor(0.2 * counts), 0).astype(int)
    assert np.array_equal(tested, expected)
    assert (counts < 5).any() and (counts >= 5).any()  # both kinds of users occur


def test_reproducible_from_the_seed():
    user = random_users(2, 3000, 100)
    a, b, c = (user_holdout_split(user, 100, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


def test_pinned_rows():
    # Ten users with 5..14 rows each, interleaved; the PCG64 stream is the same on every machine.
    user = np.concatenate([np.full(5 + u, u) for u in range(10)])[np.random.default_rng(0).permutation(95)]
    _, test = user_holdout_split(user, 10, seed=0)
    assert test.size == sum(math.floor(0.2 * (5 + u)) for u in range(10)) == 15
    assert test.tolist() == [18, 37, 38, 45, 46, 48, 54, 56, 61, 65, 69, 77, 86, 88, 91]
    assert test.tolist() == protocol_reference(user, 10)[1]


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 120),
    st.integers(1, 12),
    st.integers(0, 3),
    st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5, 0.9]),
    st.integers(1, 6),
)
def test_equals_the_protocol_written_as_a_loop(data_seed, n, n_users, seed, fraction, min_ratings):
    user = random_users(data_seed, n, n_users)
    train, test = user_holdout_split(user, n_users, seed=seed, test_fraction=fraction, min_ratings=min_ratings)
    ref_train, ref_test = protocol_reference(user, n_users, seed, fraction, min_ratings)
    assert train.tolist() == ref_train and test.tolist() == ref_test


def test_users_without_rows_draw_nothing():
    # Users with no rows at all and users below the threshold must not consume draws.
    user = np.array([3] * 6 + [1] * 2 + [5] * 7)
    assert user_holdout_split(user, 8, seed=4)[1].tolist() == protocol_reference(user, 8, seed=4)[1]


def test_validation_carve_out_is_the_protocol_on_training_rows():
    user = random_users(3, 1500, 60)
    train, test = user_holdout_split(user, 60, seed=0)
    fit, val = user_validation_split(user, train, 60, seed=0)
    assert np.array_equal(np.union1d(fit, val), train) and np.intersect1d(fit, val).size == 0
    assert np.intersect1d(val, test).size == 0
    sub_fit, sub_val = protocol_reference(user[train], 60)
    assert val.tolist() == train[sub_val].tolist() and fit.tolist() == train[sub_fit].tolist()
    with pytest.raises(InvalidInput, match="sorted"):
        user_validation_split(user, train[::-1], 60)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"min_ratings": 0}, "min_ratings"),
        ({"n_users": 2}, r"\[0, 2\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"user": np.array([0, 1, 2]), "n_users": 3, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        user_holdout_split(**args)


def test_movielens_100k_equals_the_reference(ml100k):
    data = load_ratings(ml100k)
    train, test = user_holdout_split(data.user, data.n_users, seed=0)
    counts = np.bincount(data.user, minlength=data.n_users)
    assert test.size == int(np.floor(0.2 * counts).sum()) == 19633
    # the reference, vectorised only in how it finds each user's rows (still in file order)
    rng = np.random.default_rng(0)
    ref = []
    for u in range(data.n_users):
        rows = np.flatnonzero(data.user == u)
        if rows.size >= 5:
            ref.extend(rng.permutation(rows)[: math.floor(0.2 * rows.size)].tolist())
    assert test.tolist() == sorted(ref)
    assert train.size + test.size == data.n
