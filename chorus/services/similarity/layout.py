"""The arrays a similarity index is saved as (the ``similarity`` component of an artifact version), and their
consistency checks.

Every array is a plain numeric ``.npy`` (``allow_pickle=False`` safe)::

    shape, item_indptr, item_users, item_ratings, user_indptr, user_items, user_ratings,
    item_rank, user_rank, item_count, item_mean, item_norm, user_count, user_mean, user_norm   (the index)
    n_neighbors int32 (n_items,)                                      (neighbours per item, ≤ K)
    neighbors_<measure> int32 (n_items, K), -1 padded                  (for jaccard, cosine, pearson)
    scores_<measure> float64 (n_items, K), 0 padded, rounded to 10 places

Titles are not repeated here: the ``data`` component of the same version holds them with the vocabularies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from chorus.shared.contract.errors import ArtifactError
from chorus.shared.contract.names import Measure

FORMAT = 2
"""Format of the arrays; bump on incompatible change. 2: Pearson scores carry significance weighting."""
READABLE_FORMATS = (1, 2)
"""Formats this build loads (a format-1 Pearson table holds unweighted scores: it is not used)."""

CORE_ARRAYS = (
    "shape",
    "item_indptr",
    "item_users",
    "item_ratings",
    "user_indptr",
    "user_items",
    "user_ratings",
    "item_rank",
    "user_rank",
    "item_count",
    "item_mean",
    "item_norm",
    "user_count",
    "user_mean",
    "user_norm",
)
"""The index's arrays, without the neighbour table."""


def table_array_names(measures: Iterable[str] = tuple(Measure)) -> list[str]:
    """Names of the neighbour-table arrays for ``measures``."""
    return ["n_neighbors"] + [f"{kind}_{m}" for m in measures for kind in ("neighbors", "scores")]


def tabled_measures(arrays: Mapping[str, np.ndarray]) -> list[Measure]:
    """The measures whose neighbour table ``arrays`` hold."""
    return [m for m in Measure if f"neighbors_{m}" in arrays]


def validate_arrays(a: Mapping[str, np.ndarray]) -> None:
    """Cheap consistency checks of the index's saved arrays (the artifact store checks the bytes themselves).

    Raises
    ------
    ArtifactError : a missing array, or arrays that do not fit together.
    """
    missing = [name for name in CORE_ARRAYS if name not in a]
    if missing:
        raise ArtifactError(f"similarity arrays missing: {', '.join(missing)}")
    shape = np.asarray(a["shape"])
    if shape.shape != (2,):
        raise ArtifactError(f"similarity shape array has shape {shape.shape}, expected (2,)")
    n_users, n_items = (int(v) for v in shape)
    for side, n_rows, n_cols, other in (("item", n_items, n_users, "users"), ("user", n_users, n_items, "items")):
        indptr, idx, val = a[f"{side}_indptr"], a[f"{side}_{other}"], a[f"{side}_ratings"]
        if indptr.shape != (n_rows + 1,) or idx.shape != val.shape or idx.ndim != 1:
            raise ArtifactError(f"similarity {side} CSR arrays have inconsistent shapes")
        if int(indptr[0]) != 0 or int(indptr[-1]) != idx.shape[0] or np.any(np.diff(indptr) < 0):
            raise ArtifactError(f"similarity {side}_indptr is not a valid CSR index pointer")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n_cols):
            raise ArtifactError(f"similarity {side}_{other} holds an index out of range")
        for stat in ("rank", "count", "mean", "norm"):
            if a[f"{side}_{stat}"].shape != (n_rows,):
                raise ArtifactError(
                    f"similarity {side}_{stat} has shape {a[f'{side}_{stat}'].shape}, expected ({n_rows},)"
                )
        if not np.array_equal(np.asarray(a[f"{side}_count"]), np.diff(indptr)):
            raise ArtifactError(f"similarity {side}_count does not match {side}_indptr")
    if a["item_indptr"][-1] != a["user_indptr"][-1]:
        raise ArtifactError("similarity item and user layouts hold different numbers of ratings")
