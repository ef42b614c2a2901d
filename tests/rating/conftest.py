"""Fixtures of the rating tests."""

from __future__ import annotations

import pytest

from tests.conftest import add_ranking, train_tiny


@pytest.fixture(scope="session")
def ranked_root(tmp_path_factory):
    """A tiny artifact root (4,000 demo reviews) whose current version holds the rating model and every ranker; a
    test that changes it works on a copy."""
    root = train_tiny(tmp_path_factory.mktemp("ranking-artifacts"), 4000, 5, ["rating"])
    add_ranking(root)
    return root
