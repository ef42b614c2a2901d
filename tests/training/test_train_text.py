"""`chorus train` loads review text only where a component reads it: the ``text`` component at any size, the
rating component's text-aware model only within ``TEXT_AWARE_MAX_ROWS`` reviews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data import Ratings, load_ratings
from chorus.shared.data.synthetic import generate_reviews
from chorus.shared.events.store import EventStore
from chorus.training import train as train_module
from chorus.training.rating import train as rating_train
from chorus.training.train import text_loading, train

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return generate_reviews(tmp_path_factory.mktemp("text-load") / "reviews.tsv", 1200, seed=4, progress=False)


def test_text_loading_follows_the_components():
    limit = train_module.TEXT_AWARE_MAX_ROWS
    assert text_loading(["similarity", "ranking"]) == {}
    assert text_loading(["similarity", "rating"]) == {"with_text": True, "text_max_rows": limit}
    assert text_loading(["rating", "text"]) == {"with_text": True}  # the review scorer reads it at any size


def spy_on_rating(monkeypatch) -> list[Ratings]:
    """The ratings each run of the rating component is given."""
    seen: list[Ratings] = []
    real = rating_train.train_component

    def spy(ratings: Ratings, *args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(ratings)
        return real(ratings, *args, **kwargs)

    monkeypatch.setattr(rating_train, "train_component", spy)  # what chorus train looks the trainer up as
    return seen


def text_limit(monkeypatch, limit: int) -> None:
    monkeypatch.setattr(train_module, "TEXT_AWARE_MAX_ROWS", limit)
    monkeypatch.setattr(rating_train, "TEXT_AWARE_MAX_ROWS", limit)


@pytest.mark.parametrize(("limit", "fitted"), [(5000, True), (1000, False)])
def test_rating_alone_reads_the_text_only_within_the_text_aware_limit(reviews, tmp_path, monkeypatch, limit, fitted):
    text_limit(monkeypatch, limit)
    seen = spy_on_rating(monkeypatch)
    log: list[str] = []
    version = train(reviews, tmp_path / "artifacts", ["rating"], progress=False, log=log.append, workers=1)
    (ratings,) = seen
    assert ratings.n > 1000 and (ratings.text is not None) == fitted
    hyper = ArtifactStore(tmp_path / "artifacts").open(version).component_meta("rating")["hyperparameters"]
    assert ("text_aware" in hyper) == fitted
    note = [m for m in log if "text-aware" in m]
    assert fitted or note == ["The text-aware rating model was not fitted: skipped: more than 1,000 reviews."]


def test_forgotten_users_that_bring_the_file_within_the_limit_get_its_text(reviews, store_url, tmp_path, monkeypatch):
    n = load_ratings(reviews, progress=False).n
    text_limit(monkeypatch, n - 1)  # the file is over it (its text is dropped while it loads), the table within it
    store = EventStore(store_url)
    try:
        store.forget(load_ratings(reviews, progress=False).user_ids[0], timestamp=1.7e9)
    finally:
        store.close()
    seen = spy_on_rating(monkeypatch)
    version = train(
        reviews,
        tmp_path / "artifacts",
        ["rating"],
        progress=False,
        log=lambda _m: None,
        workers=1,
        events_url=store_url,
    )
    (ratings,) = seen
    assert ratings.n < n and ratings.text is not None and len(ratings.text) == ratings.n
    hyper = ArtifactStore(tmp_path / "artifacts").open(version).component_meta("rating")["hyperparameters"]
    assert "text_aware" in hyper
