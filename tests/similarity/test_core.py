"""The similarity core against a brute-force reference written straight from issue 3's formulas.

The reference uses Python sets and dicts only: no numpy, no sparse matrices, candidates found by scanning.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp
from chorus.services.similarity.core import (
    MEASURES,
    SimilarityConfig,
    SimilarityIndex,
    _aligned,
    id_rank,
)
from chorus.shared.errors import InvalidInput, NotFound
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# --- the reference ------------------------------------------------------------------------------------------


class Reference:
    """Issue 3's definitions, literally. ``ratings``: {(user, item): rating}."""

    def __init__(
        self, ratings: dict[tuple[int, int], float], n_users: int, n_items: int, item_rank=None, user_rank=None
    ):
        self.n_users, self.n_items = n_users, n_items
        self.by_item: dict[int, dict[int, float]] = defaultdict(dict)  # item -> {user: rating}
        self.by_user: dict[int, dict[int, float]] = defaultdict(dict)  # user -> {item: rating}
        for (u, i), r in ratings.items():
            self.by_item[i][u] = r
            self.by_user[u][i] = r
        self.item_rank = list(range(n_items)) if item_rank is None else list(item_rank)
        self.user_rank = list(range(n_users)) if user_rank is None else list(user_rank)
        self.global_mean = sum(ratings.values()) / len(ratings)

    @staticmethod
    def sim(a: dict[int, float], b: dict[int, float], measure: str) -> float:
        common = set(a) & set(b)
        if measure == "jaccard":
            union = set(a) | set(b)
            return len(common) / len(union) if union else 0.0
        if measure == "cosine":
            num = sum(a[u] * b[u] for u in common)
            den = math.sqrt(sum(r * r for r in a.values())) * math.sqrt(sum(r * r for r in b.values()))
            return num / den if den > 0 else 0.0
        mean_a = sum(a.values()) / len(a) if a else 0.0  # R̄ over ALL ratings of the row
        mean_b = sum(b.values()) / len(b) if b else 0.0
        num = sum((a[u] - mean_a) * (b[u] - mean_b) for u in common)
        ra = sum((a[u] - mean_a) ** 2 for u in common)
        rb = sum((b[u] - mean_b) ** 2 for u in common)
        if ra == 0 or rb == 0:
            return 0.0
        return num / (math.sqrt(ra) * math.sqrt(rb))

    def _most_similar(self, rows, rank, i, k, measure, min_common):
        scored = []
        for j in range(len(rank)):
            if j == i or len(set(rows[i]) & set(rows[j])) < min_common:
                continue
            scored.append((round(self.sim(rows[i], rows[j], measure), 10), j))
        scored.sort(key=lambda t: (-t[0], rank[t[1]]))
        return [j for _, j in scored[:k]], [s for s, _ in scored[:k]]

    def similar_items(self, i, k, measure, min_common=1):
        return self._most_similar(self.by_item, self.item_rank, i, k, measure, min_common)

    def similar_users(self, u, k, measure, min_common=1):
        return self._most_similar(self.by_user, self.user_rank, u, k, measure, min_common)

    def recommend(self, u, k, measure, threshold=4.0):
        mine = self.by_user[u]
        liked = [i for i, r in mine.items() if r >= threshold] or list(mine)
        out = []
        for j in range(self.n_items):
            if j in mine:
                continue
            sims = [
                (self.sim(self.by_item[i], self.by_item[j], measure), i)
                for i in liked
                if set(self.by_item[i]) & set(self.by_item[j])
            ]
            if not sims:
                continue
            total = sum(s for s, _ in sims)
            because = min(sims, key=lambda t: (-round(t[0], 10), self.item_rank[t[1]]))[1]
            out.append((round(total, 10), j, because))
        out.sort(key=lambda t: (-t[0], self.item_rank[t[1]]))
        return out[:k]

    def predict(self, u, i, measure):
        if u < 0 or i < 0:
            return self.global_mean, True
        num = den = 0.0
        for j, r in self.by_user[u].items():
            if j == i:
                continue
            s = self.sim(self.by_item[i], self.by_item[j], measure)
            num += r * s
            den += s
        if den == 0:
            return self.global_mean, True
        return num / den, False


