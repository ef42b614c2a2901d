"""The fast query paths against the brute-force reference and against each other, bit for bit.

Each path has two or more ways to form the same numbers (a pass over every rating or a gather of some rows;
dense counting arrays or a sort; candidate rows or walked pairs). Every way is forced here in turn on random
long-tailed data: the answers must equal the reference's (``tests/similarity/reference.py``, written from the
formulas) and the ways must agree exactly, since the sums add the same terms in the same order.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import chorus.services.similarity.recommend as recommend_module
import chorus.services.similarity.side as side_module
import chorus.services.similarity.sparse as sparse_module
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.ranking import order_by_rounded_score, top_by_rounded_score
from chorus.services.similarity.sparse import group_sums, positions_in
from chorus.shared.contract.names import Measure
from tests.similarity.reference import Reference, random_ratings

SEEDS = [0, 1, 2]


def fixture_data(seed: int, sparse: bool = False) -> tuple[SimilarityIndex, Reference]:
    """Long-tailed random ratings: 50 users and 35 items, most pairs of items sharing a user, or (``sparse``)
    300 users and 80 items, most pairs sharing none."""
    shape = dict(n_users=300, n_items=80, n=400) if sparse else dict(n_users=50, n_items=35, n=450)
    user, item, rating, n_users, n_items = random_ratings(seed, **shape)
    rank = np.random.default_rng(seed).permutation(n_items)  # raw-id order unlike index order: ties need it
    index = SimilarityIndex.from_arrays(user, item, rating, n_users, n_items, item_rank=rank)
    ratings = {(int(u), int(i)): float(r) for u, i, r in zip(user, item, rating, strict=True)}
    return index, Reference(ratings, n_users, n_items, item_rank=rank)


@pytest.fixture(params=[False, True], ids=["sorted-keys", "dense-keys"])
def dense_keys(request, monkeypatch):
    """Force :func:`group_sums` and :func:`positions_in` to count densely (True) or to sort (False)."""
    monkeypatch.setattr(sparse_module, "_DENSE_KEYS", 10**9 if request.param else 0)
    return request.param


# --- helpers ----------------------------------------------------------------------------------------------


def test_group_sums_add_in_input_order_either_way(monkeypatch):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, 400)
    weights = rng.normal(size=400) * 10.0 ** rng.integers(-8, 8, 400)  # sums that depend on the order
    answers = []
    for dense in (0, 10**9):
        monkeypatch.setattr(sparse_module, "_DENSE_KEYS", dense)
        answers.append(group_sums(keys, weights, 50))
    want_keys = np.unique(keys)
    want = [0.0] * 50
    for k, w in zip(keys.tolist(), weights.tolist(), strict=True):
        want[k] += w  # left to right, from 0
    for got_keys, got in answers:
        assert got_keys.tolist() == want_keys.tolist()
        assert got.tolist() == [want[k] for k in want_keys.tolist()]  # bit for bit


def test_positions_in_either_way(monkeypatch):
    rng = np.random.default_rng(1)
    values = rng.permutation(100)[:30]
    x = rng.integers(0, 100, 500)
    want = [values.tolist().index(v) if v in values else -1 for v in x.tolist()]
    for dense in (0, 10**9):
        monkeypatch.setattr(sparse_module, "_DENSE_KEYS", dense)
        assert positions_in(values, x, 100).tolist() == want
    assert positions_in(values[:0], x, 100).tolist() == [-1] * 500


@pytest.mark.parametrize("k", [1, 5, 40, 1000])
def test_top_by_rounded_score_is_the_head_of_the_full_order(k):
    rng = np.random.default_rng(k)
    score = rng.integers(0, 6, 300) / 7.0 + rng.normal(scale=1e-12, size=300)  # many ties after rounding
    rank = rng.permutation(300)
    assert top_by_rounded_score(score, rank, k).tolist() == order_by_rounded_score(score, rank)[:k].tolist()


# --- pairwise similarities and predictions ----------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", list(Measure))
@pytest.mark.parametrize("slots", [40, 200, 10**6], ids=["a-row-a-block", "rows-a-block", "one-map"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_pair_scores_by_row_equal_walked_and_reference(seed, measure, slots, sparse, monkeypatch):
    index, ref = fixture_data(seed, sparse)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, index.n_items, 600)
    b = rng.integers(0, index.n_items, 600)
    a[:40] = b[:40]  # a row with itself
    walked = index.items.pair_scores(a, b, measure, 97, by_row=False)
    # a small slot map: several blocks of one or a few rows, and slots left over from earlier blocks
    monkeypatch.setattr(side_module, "SLOT_BUDGET", slots)
    by_row = index.items.pair_scores(a, b, measure, 97, by_row=True)
    chosen = index.items.pair_scores(a, b, measure, 97)
    np.testing.assert_array_equal(by_row, walked)
    np.testing.assert_array_equal(chosen, walked)
    want = [ref.sim(ref.by_item[i], ref.by_item[j], measure) for i, j in zip(a.tolist(), b.tolist(), strict=True)]
    np.testing.assert_allclose(by_row, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", list(Measure))
@pytest.mark.parametrize("per_walk", [0, 6, 10**9], ids=["walked", "chosen", "by-row"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_batch_predictions_match_the_reference(seed, measure, per_walk, sparse, monkeypatch):
    index, ref = fixture_data(seed, sparse)
    monkeypatch.setattr(side_module, "PRODUCT_PER_WALK", per_walk)
    rng = np.random.default_rng(10 + seed)
    users = rng.integers(-1, index.n_users, 800)
    items = rng.integers(-1, index.n_items, 800)
    got = index.predict(users, items, measure)
    want = [ref.predict(u, i, measure) for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    assert got.impossible.tolist() == [f for _, f in want]
    ok = ~got.impossible
    np.testing.assert_allclose(got.rating[ok], np.array([w for w, _ in want])[ok], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got.rating[~ok], index.global_mean)


@pytest.mark.parametrize("measure", list(Measure))
def test_batch_predictions_equal_one_pair_at_a_time(measure):
    index, _ = fixture_data(4)
    rng = np.random.default_rng(4)
    users, items = rng.integers(0, index.n_users, 200), rng.integers(0, index.n_items, 200)
    batch = index.predict(users, items, measure).rating
    single = [index.predict(u, i, measure).rating[0] for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    np.testing.assert_array_equal(batch, single)


# --- "because you liked" with cosine -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("full_pass", [0, 10**9], ids=["gathered", "full-pass"])
@pytest.mark.parametrize("block_nnz", [1, 10**9], ids=["one-top-item-a-block", "one-block"])
def test_cosine_recommendations_match_the_reference(seed, full_pass, block_nnz, dense_keys, monkeypatch):
    monkeypatch.setattr(recommend_module, "_FULL_PASS", full_pass)
    index, ref = fixture_data(seed)
    index = SimilarityIndex.from_arrays(
        *_columns(index), index.n_users, index.n_items, item_rank=index.item_rank, config=_config(block_nnz)
    )
    for u in range(index.n_users):
        for k in (1, 7, 50):
            rec = index.recommend(u, k, Measure.cosine)
            want = ref.recommend(u, k, "cosine")
            assert rec.items.tolist() == [j for _, j, _ in want], (u, k)
            np.testing.assert_allclose(rec.scores, [s for s, _, _ in want], rtol=0, atol=1e-9)
            assert rec.because.tolist() == [b for _, _, b in want], (u, k)


@pytest.mark.parametrize("seed", SEEDS)
def test_cosine_scores_are_the_sparse_product_bit_for_bit(seed):
    """The sums are those of q @ R (scipy), q_u = Σ_{i liked} R_ui / ‖R_i‖, divided by ‖R_j‖ and rounded."""
    index, _ = fixture_data(seed)
    side = index.items
    by_user = sp.csr_array(side.right["x"])
    for u in range(index.n_users):
        rated, ratings = index.user_items(u)
        liked = (rated[ratings >= 4.0] if (ratings >= 4.0).any() else rated).astype(np.int64)
        if liked.shape[0] == 0:
            continue
        q = np.zeros(side.n_cols)
        for i in liked.tolist():  # q_u = Σ_i R_ui · (1 / ‖R_i‖), liked items in order
            users, values = side.row_entries(i)
            for v, r in zip(users.tolist(), values.tolist(), strict=True):
                q[v] += r * (1.0 / side.norm[i])
        touched = np.unique(np.concatenate([side.row_entries(i)[0] for i in liked.tolist()]))
        q_row = sp.csr_array((q[touched], touched, [0, touched.shape[0]]), shape=(1, side.n_cols))
        product = q_row @ by_user
        num = dict(zip(product.indices.tolist(), product.data.tolist(), strict=True))
        rec = index.recommend(u, index.n_items, Measure.cosine)
        want = np.round([num.get(j, 0.0) / side.norm[j] for j in rec.items.tolist()], 10)
        assert rec.scores.tolist() == want.tolist()


def _columns(index: SimilarityIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    side = index.users
    user = np.repeat(np.arange(index.n_users), np.diff(side.indptr))
    return user, side.indices.astype(np.int64), side.ratings


def _config(block_nnz: int):
    from chorus.services.similarity.config import SimilarityConfig

    return SimilarityConfig(block_nnz=block_nnz)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", list(Measure))
def test_excluded_items_leave_the_rest_of_the_list_as_it_was(seed, measure, dense_keys):
    """Excluding items (those a user viewed) removes exactly them: every other item keeps its place, score and
    "because", whichever way the sums are formed (cosine exact, the others over a table or exact)."""
    from chorus.training.similarity.build import build_table

    index, _ = fixture_data(seed)
    if measure != Measure.cosine and seed % 2:
        index.attach_table(build_table(index, 5)[0])
    rng = np.random.default_rng(seed)
    for u in range(0, index.n_users, 3):
        full = index.recommend(u, index.n_items, measure)
        exclude = rng.choice(index.n_items, 6, replace=False)
        got = index.recommend(u, index.n_items, measure, exclude=exclude)
        kept = ~np.isin(full.items, exclude)
        assert got.items.tolist() == full.items[kept].tolist()
        assert got.scores.tolist() == full.scores[kept].tolist()
        assert got.because.tolist() == full.because[kept].tolist()
