"""The README's examples work on the demo data that `chorus up` generates by default."""

from __future__ import annotations

import re

from chorus.cli import DEMO_REVIEWS
from chorus.shared.data import load_ratings
from chorus.shared.data.synthetic import generate_reviews
from tests.conftest import REPO


def test_curl_examples_name_ids_of_the_default_demo(tmp_path):
    readme = (REPO / "README.md").read_text()
    items = set(re.findall(r"/v1/items/([A-Z0-9]+)", readme))
    users = set(re.findall(r"/v1/users/(\d+)/", readme)) | set(re.findall(r"user_id=(\d+)", readme))
    assert items and users
    demo = load_ratings(
        generate_reviews(tmp_path / "demo.tsv.gz", DEMO_REVIEWS, seed=0, progress=False), progress=False
    )
    assert items <= set(demo.item_ids.tolist())
    assert users <= set(demo.user_ids.tolist())
