"""Shared fixtures: where the real datasets are, and a tiny artifact root."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

#: fixtures shared by many folders: the event stores on both backends
pytest_plugins = ["tests.event_stores"]

REPO = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The real datasets: ``$CHORUS_DATA_DIR``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("CHORUS_DATA_DIR", REPO.parent / "shared" / "data"))


def real_file(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset not found: {path} (set CHORUS_DATA_DIR)")
    return path


@pytest.fixture
def ml100k() -> Path:
    return real_file("movielens-100k", "u.data")


@pytest.fixture
def amazon_5core() -> Path:
    return real_file("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz")


@pytest.fixture
def amazon_tsv_sample() -> Path:
    return real_file("amazon-customer-reviews-tsv-sample", "amazon_reviews_us_sample_761rows.tsv")


def train_tiny(root: Path, reviews: int, seed: int, components: list[str]) -> Path:
    """Generate ``reviews`` demo reviews beside ``root`` and train ``components`` into it (quietly)."""
    from chorus.shared.data.synthetic import generate_reviews
    from chorus.training.train import train

    data = generate_reviews(root.parent / f"{root.name}.tsv", reviews, seed=seed, progress=False)
    train(data, root, components, progress=False, log=lambda _m: None)
    return root


def busiest(ids: np.ndarray, index: np.ndarray) -> str:
    """The raw id with the most reviews: ``ids`` a vocabulary, ``index`` the per-review indices into it."""
    return str(ids[int(np.argmax(np.bincount(index, minlength=len(ids))))])


def add_ranking(
    root: Path,
    default: str | None = None,
    kinds: list[str] | None = None,
    recency: float = 1.0,
    live_default: str | None = None,
) -> str:
    """Publish a new current version of ``root``: its current version's components plus a ``ranking`` component
    with ``kinds`` (default: every ranker kind that has a trainer), fitted on all its reviews with the first
    point of each grid; ``default`` (default: the first kind other than ``popular``, else ``popular``) is served
    when a request names none; ``live_default`` and ``recency`` what a user with live events gets. Returns the new
    version's name."""
    import scipy.sparse as sp

    from chorus.services.rating.rankers import REGISTRY
    from chorus.services.rating.rankers.persistence import write_rankers
    from chorus.shared.artifacts import ArtifactStore, VersionWriter
    from chorus.shared.data.component import load_data_component
    from chorus.training.ranking.fit import FITTERS, GRIDS

    previous = ArtifactStore(root).open()
    data = load_data_component(previous)
    reviews = sp.csr_array((data.rating.astype(np.float64), (data.user, data.item)), shape=(data.n_users, data.n_items))
    kinds = kinds or [kind for kind in REGISTRY if kind in FITTERS]
    rankers = {kind: FITTERS[kind](reviews, dict(GRIDS[kind][0])) for kind in kinds}
    default = default or next((kind for kind in kinds if kind != "popular"), "popular")
    with VersionWriter(root) as writer:
        dataset = previous.manifest.get("dataset", {})
        writer.set_dataset(dataset.get("fingerprint", {}), dataset.get("stats", {}))
        for component in previous.components:
            if component != "ranking":
                writer.adopt_component(previous, component)
        write_rankers(writer, rankers, default, live_default=live_default, recency=recency)
        return writer.commit()
