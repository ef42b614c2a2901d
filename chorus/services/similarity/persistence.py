"""The ``similarity`` component of an artifact version: writing it (offline) and loading it as a ready
:class:`~chorus.services.similarity.index.SimilarityIndex` (in the service). The arrays it holds are described in
:mod:`chorus.services.similarity.layout`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.layout import CORE_ARRAYS, FORMAT, READABLE_FORMATS, table_array_names
from chorus.services.similarity.measures import measure_specs
from chorus.shared.artifacts import Version, VersionWriter
from chorus.shared.contract.errors import ArtifactError
from chorus.shared.contract.names import Measure

COMPONENT = "similarity"


def component_meta(
    config: SimilarityConfig, K: int, measures: Iterable[str], stats: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The ``hyperparameters`` (``config``, the table's ``K`` and ``measures``, :data:`FORMAT`) and ``metrics``
    (``stats``) recorded for the component."""
    hyper = dataclasses.asdict(config)
    hyper.update(table_k=int(K), measures=[spec.measure.value for spec in measure_specs(measures)], format=FORMAT)
    for name, value in hyper.items():
        if isinstance(value, Measure):
            hyper[name] = value.value
    metrics = {k: (float(v) if isinstance(v, float) else v) for k, v in stats.items()}
    return {"hyperparameters": hyper, "metrics": metrics}


def write_component(
    writer: VersionWriter, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Mapping[str, Any]]
) -> None:
    """Store ``arrays`` as the ``similarity`` component of an artifact version being written.

    ``meta``: ``{"hyperparameters": ..., "metrics": ...}`` (see :func:`component_meta`).
    """
    missing = [n for n in CORE_ARRAYS if n not in arrays]
    if missing:
        raise ArtifactError(f"refusing to write a similarity component without {', '.join(missing)}")
    for name, array in arrays.items():
        writer.save_array(COMPONENT, name, np.asarray(array))
    writer.set_component_meta(
        COMPONENT, hyperparameters=dict(meta.get("hyperparameters", {})), metrics=dict(meta.get("metrics", {}))
    )


def load_component(version: Version, config: SimilarityConfig | None = None) -> SimilarityIndex:
    """The ``similarity`` component of a verified version, as a ready index.

    Arrays are used as loaded (read-only); the query settings come from the stored hyperparameters unless
    ``config`` is given.

    Raises
    ------
    ArtifactError : no such component, another format, or arrays that do not fit together.
    """
    meta = version.component_meta(COMPONENT)
    hyper = dict(meta.get("hyperparameters", {}))
    if hyper.get("format") not in READABLE_FORMATS:
        raise ArtifactError(
            f"similarity component of format {hyper.get('format')!r}; this Chorus reads "
            f"{', '.join(map(str, READABLE_FORMATS))}"
        )
    if config is None:
        fields = {f.name for f in dataclasses.fields(SimilarityConfig)}
        config = SimilarityConfig(**{k: v for k, v in hyper.items() if k in fields})
    measures = [m for m in hyper.get("measures", []) if m in {known.value for known in Measure}]
    if hyper["format"] < FORMAT:  # its Pearson table predates significance weighting: Pearson is computed online
        measures = [m for m in measures if m != Measure.pearson]
    names = list(CORE_ARRAYS) + (table_array_names(measures) if measures else [])
    return SimilarityIndex.from_saved({name: version.array(COMPONENT, name) for name in names}, config)
