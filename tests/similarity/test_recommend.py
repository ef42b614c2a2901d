"""\"Because you liked\" recommendations against the brute-force reference, by hand and on the Amazon 5-core file."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from chorus.services.similarity.index import SimilarityIndex
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import build_table
from tests.similarity.reference import PROPERTY, Reference, datasets, make_index


@PROPERTY
@given(datasets(), st.sampled_from([1, 3, 50]), st.sampled_from(list(Measure)), st.sampled_from([1, 5, 10**9]))
def test_recommendations_match_reference_and_skip_reviewed_items(data, k, measure, block_nnz):
    ratings, n_users, n_items, item_rank, _ = data
    ref = Reference(ratings, n_users, n_items, item_rank)
    # a small block_nnz splits the liked items into chunks whose partial sums are merged
    index = make_index(ratings, n_users, n_items, item_rank, block_nnz=block_nnz)
    for u in range(n_users):
        rec = index.recommend(u, k, measure)
        reviewed = set(ref.by_user[u])
        assert not reviewed & set(rec.items.tolist())
        want = ref.recommend(u, k, measure)
        assert rec.items.tolist() == [j for _, j, _ in want]
        np.testing.assert_allclose(rec.scores, [s for s, _, _ in want], rtol=0, atol=1e-9)
        assert rec.because.tolist() == [b for _, _, b in want]
        liked = {i for i, r in ref.by_user[u].items() if r >= 4} or reviewed
        assert set(rec.because.tolist()) <= liked


@PROPERTY
@given(
    datasets(),
    st.sampled_from([1, 3, 50]),
    st.sampled_from([Measure.jaccard, Measure.pearson]),
    st.sampled_from([1, 2]),
)
def test_table_recommendations_sum_the_stored_neighbours(data, k, measure, K):
    ratings, n_users, n_items, item_rank, _ = data
    ref = Reference(ratings, n_users, n_items, item_rank)
    index = make_index(ratings, n_users, n_items, item_rank)
    index.attach_table(build_table(index, K)[0])
    for u in range(n_users):
        rec = index.recommend(u, k, measure)
        want = ref.recommend_table(u, k, measure, K)
        assert rec.items.tolist() == [j for _, j, _ in want]
        np.testing.assert_allclose(rec.scores, [s for s, _, _ in want], rtol=0, atol=1e-9)
        assert rec.because.tolist() == [b for _, _, b in want]
        assert not set(rec.items.tolist()) & set(ref.by_user[u])


def test_table_recommendations_with_every_neighbour_equal_the_exact_sums(hand):
    exact = hand.recommend(3, 10, "jaccard")
    hand.attach_table(build_table(hand, hand.n_items)[0])  # K = all items: every neighbour is stored
    tabled = hand.recommend(3, 10, "jaccard")
    assert tabled.items.tolist() == exact.items.tolist() == [0, 4]
    np.testing.assert_array_equal(tabled.scores, exact.scores)
    assert tabled.because.tolist() == exact.because.tolist()


def test_hand_recommend(hand):
    # user b (1) rated U1..U3 and U5 (3, 2, 2, 4): liked = {U5}; U4 is the only unreviewed item and shares no
    # user with U5, so nothing is recommended.
    assert hand.recommend(1, 10).items.size == 0
    # user d (3) rated U2=5 and U3=4 (both liked); unreviewed U1, U4, U5.
    # Jaccard: U1: J(2,1) + J(3,1) = 1/2 + 3/4 = 1.25 (because U3); U5: J(2,5) + J(3,5) = 2/3 + 2/4 = 7/6
    # (because U2); U4 shares no user with either: absent.
    rec = hand.recommend(3, 10, "jaccard")
    assert rec.items.tolist() == [0, 4] and rec.because.tolist() == [2, 1]
    np.testing.assert_allclose(rec.scores, [1.25, round(7 / 6, 10)], rtol=0, atol=1e-15)
    # user a (0) rated U1 = 5 and U3 = 1: liked = {U1}; U5 (J = 2/3) before U2 (J = 1/2), both because U1.
    rec = hand.recommend(0, 10, "jaccard")
    assert rec.items.tolist() == [4, 1] and rec.because.tolist() == [0, 0]


def test_liked_falls_back_to_all_items_when_nothing_rated_four():
    ratings = {(0, 0): 2.0, (0, 1): 3.0, (1, 1): 5.0, (1, 2): 5.0, (2, 0): 1.0, (2, 3): 1.0}
    index = make_index(ratings, 3, 4)
    rec = index.recommend(0, 10, "jaccard")  # liked = {0, 1}: 2 via 1 (J = 1/2), 3 via 0 (J = 1/2)
    assert rec.items.tolist() == [2, 3] and rec.because.tolist() == [1, 0]


def test_amazon_5core_recommend(amazon):
    index, ref, r = amazon
    rng = np.random.default_rng(5)
    users = rng.choice(r.n_users, 5, replace=False).tolist()
    heavy = int(np.argmax(index.user_count))  # the user with the most reviews, plus a random few
    for u in [heavy, *users]:
        for measure in ("cosine", "jaccard"):  # cosine: the factorised path; jaccard: the chunked one (no table)
            rec = index.recommend(u, 10, measure)
            want = ref.recommend(u, 10, measure)
            assert rec.items.tolist() == [j for _, j, _ in want], (u, measure)
            np.testing.assert_allclose(rec.scores, [s for s, _, _ in want], rtol=0, atol=1e-9)
            assert rec.because.tolist() == [b for _, _, b in want], (u, measure)
            assert not set(rec.items.tolist()) & set(ref.by_user[u])
        assert index.recommend(u, 10).items.tolist() == index.recommend(u, 10, "cosine").items.tolist()


def test_amazon_5core_table_recommend(amazon):
    index, ref, r = amazon
    tabled = SimilarityIndex.from_saved({**index.to_arrays(), **build_table(index, 50, ("jaccard",))[0]})
    heavy = int(np.argmax(index.user_count))
    for u in [heavy, *np.random.default_rng(6).choice(r.n_users, 5, replace=False).tolist()]:
        rec = tabled.recommend(u, 10, "jaccard")
        want = ref.recommend_table(u, 10, "jaccard", 50)
        assert rec.items.tolist() == [j for _, j, _ in want], u
        np.testing.assert_allclose(rec.scores, [s for s, _, _ in want], rtol=0, atol=1e-9)
        assert rec.because.tolist() == [b for _, _, b in want], u
