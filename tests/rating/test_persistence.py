"""The ``rating`` artifact component: the files every kind stores, dispatch on the recorded kind, versions written
before the model classes (and before kinds were recorded) still load, bad components are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chorus.services.rating.models import BiasModel, LatentModel, MeanModel
from chorus.services.rating.persistence import COMPONENT, load_component, write_component
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import ArtifactError
from tests.rating.test_models import baseline, tiny_model


def old_format(tmp_path, k: int, hyperparameters: dict[str, Any], drop: str | None = None):
    """A version whose rating component is written array by array, as every version so far holds it."""
    rng = np.random.default_rng(0)
    b = baseline()
    arrays = {
        "global_mean": np.array([b["global_mean"]], np.float64),
        "user_bias": b["user_bias"],
        "item_bias": b["item_bias"],
        "user_factors": rng.normal(0, 1, (4, k)).astype(np.float32),
        "item_factors": rng.normal(0, 1, (5, k)).astype(np.float32),
        "user_count": b["user_count"],
        "item_count": b["item_count"],
        "popular_items": b["popular_items"],
    }
    with VersionWriter(tmp_path) as writer:
        for name, array in arrays.items():
            if name != drop:
                writer.save_array(COMPONENT, name, array)
        writer.set_component_meta(COMPONENT, hyperparameters=hyperparameters, metrics={})
        writer.commit()
    return ArtifactStore(tmp_path).open(components=[COMPONENT]), arrays


def test_every_kind_stores_the_same_files(tmp_path):
    models = {
        "mean": MeanModel(**baseline(user_bias=np.zeros(4, np.float32), item_bias=np.zeros(5, np.float32))),
        "bias": BiasModel(**baseline()),
        "latent": tiny_model(k=3),
    }
    for kind, model in models.items():
        with VersionWriter(tmp_path / kind) as writer:
            write_component(writer, model, {"hyperparameters": {"selected": kind}, "metrics": {"x": np.float32(1)}})
            writer.commit()
        version = ArtifactStore(tmp_path / kind).open(components=[COMPONENT])
        meta = version.component_meta(COMPONENT)
        assert set(meta["files"]) == {
            "global_mean",
            "user_bias",
            "item_bias",
            "user_factors",
            "item_factors",
            "user_count",
            "item_count",
            "popular_items",
        }
        k = 3 if kind == "latent" else 0
        assert meta["files"]["user_factors"]["shape"] == [4, k] and meta["files"]["item_factors"]["dtype"] == "<f4"
        assert meta["files"]["global_mean"]["dtype"] == "<f8" and meta["files"]["user_count"]["dtype"] == "<i4"
        assert meta["hyperparameters"] == {
            "selected": kind,
            "kind": kind,
            "n_factors": k,
            "scale": {"low": 1.0, "high": 5.0},
            "n_users": 4,
            "n_items": 5,
        }
        assert meta["metrics"] == {"x": 1.0}
        loaded = load_component(version)
        assert type(loaded) is type(model)


@pytest.mark.parametrize("kind,cls", [(None, LatentModel), ("latent", LatentModel), ("bias", BiasModel)])
def test_versions_written_before_the_model_classes_load(tmp_path, kind, cls):
    hyper = {"n_factors": 2, "scale": {"low": 1.0, "high": 5.0}, "n_users": 4, "n_items": 5}
    if kind is not None:
        hyper["kind"] = kind  # versions without a kind hold the latent model
    version, arrays = old_format(tmp_path, 0 if kind == "bias" else 2, hyper)
    model = load_component(version)
    assert type(model) is cls
    assert not isinstance(model.user_bias, np.memmap) and not model.user_bias.flags.writeable
    users, items = np.array([0, 1, 2, -1, 3]), np.array([0, 1, 3, 2, 4])
    score = np.float32(3.5) + arrays["user_bias"][users[:3]] + arrays["item_bias"][items[:3]]
    if cls is LatentModel:
        score += np.einsum("nk,nk->n", arrays["user_factors"][users[:3]], arrays["item_factors"][items[:3]])
    np.testing.assert_array_equal(model.predict(users, items).rating[:3], np.clip(score, 1, 5).astype(np.float64))


def test_an_unknown_kind_is_refused(tmp_path):
    version, _ = old_format(tmp_path, 2, {"kind": "neural", "scale": {"low": 1.0, "high": 5.0}})
    with pytest.raises(ArtifactError, match="neural"):
        load_component(version)


def test_an_incomplete_component_is_refused(tmp_path):
    version, _ = old_format(tmp_path, 2, {"kind": "latent", "scale": {"low": 1.0, "high": 5.0}}, drop="item_bias")
    with pytest.raises(ArtifactError, match="incomplete"):
        load_component(version)
    version, _ = old_format(tmp_path / "noscale", 2, {"kind": "latent"})
    with pytest.raises(ArtifactError, match="incomplete"):
        load_component(version)


def test_arrays_that_do_not_fit_together_are_refused(tmp_path):
    model = tiny_model()
    with VersionWriter(tmp_path) as writer:
        write_component(writer, model, {})
        writer.save_array(COMPONENT, "item_factors", np.zeros((5, model.n_factors + 1), np.float32))
        writer.commit()
    with pytest.raises(ArtifactError, match="shapes"):
        load_component(ArtifactStore(tmp_path).open())
