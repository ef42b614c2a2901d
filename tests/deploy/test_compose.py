"""Static checks of docker-compose.yml and deploy/Dockerfile; tests/containers runs them for real."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any, cast

import pytest
import yaml

from tests.conftest import REPO

LONG_RUNNING = ("redis", "similarity", "rating", "gateway", "postgres")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((REPO / "docker-compose.yml").read_text()))


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
        "postgres": "service_healthy",
        "similarity": "service_healthy",
        "rating": "service_healthy",
    }
    for name in ("trainer", "similarity", "rating"):
        assert s[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_every_process_shares_the_event_store_in_a_named_volume(compose):
    s = compose["services"]
    assert "events" in compose["volumes"] and "events:/var/lib/postgresql/data" in s["postgres"]["volumes"]
    assert s["postgres"]["image"] == "${CHORUS_POSTGRES_IMAGE:-postgres:15-alpine}"
    urls = {
        name: s[name]["environment"]["CHORUS_EVENTS_URL"] for name in ("trainer", "similarity", "rating", "gateway")
    }
    assert len(set(urls.values())) == 1
    assert next(iter(urls.values())).startswith("postgresql://chorus:") and "@postgres:5432/chorus" in urls["gateway"]
    assert "CHORUS_API_KEYS" in s["gateway"]["environment"]


def test_redis_evicts_lru_under_a_memory_cap(compose):
    cmd = " ".join(compose["services"]["redis"]["command"])
    assert "--maxmemory" in cmd and "allkeys-lru" in cmd


def test_dockerfile_shape():
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS deps$", text, re.M)
    assert re.search(r"^FROM deps AS deps-train$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS runtime$", text, re.M)
    assert re.search(r"^FROM runtime AS base$", text, re.M) and re.search(r"^FROM runtime AS trainer$", text, re.M)
    assert "PYTHONUNBUFFERED=1" in text and "OPENBLAS_NUM_THREADS=1" in text and "OMP_NUM_THREADS=1" in text
    assert re.search(r"^USER chorus$", text, re.M)
    # dependencies are installed (in their own stages) before the code is copied; the training-only ones
    # (the train extra) only into the trainer's
    assert (
        text.index("-r /build/requirements.txt")
        < text.index("-r /build/requirements-train.txt")
        < text.index("COPY --from=deps /opt/chorus")
        < text.index("COPY chorus /src/chorus")
    )
    services_stage = text.split("FROM runtime AS base\n", 1)[1].split("\nFROM ", 1)[0]
    trainer_stage = text.split("FROM runtime AS trainer\n", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY --from=deps /opt/chorus" in services_stage and "deps-train" not in services_stage
    assert "COPY --from=deps-train /opt/chorus" in trainer_stage
    for target, port in (("similarity", 8001), ("rating", 8002), ("gateway", 8000)):
        section = text.split(f"AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "HEALTHCHECK" in section and "curl" not in section, target
        assert f'CMD ["uvicorn", "chorus.services.{target}.app:create_app", "--factory"' in section, target
        assert f'"--port", "{port}"]' in section, target
        assert '"--http", "chorus.shared.http.protocol:LimitedH11Protocol"' in section, target
    for name in ("similarity", "rating", "gateway", "trainer"):
        assert f"AS {name}\n" in text


def test_compose_passes_the_base_images_and_names_the_service_images(compose):
    s = compose["services"]
    assert s["redis"]["image"] == "${CHORUS_REDIS_IMAGE:-redis:7-alpine}"
    for name in ("trainer", "similarity", "rating", "gateway"):
        assert s[name]["build"]["args"]["BASE_IMAGE"] == "${CHORUS_BASE_IMAGE:-python:3.11-slim}", name
        assert s[name]["build"]["target"] == name
        # named, so that deploy/images.sh builds them once for every compose project
        assert s[name]["image"] == f"chorus-{name}:${{CHORUS_IMAGE_TAG:-latest}}", name


def test_build_context_leaves_out_the_checkout_s_bulk():
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip()[:1] not in ("", "#")]
    assert lines[0] == "*"  # everything is left out but what is named
    assert {"!pyproject.toml", "!README.md", "!chorus", "!deploy/offline"} <= set(lines)


SPARK = ("spark-master", "spark-worker", "spark-trainer")


def test_spark_profile_is_optional_and_trains_on_its_own_master(compose):
    s = compose["services"]
    for name in SPARK:
        assert s[name]["profiles"] == ["spark"], name
        assert s[name]["image"] == "chorus-spark:${CHORUS_IMAGE_TAG:-latest}", name
    assert all("profiles" not in svc for name, svc in s.items() if name not in SPARK)
    assert s["spark-master"]["build"]["target"] == "spark"
    master = s["spark-master"]["command"]
    url = f"spark://{master[master.index('--host') + 1]}:{master[master.index('--port') + 1]}"
    assert s["spark-worker"]["command"][-1] == url
    options = s["spark-trainer"]["environment"]["CHORUS_TRAIN_OPTIONS"].split()
    assert options[options.index("--engine") + 1] == "spark"
    assert options[options.index("--spark-master") + 1] == url
    staging = options[options.index("--spark-staging") + 1]
    for name in ("spark-worker", "spark-trainer"):  # the rating data is staged where the executors read it
        assert f"staging:{staging}" in s[name]["volumes"], name
    assert "artifacts:/artifacts" in s["spark-trainer"]["volumes"] and "staging" in compose["volumes"]
    assert s["spark-trainer"]["depends_on"]["spark-worker"]["condition"] == "service_healthy"
    assert s["spark-worker"]["depends_on"]["spark-master"]["condition"] == "service_healthy"
    for name in ("spark-master", "spark-worker"):
        assert s[name]["healthcheck"]["test"], name


def test_spark_image_has_java_and_the_trainer_script():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    stage = dockerfile[dockerfile.index("AS spark\n") :]
    assert "java -version" in stage and "requirements-spark.txt" in dockerfile
    assert "COPY deploy/trainer.sh" in stage and "PYSPARK_PYTHON=/opt/chorus/bin/python" in stage
    trainer = (REPO / "deploy" / "trainer.sh").read_text()
    assert "$options" in trainer and "CHORUS_TRAIN_OPTIONS" in trainer
