"""The ``ranking`` artifact component: every fitted ranker of a version, and which one is served by default.

Files: ``<kind>__<name>.npy`` for each array a ranker's ``to_arrays`` names (read into memory on load). The
manifest's ``hyperparameters`` hold ``{"default": kind, "rankers": {kind: {"kind": kind, "params": {...}}}}`` and
its ``metrics`` whatever the selection measured (validation NDCG and the like, per kind). Each ranker's class is
found by its kind in :data:`chorus.services.rating.rankers.REGISTRY`
(:func:`~chorus.services.rating.stored.load_stored`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from chorus.services.rating.persistence import jsonable
from chorus.services.rating.rankers import REGISTRY, Ranker
from chorus.services.rating.stored import load_stored
from chorus.shared.artifacts import Version, VersionWriter
from chorus.shared.contract.errors import ArtifactError, InvalidInput

COMPONENT = "ranking"
SEPARATOR = "__"


def write_rankers(
    writer: VersionWriter,
    rankers: Mapping[str, Ranker],
    default: str,
    metrics: Mapping[str, Any] | None = None,
    live_default: str | None = None,
    recency: float = 1.0,
) -> None:
    """Store ``rankers`` (kind -> fitted ranker) as the ``ranking`` component, ``default`` the kind served when a
    request names none, ``live_default`` (None: ``default``) the kind served instead to a user with live events,
    and ``recency`` the decay their history is weighted by (:func:`load_live`)."""
    live_default = default if live_default is None else live_default
    for kind in (default, live_default):
        if kind not in rankers:
            raise InvalidInput(f"the default ranker {kind!r} is not among the fitted ones ({', '.join(rankers)})")
    check_recency(recency)
    described = {}
    for kind, ranker in rankers.items():
        if ranker.kind != kind:
            raise InvalidInput(f"ranker stored as {kind!r} is a {ranker.kind!r}")
        for name, array in ranker.to_arrays().items():
            writer.save_array(COMPONENT, f"{kind}{SEPARATOR}{name}", array)
        described[kind] = ranker.to_meta()
    writer.set_component_meta(
        COMPONENT,
        hyperparameters=jsonable(
            {
                "default": default,
                "rankers": described,
                "live": {"default": live_default, "recency": float(recency)},
            }
        ),
        metrics=jsonable(dict(metrics or {})),
    )


def load_rankers(version: Version) -> tuple[dict[str, Ranker], str]:
    """Every ranker of a verified version's ``ranking`` component (arrays read-only) and the
    default kind.

    Raises
    ------
    ArtifactError : an unknown kind, a missing array, or a default that is not among the rankers.
    """
    meta = version.component_meta(COMPONENT)
    hyper = meta.get("hyperparameters", {})
    described: dict[str, Any] = hyper.get("rankers", {})
    default = hyper.get("default")
    if default not in described:
        raise ArtifactError(f"ranking component of version {version.name} names no valid default ranker")
    files: dict[str, list[str]] = {}
    for name in meta.get("files", {}):
        kind, sep, array = name.partition(SEPARATOR)
        if sep:
            files.setdefault(kind, []).append(array)
    rankers: dict[str, Ranker] = {}
    for kind, info in described.items():
        rankers[kind] = load_stored(
            REGISTRY,
            kind,
            partial(_arrays, version, kind, files.get(kind, [])),
            info,
            found=f"{COMPONENT} component of version {version.name} holds a {kind!r} ranker",
            subject=f"{kind} ranker of version {version.name}",
        )
    return rankers, str(default)


def check_recency(decay: Any) -> float:
    """``decay`` as a float in (0, 1]; InvalidInput otherwise."""
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0.0 < float(decay) <= 1.0:
        raise InvalidInput(f"the recency decay must be a number in (0, 1], got {decay!r}")
    return float(decay)


def load_live(version: Version) -> tuple[str, float]:
    """What a version serves a user with live events (``chorus.training.ranking.recency``): the ranker a request
    that names none gets, and the decay ``d`` their history is weighted by (an item of age ``a`` counts
    ``d ** a``). A version that records neither: its default ranker, and 1 (no weighting).

    Raises
    ------
    ArtifactError : a recorded ranker the version does not hold, or a decay outside (0, 1].
    """
    hyper = version.component_meta(COMPONENT).get("hyperparameters", {})
    live = hyper.get("live", {})
    kind = live.get("default", hyper.get("default"))
    if kind not in hyper.get("rankers", {}):
        raise ArtifactError(f"ranking component of version {version.name}: live default {kind!r} is no ranker of it")
    try:
        return str(kind), check_recency(live.get("recency", 1.0))
    except InvalidInput as exc:
        raise ArtifactError(f"ranking component of version {version.name}: {exc.detail}") from exc


def _arrays(version: Version, kind: str, names: list[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the ``kind`` ranker, read from ``version``."""
    return {name: version.array(COMPONENT, f"{kind}{SEPARATOR}{name}") for name in names}
