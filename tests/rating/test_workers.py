"""The rating and ranking components are the same whatever number of workers trains them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.workers import using_workers
from chorus.training.rating.als import Sweeper, fit_als
from chorus.training.rating.config import LatentConfig
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.train import SelectionConfig, evaluate, train
from tests.rating.data import planted


def _data() -> Trainset:
    # wide enough that both the primal and the dual solves run and there are many batches per half-sweep
    user, item, rating, _ = planted(n_users=300, n_items=200, density=0.15)
    return Trainset(user, item, rating, 300, 200, 1.0, 5.0)


def test_als_is_bit_identical_for_any_number_of_workers():
    data = _data()
    cfg = replace(LatentConfig(), n_factors=6, max_sweeps=4)
    want, _ = fit_als(data, cfg, workers=1)
    for workers in (2, 3):
        got, _ = fit_als(data, cfg, workers=workers)
        for name in ("user_bias", "item_bias", "user_factors", "item_factors"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=f"{name}, {workers}")
        assert got.global_mean == want.global_mean


def test_kfold_evaluation_is_the_same_with_folds_in_parallel():
    data = _data()
    config = SelectionConfig(
        factors=(3,), reg_factors=(0.05,), reg_bias=(0.1,), base=replace(LatentConfig(), max_sweeps=3)
    )
    args = (data.user, data.item, data.rating, data.n_users, data.n_items, 1.0, 5.0)
    one = evaluate(*args, protocol="kfold", folds=3, config=config, workers=1)
    two = evaluate(*args, protocol="kfold", folds=3, config=config, workers=2)
    assert one["models"] == two["models"] and one["per_fold"] == two["per_fold"]
    assert one["hyperparameters"] == two["hyperparameters"]


def test_chorus_train_writes_the_same_arrays_for_one_and_two_workers(tmp_path):
    from chorus.shared.artifacts import ArtifactStore
    from chorus.training.train import train
    from tests.conftest import real_file

    data = real_file("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz")
    arrays = {}
    for workers in (1, 2):
        root = tmp_path / str(workers)
        version = train(
            data, root, ["similarity", "rating", "ranking"], progress=False, log=lambda _: None, workers=workers
        )
        folder = Path(ArtifactStore(root).open(version).path)
        arrays[workers] = {p.relative_to(folder).as_posix(): np.load(p) for p in sorted(folder.rglob("*.npy"))}
    assert arrays[1].keys() == arrays[2].keys() and len(arrays[1]) > 20
    for name, want in arrays[1].items():
        if name.startswith("rating/") and want.dtype.kind == "f":
            # the text-aware model (served here: the file has review text) is fitted by scikit-learn on BLAS,
            # whose reductions follow its thread count: equal within 1e-9 (the README says so)
            np.testing.assert_allclose(arrays[2][name], want, rtol=1e-9, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(arrays[2][name], want, err_msg=name)


def test_selection_and_refit_are_bit_identical_for_any_number_of_workers():
    data = _data()
    config = SelectionConfig(
        factors=(4, 6), reg_factors=(0.03, 0.05), reg_bias=(0.05, 0.1, 0.2), base=replace(LatentConfig(), max_sweeps=5)
    )
    want = train(data, seed=0, config=config, workers=1)
    assert want.selection.selected == "latent"
    for workers in (2, 3):
        got = train(data, seed=0, config=config, workers=workers)
        assert [g | {"seconds": 0} for g in got.selection.grid] == [g | {"seconds": 0} for g in want.selection.grid]
        assert got.hyperparameters == want.hyperparameters and got.metrics == want.metrics
        for name, model in want.models.items():
            for key, array in model.to_arrays().items():
                np.testing.assert_array_equal(got.models[name].to_arrays()[key], array, err_msg=f"{name}.{key}")


def test_a_shared_sweeper_fits_as_a_fresh_one():
    data = _data()
    val = (data.user[:300], data.item[:300], data.rating[:300])
    fit_on = data.subset(np.arange(300, data.n))
    first, second = (replace(LatentConfig(), n_factors=5, max_sweeps=6, reg_factors=lf) for lf in (0.02, 0.08))
    with Sweeper(fit_on, 5, "float32", workers=2, validation=val) as sweeper:
        fit_als(fit_on, first, validation=val, sweeper=sweeper)
        shared, shared_info = fit_als(fit_on, second, validation=val, sweeper=sweeper)
    fresh, fresh_info = fit_als(fit_on, second, validation=val, workers=1)
    assert shared_info.validation_rmse == fresh_info.validation_rmse
    assert shared_info.best_sweep == fresh_info.best_sweep
    for key, array in fresh.to_arrays().items():
        np.testing.assert_array_equal(shared.to_arrays()[key], array, err_msg=key)


def test_a_sweeper_for_other_data_or_k_is_refused():
    data = _data()
    cfg = replace(LatentConfig(), n_factors=3, max_sweeps=2)
    with Sweeper(data, 4, "float32") as other_k:
        with pytest.raises(InvalidInput, match="another K"):
            fit_als(data, cfg, sweeper=other_k)
    with Sweeper(data.subset(np.arange(100)), 3, "float32") as other_data:
        with pytest.raises(InvalidInput, match="other data"):
            fit_als(data, cfg, sweeper=other_data)
    with Sweeper(data, 3, "float32") as no_validation:
        with pytest.raises(InvalidInput, match="validation"):
            fit_als(data, cfg, validation=(data.user[:5], data.item[:5], data.rating[:5]), sweeper=no_validation)


def test_the_refitted_bias_model_does_not_follow_the_blas_thread_count():
    # as chorus train runs it, BLAS on N threads; the bias refit's solve is large enough here (25,000 unknowns)
    # for OpenBLAS to split its sums over threads, which would change the result
    rng = np.random.default_rng(0)
    nu, ni, n = 20_000, 5_000, 60_000
    data = Trainset(rng.integers(0, nu, n), rng.integers(0, ni, n), rng.integers(1, 6, n).astype(float), nu, ni, 1, 5)
    config = SelectionConfig(
        factors=(2,), reg_factors=(0.05,), reg_bias=(0.1,), base=replace(LatentConfig(), max_sweeps=2)
    )
    models = {}
    for workers in (1, 2):
        with using_workers(workers):
            models[workers] = train(data, seed=0, config=config, workers=workers).models
    for name, model in models[1].items():
        for key, array in model.to_arrays().items():
            np.testing.assert_array_equal(models[2][name].to_arrays()[key], array, err_msg=f"{name}.{key}")
