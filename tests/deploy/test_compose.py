"""Static checks of docker-compose.yml and deploy/Dockerfile (there is no Docker engine on this machine)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

LONG_RUNNING = ("redis", "similarity", "rating", "gateway")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_docker_compose_accepts_the_file():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    proc = subprocess.run(
        [exe, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_only_the_gateway_publishes_a_port(compose):
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"gateway"}


def test_every_long_running_service_has_a_healthcheck(compose):
    for name in LONG_RUNNING:
        assert compose["services"][name].get("healthcheck", {}).get("test"), name


def test_artifact_volume_is_shared_and_read_only_in_the_services(compose):
    assert "artifacts" in compose["volumes"]
    assert "artifacts:/artifacts" in compose["services"]["trainer"]["volumes"]
    for name in ("similarity", "rating"):
        assert "artifacts:/artifacts:ro" in compose["services"][name]["volumes"], name
    assert "volumes" not in compose["services"]["gateway"]


def test_startup_order(compose):
    s = compose["services"]
    for name in ("similarity", "rating"):
        assert s[name]["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert {k: v["condition"] for k, v in s["gateway"]["depends_on"].items()} == {
        "redis": "service_healthy",
        "similarity": "service_healthy",
        "rating": "service_healthy",
    }


def test_redis_evicts_lru_under_a_memory_cap(compose):
    cmd = " ".join(compose["services"]["redis"]["command"])
    assert "--maxmemory" in cmd and "allkeys-lru" in cmd


def test_dockerfile_shape():
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS base", text, re.M)
    assert "PYTHONUNBUFFERED=1" in text and "OPENBLAS_NUM_THREADS=1" in text and "OMP_NUM_THREADS=1" in text
    assert re.search(r"^USER chorus$", text, re.M)
    # dependencies are installed before the code is copied
    assert text.index("pip install -r /tmp/requirements.txt") < text.index("COPY shared")
    for target, port in (("similarity", 8001), ("rating", 8002), ("gateway", 8000)):
        section = text.split(f"AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "HEALTHCHECK" in section and "curl" not in section, target
        assert f'CMD ["uvicorn", "chorus.services.{target}.app:create_app", "--factory"' in section, target
        assert f'"--port", "{port}"]' in section, target
    for name in ("similarity", "rating", "gateway", "trainer"):
        assert f"AS {name}\n" in text
