"""A real similarity service process survives what can happen to its artifact files on disk while it serves: files
truncated or overwritten in place, and a CURRENT that names a path outside the artifact root."""

from __future__ import annotations

import time

import httpx
import pytest

from chorus.shared.artifacts import CURRENT, ArtifactStore
from tests.conftest import train_tiny
from tests.gateway.processes import uvicorn_process

pytestmark = pytest.mark.timeout(180)


def test_truncated_files_and_a_current_naming_a_path_do_not_reach_a_serving_process(tmp_path):
    root = train_tiny(tmp_path / "artifacts", 3000, 11, ["similarity"])
    version = ArtifactStore(root).current()
    assert version is not None
    env = {"CHORUS_ARTIFACTS": str(root), "CHORUS_RELOAD_INTERVAL": "0.1", "CHORUS_STATUS_TOKEN": "t"}
    with (
        uvicorn_process("chorus.services.similarity.app:create_app", env) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as c,
    ):
        item = c.get("/v1/items", params={"q": "guitar", "limit": 1}).json()["data"][0]["item_id"]
        asked: list[tuple[str, dict[str, str | int]]] = [
            (f"/v1/items/{item}/similar", {"measure": "cosine", "k": 20}),
            (f"/v1/items/{item}/similar", {"measure": "pearson", "k": 5, "min_common": 2}),
        ]
        before = [c.get(path, params=params).json() for path, params in asked]
        for name in ("scores_cosine", "neighbors_cosine", "item_users", "item_ratings"):
            with open(root / version / "similarity" / f"{name}.npy", "r+b") as f:
                f.truncate(0)  # in place: a memory map of it would now raise SIGBUS on every page
        (root / version / "data" / "titles_utf8.npy").write_bytes(b"\0" * 64)
        assert [c.get(path, params=params).json() for path, params in asked] == before

        (root / CURRENT).write_text("../../elsewhere\n")
        deadline = time.monotonic() + 10
        while "CURRENT refused" not in (c.get("/readyz").json()["detail"] or ""):
            assert time.monotonic() < deadline, "the poll did not look at CURRENT"
            time.sleep(0.1)
        ready = c.get("/readyz").json()
        assert ready["version"] == version and "a path, not a directory name" in ready["detail"]
        assert [c.get(path, params=params).json() for path, params in asked] == before
        assert c.get("/healthz").json() == {"status": "ok"}