def make_index(ratings: dict, n_users: int, n_items: int, item_rank=None, user_rank=None, **cfg):
    keys = sorted(ratings)
    return SimilarityIndex.from_arrays(
        np.array([u for u, _ in keys], dtype=np.int32),
        np.array([i for _, i in keys], dtype=np.int32),
        np.array([ratings[p] for p in keys], dtype=np.float32),
        n_users,
        n_items,
        item_rank=item_rank,
        user_rank=user_rank,
        config=SimilarityConfig(**cfg) if cfg else None,
    )


def assert_same_ranking(got, want, what=""):
    ids, scores = got
    want_ids, want_scores = want
    assert ids.tolist() == want_ids, what
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-9, err_msg=what)


# --- random data --------------------------------------------------------------------------------------------

# A few rating values make ties (equal Jaccard, equal cosine, Pearson ±1 and 0) frequent.
RATING_VALUES = [1.0, 2.0, 3.0, 4.0, 5.0, 4.5]


@st.composite
def datasets(draw, max_users: int = 7, max_items: int = 7):
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    pairs = draw(
        st.sets(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), min_size=1, max_size=n_users * n_items
        )
    )
    ratings = {p: draw(st.sampled_from(RATING_VALUES)) for p in sorted(pairs)}
    item_rank = draw(st.permutations(range(n_items)))
    user_rank = draw(st.permutations(range(n_users)))
    return ratings, n_users, n_items, list(item_rank), list(user_rank)


PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(datasets(), st.sampled_from([1, 2, 3, 50]), st.sampled_from([1, 1, 2, 3]))
def test_similar_items_and_users_match_reference(data, k, min_common):
    ratings, n_users, n_items, item_rank, user_rank = data
    ref = Reference(ratings, n_users, n_items, item_rank, user_rank)
    index = make_index(ratings, n_users, n_items, item_rank, user_rank)
    for measure in MEASURES:
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
    from chorus.services.similarity.build import build_table

    index = make_index(ratings, n_users, n_items, item_rank)
    table, _ = build_table(index, K, block_rows=block_rows, block_nnz=3)
    index.attach_table(table)
    for measure in MEASURES:
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
    for measure in MEASURES:
        s = index.item_similarity(i, j, measure)
        want = [ref.sim(ref.by_item[a], ref.by_item[b], measure) for a, b in zip(i.tolist(), j.tolist(), strict=True)]
        np.testing.assert_allclose(s, want, rtol=0, atol=1e-12)
        m = s.reshape(n_items, n_items)
        np.testing.assert_array_equal(m, m.T)  # symmetric, exactly
        low = 0.0 if measure != "pearson" else -1.0
        assert np.all(m >= low - 1e-12) and np.all(m <= 1 + 1e-12)
        diag = np.diag(m)
        if measure == "pearson":  # 1, or 0 where every rating of the item equals its mean
            flat = np.array([len(set(ref.by_item[a].values())) <= 1 for a in range(n_items)])
            np.testing.assert_allclose(diag, np.where(flat, 0.0, 1.0), atol=1e-12)
        else:
            has = np.array([bool(ref.by_item[a]) for a in range(n_items)])
            np.testing.assert_allclose(diag, np.where(has, 1.0, 0.0), atol=1e-12)
    u, v = (a.ravel() for a in np.meshgrid(np.arange(n_users), np.arange(n_users)))
    for measure in MEASURES:
        want = [ref.sim(ref.by_user[a], ref.by_user[b], measure) for a, b in zip(u.tolist(), v.tolist(), strict=True)]
        np.testing.assert_allclose(index.user_similarity(u, v, measure), want, rtol=0, atol=1e-12)


