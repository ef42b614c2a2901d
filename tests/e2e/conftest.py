"""End-to-end fixtures: a trained artifact root and the real processes, started through `chorus up`'s launcher."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from chorus.launcher import Topology, free_port
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.train import parse_components, train
from tests.conftest import add_ranking
from tests.redis_urls import E2E_REDIS_URL


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e-data") / "demo.tsv.gz"
    generate_reviews(path, 20_000, seed=11, progress=False)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, demo_data) -> Path:
    """An artifact root with one version, copied per topology so tests can retrain without interfering."""
    root = tmp_path_factory.mktemp("e2e-artifacts-template")
    train(demo_data, root, parse_components(None), seed=0, progress=False, log=lambda _m: None)
    if "ranking" not in ArtifactStore(root).open(components=[], verify=False).components:
        add_ranking(root)  # until `chorus train` builds the rankers itself, serve every ranker that has a trainer
    return root


@pytest.fixture
def artifacts(trained, tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    shutil.copytree(trained, root)
    return root


@pytest.fixture(scope="session")
def dataset(trained):
    return load_data_component(ArtifactStore(trained).open(components=["data"]))


def start_topology(artifacts: Path, redis_url: str | None, log_dir: Path) -> Topology:
    topo = Topology.on_free_ports(artifacts, redis_url=redis_url, reload_interval=0.5, log_dir=log_dir)
    try:
        topo.start_all()
        topo.wait_ready("gateway", timeout=90)
    except BaseException:
        topo.stop_all()
        raise
    return topo


@pytest.fixture
def system(artifacts, tmp_path):
    """The three services on loopback with the machine's Redis (the e2e database, tests/redis_urls.py)."""
    url = E2E_REDIS_URL  # a database of its own (tests/redis_urls.py); only this one is flushed
    redis.Redis.from_url(url).flushdb()
    topo = start_topology(artifacts, url, tmp_path / "logs")
    try:
        yield topo
    finally:
        topo.stop_all()
        redis.Redis.from_url(url).flushdb()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server this test starts (and stops) itself, never the machine's shared one."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def get(topo: Topology, path: str, **params) -> httpx.Response:
    return httpx.get(topo.url() + path, params=params, timeout=15)
