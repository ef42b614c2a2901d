"""The ``rating`` artifact component: write a model into a version, load the served model from one.

Files (``.npy``, read into memory on load): ``global_mean`` float64 (1,), ``user_bias``, ``item_bias`` float32,
``user_factors``, ``item_factors`` float32 (n, K), ``user_count``, ``item_count`` int32, ``popular_items`` int32,
whatever the kind (models without factors store K = 0), and any further arrays a model's ``to_arrays`` names. The
manifest's ``hyperparameters`` record the model's ``kind``, which picks its class in
:data:`chorus.services.rating.models.REGISTRY` (:func:`~chorus.services.rating.stored.load_stored`), with
``n_factors``, the ``scale`` and the sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chorus.services.rating.models import REGISTRY, RatingModel
from chorus.services.rating.stored import load_stored
from chorus.shared.artifacts import Version, VersionWriter

COMPONENT = "rating"
#: The kind of a version whose manifest names none (written before kinds were recorded).
DEFAULT_KIND = "latent"


def write_component(writer: VersionWriter, model: RatingModel, meta: dict[str, Any] | None = None) -> None:
    """Store ``model`` as the ``rating`` component of a version being written.

    ``meta["hyperparameters"]`` (e.g. the selection's) and ``meta["metrics"]`` go into the manifest, the
    hyperparameters completed with the model's kind, K, scale and sizes.
    """
    meta = meta or {}
    arrays = model.to_arrays()
    # the format's factor arrays, zero-width for a model without factors
    arrays.setdefault("user_factors", np.zeros((model.n_users, 0), np.float32))
    arrays.setdefault("item_factors", np.zeros((model.n_items, 0), np.float32))
    for name, array in arrays.items():
        writer.save_array(COMPONENT, name, array)
    described = model.to_meta()
    hyper = dict(meta.get("hyperparameters", {}))
    hyper.update({"kind": described.pop("kind"), "n_factors": int(arrays["user_factors"].shape[1]), **described})
    writer.set_component_meta(COMPONENT, hyperparameters=jsonable(hyper), metrics=jsonable(meta.get("metrics", {})))


def load_component(version: Version) -> RatingModel:
    """The ``rating`` component of a verified version, as the class its kind names (arrays
    read-only).

    Raises
    ------
    ArtifactError : an unknown kind, a missing array, or arrays whose shapes do not fit together.
    """
    meta = version.component_meta(COMPONENT)
    hyper = meta.get("hyperparameters", {})
    kind = hyper.get("kind", DEFAULT_KIND)
    where = f"{COMPONENT} component of version {version.name}"
    return load_stored(
        REGISTRY,
        kind,
        lambda: {name: version.array(COMPONENT, name) for name in meta.get("files", {})},
        hyper,
        found=f"{where} holds a {kind!r} model",
        subject=where,
    )


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, tuples as lists, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