@PROPERTY
@given(datasets(), st.sampled_from([1, 3, 50]), st.sampled_from(MEASURES), st.sampled_from([1, 5, 10**9]))
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


# --- hand-computed cases ------------------------------------------------------------------------------------

# A made-up example in the course's style (we could not find the course's own U1..U4 figures): users a..e are
# 0..4; U1 = {a, b, c}, U2 = {b, c, d}, U3 = {a, b, c, d}, U4 = {e}, and item 5 rated 4 by b and c.
HAND = {
    (0, 0): 5.0,
    (1, 0): 3.0,
    (2, 0): 4.0,  # U1: a=5 b=3 c=4, mean 4
    (1, 1): 2.0,
    (2, 1): 4.0,
    (3, 1): 5.0,  # U2: b=2 c=4 d=5, mean 11/3
    (0, 2): 1.0,
    (1, 2): 2.0,
    (2, 2): 3.0,
    (3, 2): 4.0,  # U3: a..d = 1..4, mean 2.5
    (4, 3): 5.0,  # U4: e=5
    (1, 4): 4.0,
    (2, 4): 4.0,  # U5: b=4 c=4, mean 4 (every deviation 0)
}


@pytest.fixture
def hand() -> SimilarityIndex:
    return make_index(HAND, 5, 5)


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
    # pearson(1,2) over {b, c}: z1 = (−1, 0), z2 = (−5/3, 1/3): (5/3) / (1 · √26/3) = 5/√26
    assert sim([0], [1], "pearson")[0] == pytest.approx(5 / math.sqrt(26), abs=1e-15)
    # pearson(1,3) over {a, b, c}: z1 = (1, −1, 0), z3 = (−1.5, −0.5, 0.5): −1 / (√2 · √2.75)
    assert sim([0], [2], "pearson")[0] == pytest.approx(-1 / math.sqrt(5.5), abs=1e-15)
    # U5's deviations are all 0: its root is 0, so Pearson is 0 with everything, itself included
    np.testing.assert_array_equal(sim([4, 4, 4], [0, 1, 4], "pearson"), [0.0, 0.0, 0.0])
    # ranking with a negative score and a 0: U2 (0.98), U5 (0.0), U3 (−0.43)
    ids, scores = hand.similar_items(0, 10, "pearson")
    assert ids.tolist() == [1, 4, 2]
    np.testing.assert_allclose(scores, [round(5 / math.sqrt(26), 10), 0.0, round(-1 / math.sqrt(5.5), 10)])


def test_hand_recommend_and_predict(hand):
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
    # predict r(d, U1) with Jaccard: (5·1/2 + 4·3/4) / (1/2 + 3/4) = 5.5 / 1.25 = 4.4
    p = hand.predict([3], [0])
    assert p.rating[0] == pytest.approx(4.4) and not p.impossible[0]
    # e (4) only rated U4, which shares no user with U1: denominator 0 -> global mean, flagged
    p = hand.predict([4, -1, 0], [0, 0, -1])
    np.testing.assert_allclose(p.rating, hand.global_mean)
    assert p.impossible.tolist() == [True, True, True]
    assert hand.global_mean == pytest.approx(sum(HAND.values()) / len(HAND))


def test_liked_falls_back_to_all_items_when_nothing_rated_four():
    ratings = {(0, 0): 2.0, (0, 1): 3.0, (1, 1): 5.0, (1, 2): 5.0, (2, 0): 1.0, (2, 3): 1.0}
    index = make_index(ratings, 3, 4)
    rec = index.recommend(0, 10, "jaccard")  # liked = {0, 1}: 2 via 1 (J = 1/2), 3 via 0 (J = 1/2)
    assert rec.items.tolist() == [2, 3] and rec.because.tolist() == [1, 0]


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
    from chorus.services.similarity.build import build_table

    table, _ = build_table(hand, 3)
    hand.attach_table(table)
    for name, arr in hand.to_arrays().items():
        np.save(tmp_path / f"{name}.npy", arr, allow_pickle=False)
    loaded = {p.stem: np.load(p, mmap_mode="r", allow_pickle=False) for p in tmp_path.glob("*.npy")}
    assert all(not a.flags.writeable for a in loaded.values())
    again = SimilarityIndex.from_saved(loaded)
    assert again.has_table and again.table_k == 3
    for measure in MEASURES:
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


