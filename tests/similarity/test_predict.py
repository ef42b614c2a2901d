"""The similarity-weighted rating heuristic against the brute-force reference, by hand, clipped to a scale, and on
the Amazon 5-core file."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.similarity.reference import HAND, PROPERTY, Reference, datasets, make_index


@PROPERTY
@given(datasets(), st.sampled_from(["jaccard", "cosine"]))
def test_predictions_match_reference_with_flagged_fallback(data, measure):
    ratings, n_users, n_items, _, _ = data
    ref = Reference(ratings, n_users, n_items)
    index = make_index(ratings, n_users, n_items)
    users = np.repeat(np.arange(-1, n_users), n_items + 1)
    items = np.tile(np.arange(-1, n_items), n_users + 1)
    got = index.predict(users, items, measure)
    want = [ref.predict(u, i, measure) for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    np.testing.assert_allclose(got.rating, [w for w, _ in want], rtol=0, atol=1e-9)
    assert got.impossible.tolist() == [f for _, f in want]
    np.testing.assert_array_equal(got.rating[got.impossible], index.global_mean)


def test_hand_predict(hand):
    # predict r(d, U1) with Jaccard: (5·1/2 + 4·3/4) / (1/2 + 3/4) = 5.5 / 1.25 = 4.4
    p = hand.predict([3], [0])
    assert p.rating[0] == pytest.approx(4.4) and not p.impossible[0]
    # e (4) only rated U4, which shares no user with U1: denominator 0 -> global mean, flagged
    p = hand.predict([4, -1, 0], [0, 0, -1])
    np.testing.assert_allclose(p.rating, hand.global_mean)
    assert p.impossible.tolist() == [True, True, True]
    assert hand.global_mean == pytest.approx(sum(HAND.values()) / len(HAND))


def test_predictions_are_clipped_to_the_scale_when_given(hand):
    users = np.array([3, 4, -1, 0])
    items = np.array([0, 0, 0, 1])
    free = hand.predict(users, items)
    np.testing.assert_array_equal(hand.predict(users, items, low=1.0, high=5.0).rating, free.rating)  # in scale
    clipped = hand.predict(users, items, low=2.0, high=4.0)
    np.testing.assert_array_equal(clipped.rating, np.clip(free.rating, 2.0, 4.0))
    assert clipped.rating[0] == 4.0 and free.rating[0] == pytest.approx(4.4)  # 4.4 (by hand above) clipped
    np.testing.assert_array_equal(clipped.impossible, free.impossible)


def test_amazon_5core_predict(amazon):
    index, ref, r = amazon
    rng = np.random.default_rng(5)
    rng.choice(r.n_users, 5, replace=False)  # the draws the recommendation test makes first, so the pairs stay the same
    pu = rng.choice(r.n_users, 300)
    pi = rng.choice(r.n_items, 300)
    got = index.predict(pu, pi)
    want = [ref.predict(u, i, "jaccard") for u, i in zip(pu.tolist(), pi.tolist(), strict=True)]
    np.testing.assert_allclose(got.rating, [w for w, _ in want], atol=1e-9)
    assert got.impossible.tolist() == [f for _, f in want]
