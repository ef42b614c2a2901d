"""The top-N rankers: the contract for every kind of the spec table, and each fast fit against a readable reference
of its formula."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from chorus.services.rating.rankers import (
    MAX_EASE_ITEMS,
    REGISTRY,
    EaseRanker,
    IalsRanker,
    ItemKnnRanker,
    Ranker,
)
from chorus.services.rating.rankers.base import history_row
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.kinds import RANKERS
from chorus.training.ranking import fit as ranking_fit
from chorus.training.ranking.fit import (
    FITTERS,
    GRIDS,
    PARTS,
    fit_ease,
    fit_ease_ials,
    fit_ials,
    fit_item_knn,
    fit_rp3beta,
    fitter_of,
    implicit_als,
    knn_similarity,
)
from tests.rating.ranker_contract import RankerContract, contract_reviews, every_ranker

ALS = {"factors": 4, "regularization": 0.1, "alpha": 2.0, "iterations": 10, "num_threads": 2, "seed": 3}

#: Contract points beyond each grid's first: small fits with a history that matters (EASE's λ, iALS's factors), and
#: the branches the first point does not reach (rating weights, row normalisation, rating confidences).
MORE: dict[str, list[dict[str, Any]]] = {
    "item_knn": [
        {"neighbours": 6, "shrink": 2.0, "values": "binary", "normalise": "none"},
        {"neighbours": 4, "shrink": 0.0, "values": "rating", "normalise": "row"},
    ],
    "ease": [{"lam": 5.0}],
    "ials": [{**ALS, "values": "binary"}, {**ALS, "values": "rating", "alpha": 0.5}],
    "ease_ials": [{**ALS, "values": "binary", "lam": 5.0, "w": 0.5}],
}


@pytest.mark.parametrize("case", every_ranker(MORE), indirect=True, scope="class")
class TestEveryRanker(RankerContract):
    pass


def test_the_registry_and_the_selection_follow_the_spec_table():
    served = [spec.name for spec in RANKERS if spec.served]
    assert list(REGISTRY) == list(FITTERS) == list(GRIDS) == served
    for spec in RANKERS:
        assert Ranker.class_of(spec).kind == spec.name and callable(fitter_of(spec)) and spec.grid
        if spec.served:
            assert REGISTRY[spec.name] is Ranker.class_of(spec) and FITTERS[spec.name] is fitter_of(spec)
            assert GRIDS[spec.name] == [dict(p) for p in spec.grid]
    # the selection's tie-break order among the shipped kinds
    shipped = ["popular", "item_knn", "ease", "ials", "ease_ials"]
    assert [kind for kind in served if kind in shipped] == shipped
    assert FITTERS["ease"] is fit_ease and FITTERS["ease_ials"] is fit_ease_ials
    # a blend's parts are served kinds listed before it, and its grid holds only its own params
    for spec in RANKERS:
        for part in spec.parts:
            assert served.index(part) < served.index(spec.name)
    assert PARTS == {"ease_ials": ("ease", "ials")} and all(set(p) == {"w"} for p in GRIDS["ease_ials"])


# -- EASE ----------------------------------------------------------------------------------------------------


def ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """B straight from Steck (2019), eq. 8: P = (XᵀX + λI)⁻¹, B = I − P·diagMat(1/diag(P))."""
    n = x.shape[1]
    p = np.linalg.inv(x.T @ x + lam * np.eye(n))
    b: np.ndarray = np.eye(n) - p @ np.diag(1.0 / np.diag(p))
    return b


def test_ease_matches_the_dense_formula():
    rng = np.random.default_rng(1)
    stars = (rng.random((9, 7)) < 0.45) * rng.integers(1, 6, (9, 7))
    reviews = sp.csr_array(stars.astype(np.float64))
    ranker = fit_ease(reviews, {"lam": 2.5})
    b = ease_reference((stars > 0).astype(np.float64), 2.5)
    assert ranker.weights.dtype == np.float32 and np.all(np.diag(ranker.weights) == 0)
    np.testing.assert_allclose(ranker.weights, b, rtol=1e-5, atol=1e-6)
    x = (stars > 0).astype(np.float64)
    users = np.flatnonzero(x.sum(axis=1) > 0)
    np.testing.assert_allclose(ranker.score(reviews)[users], (x @ b)[users], rtol=1e-5, atol=1e-6)
    # because: the row of B of each history item
    history = sp.csr_array(reviews[[users[0]]])
    items = np.arange(7)
    np.testing.assert_allclose(ranker.contributions(history, items), b[history.indices][:, items].T, atol=1e-6)


def test_ease_dropout_penalises_each_item_by_its_count():
    rng = np.random.default_rng(2)
    x = (rng.random((12, 6)) < 0.5).astype(np.float64)
    gram = x.T @ x
    lam, p = 3.0, 0.4
    inv = np.linalg.inv(gram + lam * np.eye(6) + p / (1 - p) * np.diag(np.diag(gram)))
    want = np.eye(6) - inv @ np.diag(1.0 / np.diag(inv))
    got = fit_ease(sp.csr_array(x), {"lam": lam, "dropout": p})
    np.testing.assert_allclose(got.weights, want, rtol=1e-5, atol=1e-6)
    assert got.params == {"lam": lam, "dropout": p}
    for bad in (-0.1, 1.0):
        with pytest.raises(InvalidInput, match="dropout"):
            fit_ease(sp.csr_array(x), {"lam": lam, "dropout": bad})


def test_ease_sqrt_rating_input_fits_and_scores_the_square_roots_of_the_ratings():
    rng = np.random.default_rng(3)
    stars = (rng.random((14, 6)) < 0.5) * rng.integers(1, 6, (14, 6))
    stars[0, :2] = (5, 2)
    reviews = sp.csr_array(stars.astype(np.float64))
    x = np.sqrt(stars.astype(np.float64))
    lam, p = 3.0, 0.5
    gram = x.T @ x
    scale = np.mean(np.square(x[stars > 0]))  # λ in units of the mean squared input
    inv = np.linalg.inv(gram + lam * scale * np.eye(6) + p / (1 - p) * np.diag(np.diag(gram)))
    want = np.eye(6) - inv @ np.diag(1.0 / np.diag(inv))
    got = fit_ease(reviews, {"lam": lam, "dropout": p, "input": "sqrt_rating"})
    np.testing.assert_allclose(got.weights, want, rtol=1e-5, atol=1e-6)
    row = sp.csr_array(reviews[[0]])
    np.testing.assert_allclose(got.score(row)[0], x[0] @ want, rtol=1e-5, atol=1e-6)
    # a 5-star item's terms weigh √5 of its row of B, a 2-star one's √2; recency weights multiply them
    terms = got.contributions(row, np.arange(6))
    np.testing.assert_allclose(terms.sum(axis=1), got.score(row)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms[:, 0], np.sqrt(5.0) * want[0], rtol=1e-5, atol=1e-6)
    w = np.linspace(1.0, 0.5, row.indices.shape[0])
    np.testing.assert_allclose(got.score_weighted(row, w)[0], (w * x[0][row.indices]) @ want[row.indices], rtol=1e-5)
    # binary input is plain EASE whatever the ratings
    binary = fit_ease(reviews, {"lam": lam, "dropout": p})
    plain = fit_ease(sp.csr_array((stars > 0).astype(np.float64)), {"lam": lam, "dropout": p})
    assert np.array_equal(binary.weights, plain.weights)
    with pytest.raises(InvalidInput, match="input must be one of binary, sqrt_rating"):
        fit_ease(reviews, {"lam": lam, "input": "log"})


def test_rp3beta_matches_the_random_walk_formula():
    rng = np.random.default_rng(5)
    stars = (rng.random((20, 8)) < 0.4) * rng.integers(1, 6, (20, 8))
    reviews = sp.csr_array(stars.astype(np.float64))
    x = (stars > 0).astype(np.float64)
    alpha, beta, k = 0.7, 0.3, 3
    p_ui = x / np.maximum(x.sum(axis=1), 1)[:, None]
    p_iu = x.T / np.maximum(x.sum(axis=0), 1)[:, None]
    walk = (p_iu**alpha) @ (p_ui**alpha) / np.maximum(x.sum(axis=0), 1)[None, :] ** beta
    np.fill_diagonal(walk, 0.0)
    got = fit_rp3beta(reviews, {"alpha": alpha, "beta": beta, "neighbours": k}).similarity.toarray()
    for i in range(8):
        keep = np.flatnonzero(got[i])
        assert keep.shape[0] == min(k, np.count_nonzero(walk[i]))
        # the kept entries are the row's largest (ties to the lower index) and equal the formula's
        order = np.lexsort((np.arange(8), -walk[i]))[: keep.shape[0]]
        assert set(keep) == set(order)
        np.testing.assert_allclose(got[i, keep], walk[i, keep], rtol=1e-5)
    for bad in ({"alpha": -1.0, "beta": 0.0, "neighbours": 5}, {"alpha": 0.5, "beta": 0.0, "neighbours": 0}):
        with pytest.raises(InvalidInput, match="rp3beta"):
            fit_rp3beta(reviews, bad)


def test_ease_on_a_large_catalogue_keeps_only_its_fitted_items(monkeypatch):
    """Past EASE_FIT_ITEMS items, B is over the most reviewed ones only, stored as such: the other items score 0
    and add nothing, exactly as the full matrix with their rows and columns zero would."""
    rng = np.random.default_rng(4)
    stars = (rng.random((30, 10)) < np.linspace(0.9, 0.1, 10)) * rng.integers(1, 6, (30, 10))
    reviews = sp.csr_array(stars.astype(np.float64))
    monkeypatch.setattr(ranking_fit, "EASE_FIT_ITEMS", 4)
    ranker = fit_ease(reviews, {"lam": 2.0})
    fitted = np.sort(np.argsort(-(stars > 0).sum(axis=0), kind="stable")[:4])
    np.testing.assert_array_equal(ranker.items, fitted)
    assert ranker.weights.shape == (4, 4) and not ranker.every_item
    full = np.zeros((10, 10))
    full[np.ix_(fitted, fitted)] = ease_reference((stars[:, fitted] > 0).astype(np.float64), 2.0)
    x = (stars > 0).astype(np.float64)
    users = np.flatnonzero(x.sum(axis=1) > 0)
    np.testing.assert_allclose(ranker.score(reviews)[users], (x @ full)[users], rtol=1e-5, atol=1e-6)
    history = sp.csr_array(reviews[[users[0]]])
    items = np.arange(10)
    np.testing.assert_allclose(
        ranker.contributions(history, items), full[history.indices][:, items].T, rtol=1e-5, atol=1e-6
    )
    # the round trip keeps the fitted items; a version holding a full B (no fitted items) loads as every item
    again = EaseRanker.from_arrays(ranker.to_arrays(), ranker.to_meta())
    np.testing.assert_array_equal(again.items, fitted)
    old = EaseRanker.from_arrays(
        {"item_count": ranker.item_count, "weights": full.astype(np.float32)}, ranker.to_meta()
    )
    assert old.every_item
    np.testing.assert_allclose(old.score(reviews), ranker.score(reviews), rtol=1e-6, atol=1e-6)
    with pytest.raises(InvalidInput, match="ascending"):
        EaseRanker(item_count=ranker.item_count, params={}, items=fitted[::-1].copy(), weights=ranker.weights)


def test_ease_refuses_catalogues_beyond_its_limit():
    too_big = sp.csr_array(([5.0], ([0], [MAX_EASE_ITEMS])), shape=(2, MAX_EASE_ITEMS + 1))
    with pytest.raises(InvalidInput, match="exceed"):
        fit_ease(too_big, {"lam": 100.0})
    with pytest.raises(InvalidInput):
        fit_ease(contract_reviews(), {"lam": 0.0})


# -- item-kNN ------------------------------------------------------------------------------------------------


def knn_reference(x: np.ndarray, neighbours: int, shrink: float, normalise: str) -> np.ndarray:
    """S from its definition, item by item: shrunk cosine, the top ``neighbours`` positive ones (ties to the
    lower index), rows summing to 1 when normalised."""
    n = x.shape[1]
    s = np.zeros((n, n))
    for i in range(n):
        sims = []
        for j in range(n):
            if j == i or not x[:, i].any() or not x[:, j].any():
                continue
            sim = x[:, i] @ x[:, j] / (np.sqrt(x[:, i] @ x[:, i]) * np.sqrt(x[:, j] @ x[:, j]) + shrink)
            if sim > 0:
                sims.append((-sim, j))
        for neg, j in sorted(sims)[:neighbours]:
            s[i, j] = -neg
        if normalise == "row" and s[i].sum() > 0:
            s[i] /= s[i].sum()
    return s


@pytest.mark.parametrize(
    ("neighbours", "shrink", "values", "normalise"),
    [(3, 0.0, "binary", "none"), (2, 5.0, "rating", "none"), (4, 1.0, "binary", "row"), (50, 0.0, "rating", "row")],
)
def test_item_knn_matches_brute_force(neighbours, shrink, values, normalise):
    reviews = contract_reviews()
    dense = reviews.toarray()
    x = dense if values == "rating" else (dense > 0).astype(np.float64)
    params = {"neighbours": neighbours, "shrink": shrink, "values": values, "normalise": normalise}
    ranker = fit_item_knn(reviews, params)
    ref = knn_reference(x, neighbours, shrink, normalise)
    np.testing.assert_array_equal(ranker.similarity.toarray() != 0, ref != 0)
    np.testing.assert_allclose(ranker.similarity.toarray(), ref, rtol=1e-6, atol=1e-7)
    scores = ranker.score(reviews)[:-1]
    np.testing.assert_allclose(scores, (dense[:-1] > 0) @ ref, rtol=1e-5, atol=1e-6)
    # in blocks of a few rows at a time: the same arrays
    blocked = knn_similarity(sp.csr_array(x), neighbours, shrink, normalise, block=7)
    for got, want in zip(blocked, (ranker.sim_indptr, ranker.sim_indices, ranker.sim_data), strict=True):
        np.testing.assert_array_equal(got, want)


def test_item_knn_refuses_bad_parameters():
    for bad in (
        {"neighbours": 0, "shrink": 0.0},
        {"neighbours": 3, "shrink": -1.0},
        {"neighbours": 3, "shrink": 0.0, "normalise": "col"},
    ):
        with pytest.raises(InvalidInput):
            fit_item_knn(contract_reviews(), bad)


# -- iALS ----------------------------------------------------------------------------------------------------


def confidences(reviews: sp.csr_array, params: dict[str, Any]) -> sp.csr_matrix:
    """What implicit is fitted on: c = 1 + α·v on the observed pairs."""
    x = sp.csr_matrix(reviews, dtype=np.float32)
    if params["values"] == "binary":
        x.data[:] = 1.0
    x.data = 1.0 + params["alpha"] * x.data
    return x


@pytest.mark.parametrize("values", ["binary", "rating"])
def test_ials_fold_in_reproduces_implicit(values):
    reviews = contract_reviews()
    params = {**ALS, "values": values, "alpha": 2.0 if values == "binary" else 0.5}
    model = implicit_als(reviews, params)
    ranker = fit_ials(reviews, params)
    assert isinstance(ranker, IalsRanker)
    np.testing.assert_array_equal(ranker.item_factors, model.item_factors)
    users = np.arange(N_USERS_WITH_REVIEWS := reviews.shape[0] - 1)
    conf = confidences(reviews, params)
    folded = ranker.fold_in(sp.csr_array(reviews[users]))
    # implicit's exact recomputation of a user from the final item factors: the same closed form (float32)
    recalculated = model.recalculate_user(users, conf[users])
    np.testing.assert_allclose(folded, recalculated, rtol=2e-3, atol=2e-4)
    # implicit's recommend with that recomputation: the same lists
    ids, _ = model.recommend(users, conf[users], N=8, recalculate_user=True, filter_already_liked_items=True)
    for u in range(N_USERS_WITH_REVIEWS):
        ours = ranker.recommend(sp.csr_array(reviews[[u]]), 8).items
        np.testing.assert_array_equal(ours, ids[u][: ours.size])


def test_ials_fold_in_is_close_to_implicits_trained_user_factors():
    """implicit's stored user factors were solved against the item factors of the previous sweep (and, by
    default, by three conjugate-gradient steps): with the exact solver and enough sweeps to converge, the
    fold-in against the final item factors is close to them, not equal."""
    reviews = contract_reviews()
    params = {**ALS, "values": "binary", "iterations": 60, "use_cg": False}
    model = implicit_als(reviews, params)
    ranker = fit_ials(reviews, params)
    users = np.arange(reviews.shape[0] - 1)
    folded = ranker.fold_in(sp.csr_array(reviews[users]))
    np.testing.assert_allclose(folded, model.user_factors[users], rtol=0.05, atol=0.02)


def test_ials_scores_a_basket_by_folding_it_in():
    ranker = fit_ials(contract_reviews(), {**ALS, "values": "binary"})
    basket = history_row(np.array([3, 1]), None, ranker.n_items)
    y = ranker.item_factors.astype(np.float64)
    lam, alpha = ALS["regularization"], ALS["alpha"]
    yh = y[[1, 3]]
    x = np.linalg.solve(y.T @ y + alpha * yh.T @ yh + lam * np.eye(y.shape[1]), (1 + alpha) * yh.sum(axis=0))
    np.testing.assert_allclose(ranker.score(basket)[0], y @ x, rtol=1e-9)
    assert ranker.contributions(basket, np.array([0])) is None


def test_rankers_refuse_arrays_that_do_not_fit():
    counts = np.ones(4, dtype=np.int64)
    with pytest.raises(InvalidInput):
        EaseRanker(item_count=counts, params={}, items=np.arange(4), weights=np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(InvalidInput):
        EaseRanker(item_count=counts, params={}, items=np.arange(1, 6), weights=np.zeros((5, 5), dtype=np.float32))
    with pytest.raises(InvalidInput):
        IalsRanker(item_count=counts, params={"regularization": 1.0, "alpha": 1.0}, item_factors=np.zeros((3, 2)))
    with pytest.raises(InvalidInput):
        ItemKnnRanker(
            item_count=counts,
            params={},
            sim_indptr=np.zeros(3, dtype=np.int64),
            sim_indices=np.zeros(0, dtype=np.int32),
            sim_data=np.zeros(0, dtype=np.float32),
        )


# -- EASE + iALS blend ---------------------------------------------------------------------------------------


def test_the_blend_mixes_the_standardised_scores_of_its_components():
    reviews = contract_reviews()
    params = {**ALS, "values": "binary", "lam": 5.0, "dropout": 0.0, "w": 0.3}
    blend = fit_ease_ials(reviews, params)
    ease = fit_ease(reviews, {"lam": 5.0}).score(reviews).astype(np.float64)
    ials = fit_ials(reviews, {**ALS, "values": "binary"}).score(reviews)
    got = blend.score(reviews)
    for u in range(reviews.shape[0] - 1):
        allowed = blend.item_count > 0
        allowed[reviews[[u]].indices] = False
        z = [(s[u] - s[u][allowed].mean()) / s[u][allowed].std() for s in (ease, ials)]
        np.testing.assert_allclose(got[u], 0.3 * z[0] + 0.7 * z[1], rtol=1e-9, atol=1e-9)
    with pytest.raises(InvalidInput):
        fit_ease_ials(reviews, {**params, "w": 1.5})
