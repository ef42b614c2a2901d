"""The similarity index against the brute-force reference (``tests/similarity/reference.py``): similar items and
users, the pairwise similarity, the neighbour table, hand-computed values, errors and the saved arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.measures import PEARSON_SIGNIFICANCE, REGISTRY
from chorus.services.similarity.ranking import id_rank
from chorus.shared.contract.errors import InvalidInput, NotFound
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import build_table
from tests.similarity.reference import HAND, PROPERTY, Reference, assert_same_ranking, datasets, make_index


@PROPERTY
@given(datasets(), st.sampled_from([1, 2, 3, 50]), st.sampled_from([1, 1, 2, 3]))
def test_similar_items_and_users_match_reference(data, k, min_common):
    ratings, n_users, n_items, item_rank, user_rank = data
    ref = Reference(ratings, n_users, n_items, item_rank, user_rank)
    index = make_index(ratings, n_users, n_items, item_rank, user_rank)
    for measure in Measure:
        for i in range(n_items):
            assert_same_ranking(
                index.similar_items(i, k, measure, min_common),
                ref.similar_items(i, k, measure, min_common),
                f"item {i} {measure}",
            )
        for u in range(n_users):
            assert_same_ranking(
                index.similar_users(u, k, measure, min_common),
                ref.similar_users(u, k, measure, min_common),
                f"user {u} {measure}",
            )


@PROPERTY
@given(datasets(), st.integers(1, 4), st.integers(1, 3))
def test_table_answers_equal_online_answers(data, K, block_rows):
    ratings, n_users, n_items, item_rank, _ = data
    index = make_index(ratings, n_users, n_items, item_rank)
    table, _ = build_table(index, K, block_rows=block_rows, block_nnz=3)
    index.attach_table(table)
    for measure in Measure:
        for i in range(n_items):
            for k in range(1, K + 1):
                t_ids, t_scores = index.similar_items(i, k, measure, use_table=True)
                o_ids, o_scores = index.similar_items(i, k, measure, use_table=False)
                assert t_ids.dtype == o_ids.dtype and t_scores.dtype == o_scores.dtype
                np.testing.assert_array_equal(t_ids, o_ids)
                np.testing.assert_array_equal(t_scores, o_scores)  # bit-identical, not just close


@PROPERTY
@given(datasets())
def test_pairwise_similarity_reference_symmetry_bounds_self(data):
    ratings, n_users, n_items, _, _ = data
    ref = Reference(ratings, n_users, n_items)
    index = make_index(ratings, n_users, n_items)
    i, j = (a.ravel() for a in np.meshgrid(np.arange(n_items), np.arange(n_items)))
    for measure in Measure:
        s = index.item_similarity(i, j, measure)
        want = [ref.sim(ref.by_item[a], ref.by_item[b], measure) for a, b in zip(i.tolist(), j.tolist(), strict=True)]
        np.testing.assert_allclose(s, want, rtol=0, atol=1e-12)
        m = s.reshape(n_items, n_items)
        np.testing.assert_array_equal(m, m.T)  # symmetric, exactly
        low = REGISTRY[measure].lowest
        assert np.all(m >= low - 1e-12) and np.all(m <= 1 + 1e-12)
        diag = np.diag(m)
        if measure == "pearson":  # 1 weighted by the item's own raters, or 0 where every rating equals its mean
            flat = np.array([len(set(ref.by_item[a].values())) <= 1 for a in range(n_items)])
            weight = np.array([min(len(ref.by_item[a]), PEARSON_SIGNIFICANCE) for a in range(n_items)]) / 50
            np.testing.assert_allclose(diag, np.where(flat, 0.0, weight), atol=1e-12)
        else:
            has = np.array([bool(ref.by_item[a]) for a in range(n_items)])
            np.testing.assert_allclose(diag, np.where(has, 1.0, 0.0), atol=1e-12)
    u, v = (a.ravel() for a in np.meshgrid(np.arange(n_users), np.arange(n_users)))
    for measure in Measure:
        want = [ref.sim(ref.by_user[a], ref.by_user[b], measure) for a, b in zip(u.tolist(), v.tolist(), strict=True)]
        np.testing.assert_allclose(index.user_similarity(u, v, measure), want, rtol=0, atol=1e-12)


# --- hand-computed cases ------------------------------------------------------------------------------------


def test_hand_jaccard(hand):
    # J(1,2) = |{b,c}| / |{a,b,c,d}| = 2/4; J(1,3) = 3/4; J(2,3) = 3/4; J(1,5) = 2/3; J(2,5) = 2/3; J(3,5) = 2/4.
    assert_same_ranking(hand.similar_items(0, 10, "jaccard"), ([2, 4, 1], [0.75, round(2 / 3, 10), 0.5]))
    # tie 0.75 between U1 and U2: raw id ascending
    assert_same_ranking(hand.similar_items(2, 10, "jaccard"), ([0, 1, 4], [0.75, 0.75, 0.5]))
    # U4 shares no user with anything: no candidates at all (not even with score 0)
    ids, scores = hand.similar_items(3, 10, "jaccard")
    assert ids.size == 0 and scores.size == 0
    # min_common = 3: only U3 shares three users with U1
    assert_same_ranking(hand.similar_items(0, 10, "jaccard", min_common=3), ([2], [0.75]))


def test_hand_cosine_and_pearson(hand):
    sim = hand.item_similarity
    # cosine(1,2) = (3·2 + 4·4) / (√(25+9+16) · √(4+16+25)) = 22 / √2250
    assert sim([0], [1], "cosine")[0] == pytest.approx(22 / math.sqrt(2250), abs=1e-15)
    # pearson(1,2) over {b, c}: z1 = (−1, 0), z2 = (−5/3, 1/3): (5/3) / (1 · √26/3) = 5/√26, weighted by 2/50
    assert sim([0], [1], "pearson")[0] == pytest.approx(5 / math.sqrt(26) * 2 / 50, abs=1e-15)
    # pearson(1,3) over {a, b, c}: z1 = (1, −1, 0), z3 = (−1.5, −0.5, 0.5): −1 / (√2 · √2.75), weighted by 3/50
    assert sim([0], [2], "pearson")[0] == pytest.approx(-1 / math.sqrt(5.5) * 3 / 50, abs=1e-15)
    # U5's deviations are all 0: its root is 0, so Pearson is 0 with everything, itself included
    np.testing.assert_array_equal(sim([4, 4, 4], [0, 1, 4], "pearson"), [0.0, 0.0, 0.0])
    # ranking with a negative score and a 0: U2 (0.98 · 2/50), U5 (0.0), U3 (−0.43 · 3/50)
    ids, scores = hand.similar_items(0, 10, "pearson")
    assert ids.tolist() == [1, 4, 2]
    np.testing.assert_allclose(
        scores, [round(5 / math.sqrt(26) * 2 / 50, 10), 0.0, round(-1 / math.sqrt(5.5) * 3 / 50, 10)]
    )


def test_pearson_significance_weighting_devalues_few_common_raters():
    """Herlocker et al. (1999): a correlation over n < 50 common raters counts n/50 of itself, so a perfect
    correlation over 2 raters ranks below a strong one over 60."""
    rng = np.random.default_rng(0)
    base = rng.integers(1, 6, 60).astype(float)
    ratings = {(u, 0): base[u] for u in range(60)}
    ratings |= {(u, 1): float(np.clip(base[u] + rng.integers(-1, 2), 1, 5)) for u in range(60)}  # strong, 60 raters
    ratings |= {(0, 2): base[0] + 0.0, (1, 2): base[1] + 0.0, (60, 2): 3.0}  # agrees with item 0 on 2 raters
    index = make_index(ratings, 61, 3)
    full = Reference(ratings, 61, 3)
    two = index.item_similarity([0], [2], "pearson")[0]
    assert two == pytest.approx(full.sim(full.by_item[0], full.by_item[2], "pearson"), abs=1e-12)
    assert abs(two) <= 2 / 50 + 1e-12
    assert index.similar_items(0, 2, "pearson")[0].tolist()[0] == 1


def test_raw_id_order_breaks_ties_not_index_order():
    # Items 1 and 2 tie for item 0; raw ids sort item 2 before item 1.
    ratings = {(0, 0): 5.0, (0, 1): 5.0, (0, 2): 5.0}
    ids = np.array(["B3", "B9", "B5"])
    index = make_index(ratings, 1, 3, item_rank=id_rank(ids))
    assert index.similar_items(0, 2, "jaccard")[0].tolist() == [2, 1]
    assert make_index(ratings, 1, 3).similar_items(0, 2, "jaccard")[0].tolist() == [1, 2]


# --- errors and persistence ---------------------------------------------------------------------------------


def test_bad_input_raises_project_errors(hand):
    with pytest.raises(InvalidInput, match="unknown measure"):
        hand.similar_items(0, 5, "euclid")
    with pytest.raises(InvalidInput, match="k must be"):
        hand.similar_users(0, 0)
    with pytest.raises(InvalidInput, match="min_common"):
        hand.similar_items(0, 5, "jaccard", min_common=0)
    with pytest.raises(NotFound, match="unknown item index 9"):
        hand.similar_items(9, 5)
    with pytest.raises(NotFound, match="unknown user index"):
        hand.predict([7], [0])
    with pytest.raises(InvalidInput, match="the neighbour table cannot answer"):
        hand.similar_items(0, 5, use_table=True)
    with pytest.raises(InvalidInput, match="more than once"):
        SimilarityIndex.from_arrays(np.array([0, 0]), np.array([1, 1]), np.array([3.0, 4.0]), 1, 2)
    with pytest.raises(InvalidInput, match="permutation"):
        make_index(HAND, 5, 5, item_rank=[0, 0, 1, 2, 3])


def test_saved_arrays_reload_read_only_with_identical_answers(tmp_path, hand):
    table, _ = build_table(hand, 3)
    hand.attach_table(table)
    for name, arr in hand.to_arrays().items():
        np.save(tmp_path / f"{name}.npy", arr, allow_pickle=False)
    loaded = {p.stem: np.load(p, mmap_mode="r", allow_pickle=False) for p in tmp_path.glob("*.npy")}
    assert all(not a.flags.writeable for a in loaded.values())
    again = SimilarityIndex.from_saved(loaded)
    assert again.has_table and again.table_k == 3
    for measure in Measure:
        for i in range(5):
            for use_table in (None, False):
                for a, b in zip(
                    again.similar_items(i, 3, measure, use_table=use_table),
                    hand.similar_items(i, 3, measure, use_table=use_table),
                    strict=True,
                ):
                    np.testing.assert_array_equal(a, b)
        for u in range(5):
            for a, b in zip(again.similar_users(u, 4, measure), hand.similar_users(u, 4, measure), strict=True):
                np.testing.assert_array_equal(a, b)
    for a, b in zip(again.recommend(3, 5), hand.recommend(3, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict([0, 3], [1, 0]).rating, hand.predict([0, 3], [1, 0]).rating)


# --- the real Amazon 5-core file ----------------------------------------------------------------------------


def test_amazon_5core_items_and_users_match_reference(amazon):
    index, ref, r = amazon
    rng = np.random.default_rng(3)
    for measure in Measure:
        for i in rng.choice(r.n_items, 12, replace=False).tolist():
            assert_same_ranking(
                index.similar_items(i, 20, measure), ref.similar_items(i, 20, measure), f"item {i} {measure}"
            )
            assert_same_ranking(
                index.similar_items(i, 10, measure, min_common=3),
                ref.similar_items(i, 10, measure, min_common=3),
                f"item {i} {measure} mc3",
            )
        for u in rng.choice(r.n_users, 12, replace=False).tolist():
            assert_same_ranking(
                index.similar_users(u, 20, measure), ref.similar_users(u, 20, measure), f"user {u} {measure}"
            )


def test_amazon_5core_table_equals_online_for_every_item(amazon):
    shared, _, r = amazon
    table, _ = build_table(shared, 50, block_nnz=20_000)
    index = SimilarityIndex.from_saved({**shared.to_arrays(), **table})  # the session's index stays table-free
    for measure in Measure:
        for i in range(r.n_items):
            t = index.similar_items(i, 50, measure, use_table=True)
            o = index.similar_items(i, 50, measure, use_table=False)
            np.testing.assert_array_equal(t[0], o[0])
            np.testing.assert_array_equal(t[1], o[1])
        # the pairwise path computes the same sums in the same order as the sparse product
        rows = np.repeat(np.arange(r.n_items), 50)
        nb = table[f"neighbors_{measure}"].ravel()
        ok = nb >= 0
        np.testing.assert_array_equal(
            np.round(index.item_similarity(rows[ok], nb[ok], measure), 10), table[f"scores_{measure}"].ravel()[ok]
        )


def test_default_pearson_neighbours_of_star_wars_are_its_sequels(ml100k):
    """On MovieLens 100K the default query (``min_common`` as the API defaults it) ranks The Empire Strikes Back
    (172) and Return of the Jedi (181) first for Star Wars (50); unweighted, films sharing one or two raters with
    it scored 1.0 and filled the list."""
    from chorus.shared.contract.names import DEFAULT_MIN_COMMON
    from chorus.shared.data import load_ratings

    r = load_ratings(ml100k, progress=False)
    pairs = zip(r.user.tolist(), r.item.tolist(), strict=True)
    index = make_index(dict(zip(pairs, r.rating.tolist(), strict=True)), r.n_users, r.n_items)
    ids = r.item_ids.tolist()
    found, _ = index.similar_items(ids.index("50"), 10, "pearson", DEFAULT_MIN_COMMON)
    assert [ids[j] for j in found[:2]] == ["172", "181"]
