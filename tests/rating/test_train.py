"""Rating training: selection on validation only, bias fallback, evaluation protocols, artifact round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chorus.services.rating.models import LatentModel
from chorus.services.rating.persistence import load_component
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.training.rating import train as train_mod
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import FitInfo, Trainset
from chorus.training.rating.objective import Params
from chorus.training.rating.train import SelectionConfig, evaluate, select, train, write_train_result
from tests.rating.data import planted

FAST = SelectionConfig(
    base=LatentConfig(init_scale=0.01, max_sweeps=10), factors=(4,), reg_factors=(0.02, 0.05), reg_bias=(0.02, 0.1)
)


@pytest.fixture(scope="module")
def stars():
    """Planted low-rank ratings rounded to 1..5 stars: 120 users, 90 items, about 3,800 ratings."""
    user, item, rating, _ = planted(n_users=120, n_items=90, k=3, density=0.35, noise=0.3, seed=7)
    return user, item, np.clip(np.rint(rating + 0.5), 1, 5), 120, 90


def test_latent_model_is_selected_where_factors_help(stars):
    user, item, rating, nu, ni = stars
    result = train(Trainset(user, item, rating, nu, ni, 1, 5), seed=0, config=FAST)
    assert result.selection.selected == "latent"
    assert result.model.kind == "latent" and isinstance(result.model, LatentModel) and result.model.n_factors == 4
    test = result.metrics["test"]
    assert test["latent"]["rmse"] < test["bias"]["rmse"] < test["mean"]["rmse"]
    assert result.metrics["validation_rmse"]["latent"] < result.metrics["validation_rmse"]["bias"]
    assert result.hyperparameters["sweeps"] >= 1
    split = result.metrics["split"]
    assert split["train"] + split["validation"] + split["test"] == user.size
    json.dumps(result.hyperparameters), json.dumps(result.metrics)


def test_bias_only_is_selected_when_factors_do_not_beat_it_on_validation(stars, monkeypatch):
    user, item, rating, nu, ni = stars
    calls = []

    def useless_als(data, config, validation=None, n_sweeps=None, **kw):
        calls.append(n_sweeps)
        n_users, n_items = data.n_users, data.n_items
        params = Params(4.0, np.zeros(n_users), np.zeros(n_items), np.ones((n_users, 1)), np.ones((n_items, 1)))
        return params, FitInfo("als", sweeps=3, best_sweep=3, best_validation_rmse=9.0)

    def no_refit(*args, **kw):
        raise AssertionError("the latent model is refitted although bias-only was selected")

    monkeypatch.setattr(train_mod, "fit_als_params", useless_als)  # the grid's fits
    monkeypatch.setattr(train_mod, "fit_als", no_refit)
    result = train(Trainset(user, item, rating, nu, ni, 1, 5), config=FAST)
    assert result.selection.selected == "bias"
    assert result.models["latent"] is result.models["bias"]
    assert result.hyperparameters["n_factors"] == 0 and result.hyperparameters["reg_factors"] is None
    assert result.metrics["test"]["latent"] == result.metrics["test"]["bias"]
    assert calls == [None] * len(FAST.reg_factors)  # only the grid ran; no latent refit


def test_selection_sees_neither_test_rows_nor_fits_on_validation_rows(stars, monkeypatch):
    user, item, rating, nu, ni = stars
    seen = []
    real_select = train_mod.select

    def spy(data, rows, val, config, **kw):
        seen.append((rows, val))
        return real_select(data, rows, val, config, **kw)

    fitted_on = []

    def similarity(u, i, r, n_users, n_items, low, high):
        fitted_on.append(u.size)
        mean = r.mean()
        return lambda users, items: np.full(users.shape, mean)

    monkeypatch.setattr(train_mod, "select", spy)
    res = evaluate(
        user, item, rating, nu, ni, 1, 5, protocol="kfold", folds=3, seed=0, similarity_predict=similarity, config=FAST
    )
    folds = train_mod.kfold_split(user.size, 3, 0)
    assert len(seen) == 3
    for (rows, val), (train_rows, test_rows) in zip(seen, folds, strict=True):
        assert not np.intersect1d(rows, test_rows).size and not np.intersect1d(val, test_rows).size
        assert not np.intersect1d(rows, val).size
        assert np.array_equal(np.sort(np.concatenate([rows, val])), train_rows)
        assert val.size == pytest.approx(0.1 * train_rows.size, abs=1)
    assert fitted_on == [f[0].size for f in folds]
    assert set(res["models"]) == {"mean", "bias", "latent", "similarity"}
    # the similarity stand-in is the global mean of the training fold
    assert res["models"]["similarity"]["rmse"] == pytest.approx(res["models"]["mean"]["rmse"], rel=1e-5)


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_evaluate_reports_every_model(stars, protocol):
    user, item, rating, nu, ni = stars
    res = evaluate(user, item, rating, nu, ni, 1, 5, protocol=protocol, folds=2, seed=3, config=FAST)
    assert res["protocol"] == protocol and res["folds"] == (1 if protocol == "holdout" else 2)
    assert set(res["models"]) == {"mean", "bias", "latent"}
    for m in res["models"].values():
        assert set(m) == {"mse", "rmse", "mae"}
        assert 0 < m["mae"] <= m["rmse"]
    assert res["models"]["latent"]["rmse"] < res["models"]["bias"]["rmse"] < res["models"]["mean"]["rmse"]
    assert len(res["hyperparameters"]) == res["folds"] and res["seconds"] > 0
    json.dumps(res)
    again = evaluate(user, item, rating, nu, ni, 1, 5, protocol=protocol, folds=2, seed=3, config=FAST)
    assert again["models"] == res["models"]  # deterministic under a seed


def test_bad_protocol_and_grid_are_refused(stars):
    user, item, rating, nu, ni = stars
    with pytest.raises(InvalidInput):
        evaluate(user, item, rating, nu, ni, 1, 5, protocol="loo")
    with pytest.raises(InvalidInput):
        SelectionConfig(factors=())
    with pytest.raises(InvalidInput):
        SelectionConfig(factors=(0,))


def test_select_compares_against_bias_on_the_same_validation_rows(stars):
    user, item, rating, nu, ni = stars
    rows, val = np.arange(0, 3000), np.arange(3000, user.size)
    sel = select(Trainset(user, item, rating, nu, ni, 1, 5), rows, val, FAST)
    assert sel.validation_rmse["latent"] <= sel.validation_rmse["bias"]
    bias_rows = [g for g in sel.grid if g["model"] == "bias"]
    assert sel.validation_rmse["bias"] == min(g["validation_rmse"] for g in bias_rows)
    assert len(sel.grid) == len(FAST.reg_bias) + len(FAST.factors) * len(FAST.reg_factors)


# --- artifact component -------------------------------------------------------------------------------------


def test_component_round_trip_through_the_artifact_store(stars, tmp_path):
    user, item, rating, nu, ni = stars
    result = train(Trainset(user, item, rating, nu, ni, 1, 5), config=FAST)
    with VersionWriter(tmp_path) as writer:
        write_train_result(writer, result)
        version_name = writer.commit()
    version = ArtifactStore(tmp_path).open(components=["rating"])
    assert version.name == version_name
    loaded = load_component(version)
    model = result.model
    assert isinstance(loaded, LatentModel) and isinstance(model, LatentModel)
    assert not isinstance(loaded.user_factors, np.memmap) and not loaded.user_factors.flags.writeable
    assert loaded.kind == model.kind and (loaded.low, loaded.high) == (1.0, 5.0)
    assert loaded.global_mean == model.global_mean
    users, items = np.r_[user[:50], -1, 3], np.r_[item[:50], 2, -1]
    a, b = model.predict(users, items), loaded.predict(users, items)
    np.testing.assert_array_equal(a.rating, b.rating)
    np.testing.assert_array_equal(a.fallback, b.fallback)
    for u in (0, 5, -1):
        ra, rb = model.recommend(u, 10, item[user == u]), loaded.recommend(u, 10, item[user == u])
        np.testing.assert_array_equal(ra.items, rb.items)
        assert ra.fallback == rb.fallback
    meta = version.component_meta("rating")
    assert meta["hyperparameters"]["selected"] == "latent"
    assert meta["hyperparameters"]["n_factors"] == model.n_factors
    assert set(meta["metrics"]["test"]) == {"mean", "bias", "latent"}


def test_train_component_writes_a_loadable_rating_component(stars, tmp_path, monkeypatch):
    from chorus.shared.data import LoadReport, Ratings, RatingScale

    user, item, rating, nu, ni = stars
    ratings = Ratings(
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        rating=rating.astype(np.float32),
        timestamp=np.zeros(user.size, np.int64),
        user_ids=np.array([f"u{j}" for j in range(nu)]),
        item_ids=np.array([f"i{j}" for j in range(ni)]),
        titles=np.array([""] * ni),
        scale=RatingScale(1.0, 5.0, 1.0),
        report=LoadReport(path="planted", format="test"),
    )
    monkeypatch.setattr(train_mod, "SelectionConfig", lambda: FAST)
    with VersionWriter(tmp_path) as writer:
        summary = train_mod.train_component(ratings, writer, seed=0, progress=False)
        writer.commit()
    assert summary["selected"] == "latent" and summary["K"] == 4
    assert set(summary["test_rmse"]) == {"mean", "bias", "latent"}
    model = load_component(ArtifactStore(tmp_path).open())
    assert isinstance(model, LatentModel)
    assert (model.n_users, model.n_items, model.n_factors) == (nu, ni, 4)


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_counts_every_step_up_to_the_exact_total_and_figures_do_not_move(stars, protocol, workers):
    user, item, rating, nu, ni = stars

    def similarity(u, i, r, n_users, n_items, low, high):
        mean = r.mean()
        return lambda users, items: np.full(users.shape, mean)

    args = (user, item, rating, nu, ni, 1, 5)
    kw = dict(protocol=protocol, folds=3, seed=3, config=FAST, similarity_predict=similarity, workers=workers)
    seen: list[int] = []
    res = evaluate(*args, **kw, progress=seen.append)
    total = train_mod.evaluation_steps(protocol, 3, FAST, similarity=True, text_aware=None)
    # per fold: 2 λ_b + 2 λ_f grid points, the refit and the similarity fit
    assert total == (1 if protocol == "holdout" else 3) * 6
    assert seen[-1] == total and seen == sorted(set(seen))  # rising, never beyond the total, never repeated
    if workers == 1 or protocol == "holdout":  # every step is counted here, one by one
        assert seen == list(range(1, total + 1))
    else:  # folds in worker processes: each counted whole when it is back
        assert seen == [6, 12, 18]
    plain = evaluate(*args, **kw)
    assert plain["models"] == res["models"] and plain["hyperparameters"] == res["hyperparameters"]
