"""`chorus train --workers`: the version's arrays are the same bytes for one worker and for two, every component
included (the ranking grid points and refits in worker processes, the text and similarity components in
processes of their own beside the others), and an error in a component trained beside the others reaches the
caller as itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import Ratings, load_ratings
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.ranking import fit as ranking_fit
from chorus.training.train import COMPONENTS, Beside, train

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return generate_reviews(tmp_path_factory.mktemp("workers") / "reviews.tsv", 2500, seed=11, progress=False)


def digests(root: Path, name: str) -> dict[str, dict[str, str]]:
    """component -> array name -> sha256, from the version's manifest (which the store verifies on open)."""
    manifest = ArtifactStore(root).open(name, verify=True).manifest
    return {c: {a: f["sha256"] for a, f in meta["files"].items()} for c, meta in manifest["components"].items()}


@pytest.fixture
def short_grids(monkeypatch):
    """Three points of every ranker's grid (enough for the shared item-kNN task and a choice), for time."""
    for kind, grid in list(ranking_fit.GRIDS.items()):
        monkeypatch.setitem(ranking_fit.GRIDS, kind, grid[:3])


def test_one_and_two_workers_write_the_same_arrays(reviews, tmp_path, short_grids):
    names = {}
    logs: dict[int, list[str]] = {1: [], 2: []}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        names[workers] = (
            root,
            train(reviews, root, list(COMPONENTS), progress=False, log=logs[workers].append, workers=workers),
        )
    one, two = (digests(*names[w]) for w in (1, 2))
    assert set(one) == {"data", "report", *COMPONENTS}  # the report too: the same bytes for any worker count
    assert one == two
    for workers in (1, 2):  # every component said it was trained, in either mode
        assert all(any(line.startswith(f"trained {c} ") for line in logs[workers]) for c in COMPONENTS)


def failing_trainer(ratings: Ratings, writer: VersionWriter, *, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    raise InvalidInput(f"no good: {ratings.n} reviews")


def test_an_error_beside_the_other_components_is_raised_as_itself(reviews, tmp_path):
    ratings = load_ratings(reviews, progress=False)
    with VersionWriter(tmp_path) as writer:
        child = Beside("text", failing_trainer, ratings, writer, 0)
        with pytest.raises(InvalidInput, match=f"no good: {ratings.n} reviews"):
            child.join()