def test_aligned_handles_any_column_order():
    # The fallback path: the same entries listed in another order within rows, some missing.
    pattern = sp.csr_array((np.ones(5), np.array([3, 1, 0, 2, 4]), np.array([0, 3, 5])), shape=(2, 5))
    other = sp.csr_array((np.array([10.0, 30.0, 40.0]), np.array([1, 3, 4]), np.array([0, 2, 3])), shape=(2, 5))
    np.testing.assert_array_equal(_aligned(pattern, other), [30.0, 10.0, 0.0, 0.0, 40.0])


# --- the real Amazon 5-core file ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amazon(request):
    from tests.conftest import real_file

    path = real_file("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz")
    from chorus.shared.data import load_ratings

    r = load_ratings(path, progress=False)
    ratings = {(int(u), int(i)): float(x) for u, i, x in zip(r.user, r.item, r.rating, strict=True)}
    index = SimilarityIndex.from_arrays(
        r.user, r.item, r.rating, r.n_users, r.n_items, item_rank=id_rank(r.item_ids), user_rank=id_rank(r.user_ids)
    )
    return index, Reference(ratings, r.n_users, r.n_items, id_rank(r.item_ids), id_rank(r.user_ids)), r


def test_amazon_5core_items_and_users_match_reference(amazon):
    index, ref, r = amazon
    rng = np.random.default_rng(3)
    for measure in MEASURES:
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
    from chorus.services.similarity.build import build_table

    index, _, r = amazon
    table, _ = build_table(index, 50, block_nnz=20_000)
    index.attach_table(table)
    for measure in MEASURES:
        for i in range(r.n_items):
            t = index.similar_items(i, 50, measure, use_table=True)
            o = index.similar_items(i, 50, measure, use_table=False)
            np.testing.assert_array_equal(t[0], o[0])
            np.testing.assert_array_equal(t[1], o[1])
        # the pairwise path computes the same sums in the same order as the sparse product
        i = np.repeat(np.arange(r.n_items), 50)
        nb = table[f"neighbors_{measure}"].ravel()
        ok = nb >= 0
        np.testing.assert_array_equal(
            np.round(index.item_similarity(i[ok], nb[ok], measure), 10), table[f"scores_{measure}"].ravel()[ok]
        )


def test_amazon_5core_recommend_and_predict(amazon):
    index, ref, r = amazon
    rng = np.random.default_rng(5)
    users = rng.choice(r.n_users, 5, replace=False).tolist()
    heavy = int(np.argmax(index.user_count))  # the user with the most reviews, plus a random few
    for u in [heavy, *users]:
        for measure in ("cosine", "jaccard"):  # cosine: the factorised path; jaccard: the chunked one
            rec = index.recommend(u, 10, measure)
            want = ref.recommend(u, 10, measure)
            assert rec.items.tolist() == [j for _, j, _ in want], (u, measure)
            np.testing.assert_allclose(rec.scores, [s for s, _, _ in want], rtol=0, atol=1e-9)
            assert rec.because.tolist() == [b for _, _, b in want], (u, measure)
            assert not set(rec.items.tolist()) & set(ref.by_user[u])
        assert index.recommend(u, 10).items.tolist() == index.recommend(u, 10, "cosine").items.tolist()
    pu = rng.choice(r.n_users, 300)
    pi = rng.choice(r.n_items, 300)
    got = index.predict(pu, pi)
    want = [ref.predict(u, i, "jaccard") for u, i in zip(pu.tolist(), pi.tolist(), strict=True)]
    np.testing.assert_allclose(got.rating, [w for w, _ in want], atol=1e-9)
    assert got.impossible.tolist() == [f for _, f in want]
