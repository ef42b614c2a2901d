"""What the Spark engine's tests share: the skip marks (pyspark or Java missing), the comparison of a component
with the numpy engine's, and the check that a version is served by both model services."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component

MISSING = [m for m in ("pyspark",) if importlib.util.find_spec(m) is None]

SPARK_MARKS = [
    pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: pip install -e '.[spark]'"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH: apt-get install openjdk-17-jre-headless"),
]
"""``pytestmark`` entries of every Spark test module."""


def assert_same_component(got: ArtifactStore, expected: ArtifactStore, component: str) -> None:
    """``component`` of ``got``'s current version has the arrays of ``expected``'s, bit for bit."""
    a, b = got.open(), expected.open()
    names = b.component_meta(component)["files"]
    assert names.keys() == a.component_meta(component)["files"].keys()
    for name in names:
        np.testing.assert_array_equal(a.array(component, name), b.array(component, name), err_msg=name)


def assert_served(store: ArtifactStore) -> None:
    """The similarity and rating services load ``store``'s current version and answer from it."""
    from chorus.services.rating.app import create_app as rating_app
    from chorus.services.rating.settings import Settings as RatingSettings
    from chorus.services.similarity.app import create_app as similarity_app
    from chorus.services.similarity.settings import Settings as SimilaritySettings

    ratings = load_data_component(store.open(components=["data"]))
    item, user = str(ratings.item_ids[ratings.item[0]]), str(ratings.user_ids[ratings.user[0]])
    with TestClient(similarity_app(SimilaritySettings(artifacts=store.root, reload_interval=3600))) as c:
        assert c.get("/readyz").status_code == 200
        body = c.get(f"/v1/items/{item}/similar", params={"k": 5}).json()
        assert len(body["data"]) == 5
    with TestClient(rating_app(RatingSettings(artifacts=store.root, reload_interval=3600))) as c:
        assert c.get("/readyz").status_code == 200
        answer = c.get("/v1/predict", params={"user_id": user, "item_id": item})
        assert answer.status_code == 200 and 1.0 <= answer.json()["prediction"] <= 5.0
