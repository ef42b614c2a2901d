"""What a client sees while parts of the system fail: the failed service named, never an address, a path, a file
or a setting (those are for the log and the token ``/readyz``); and a version refused at start because a file was
damaged serves again by itself once the file is repaired."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from chorus.launcher import Topology
from chorus.shared.artifacts import read_current
from tests.conftest import busiest
from tests.e2e.conftest import get
from tests.gateway.processes import wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TOKEN = "e2e-status-token"


def leaks(text: str, topo: Topology) -> list[str]:
    """The internal details in ``text``: addresses, the artifact root, artifact files, settings."""
    markers = ["127.0.0.1", "localhost", "http://", str(topo.artifacts), str(Path(topo.artifacts).resolve())]
    markers += [f":{topo.similarity_port}", f":{topo.rating_port}", ".npy", "manifest", "truncated", "CURRENT"]
    markers += ["CHORUS_", "python_info"]
    return [marker for marker in markers if marker in text]


def test_public_bodies_name_the_failed_service_but_no_address_path_or_file(artifacts, dataset, tmp_path):
    item, user = busiest(dataset.item_ids, dataset.item), busiest(dataset.user_ids, dataset.user)
    version = read_current(artifacts)
    assert version is not None
    damaged = sorted((artifacts / version / "similarity").glob("*.npy"))[0]
    intact = damaged.read_bytes()
    damaged.write_bytes(intact[:1000])  # truncated: the similarity service refuses the version at its start

    topo = Topology.on_free_ports(
        artifacts, reload_interval=0.2, log_dir=tmp_path / "logs", extra_env={"CHORUS_STATUS_TOKEN": TOKEN}
    )
    with topo:
        topo.start_all()
        topo.wait_ready("rating")
        wait_http(topo.url() + "/healthz")
        wait_http(topo.url("similarity") + "/healthz")
        public: list[httpx.Response] = []

        r = get(topo, f"/v1/items/{item}/similar", k=5)
        assert r.status_code == 503 and "similarity service" in r.json()["detail"], r.text
        public.append(r)
        r = httpx.get(f"{topo.url('similarity')}/v1/items/{item}/similar", timeout=10)
        assert r.status_code == 503 and r.json()["type"] == "not_ready"
        public.append(r)
        for url in (topo.url(), topo.url("similarity")):
            public += [httpx.get(url + "/readyz", timeout=10), httpx.get(url + "/metrics", timeout=10)]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        details = httpx.get(topo.url() + "/readyz", headers=auth, timeout=10).json()["services"]
        assert "truncated" in details["similarity"]["detail"]  # the operator sees why
        assert details["rating"]["status"] == "ready" and details["rating"]["detail"] is None  # JSON null

        topo.stop("rating", kill=True)
        r = get(topo, "/v1/predict", user_id=user, item_id=item)
        assert r.status_code == 503 and "rating service" in r.json()["detail"], r.text
        public.append(r)

        for response in public:
            assert not leaks(response.text, topo), (response.url, response.text[:500])

        damaged.write_bytes(intact)  # repaired in place: the next reload check tries the version again
        deadline = time.monotonic() + 10
        while get(topo, f"/v1/items/{item}/similar", k=5).status_code != 200:
            assert time.monotonic() < deadline, "the repaired version did not serve again within 10 s"
            time.sleep(0.2)
