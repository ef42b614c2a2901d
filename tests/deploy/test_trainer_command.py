"""The trainer image's command (deploy/trainer.sh), run with stand-ins for ``chorus`` and ``python`` that record how
they were called: one-shot by default, a retraining loop with CHORUS_RETRAIN_EVERY."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "deploy" / "trainer.sh"


@pytest.fixture
def run(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name in ("chorus", "python"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        stub.chmod(0o755)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()

    def run(**env: str) -> tuple[str, list[str]]:
        calls.unlink(missing_ok=True)
        base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CHORUS_ARTIFACTS": str(artifacts), "HOME": str(tmp_path)}
        done = subprocess.run(["sh", str(SCRIPT)], env={**base, **env}, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        said = calls.read_text().splitlines() if calls.exists() else []
        return done.stdout, [line.replace(str(artifacts), "ART") for line in said]

    return run, artifacts


def test_one_shot_trains_demo_data_or_the_given_file_once(run):
    run, artifacts = run
    assert run()[1] == ["chorus demo --data /tmp/demo.tsv.gz --artifacts ART"]
    assert run(CHORUS_TRAIN_DATA="/input/r.tsv")[1] == ["chorus train --data /input/r.tsv --artifacts ART"]
    (artifacts / "CURRENT").write_text("v1\n")
    out, said = run(CHORUS_TRAIN_DATA="/input/r.tsv")
    assert said == [] and out == "artifacts present: v1\n"
    assert run(CHORUS_TRAIN_DATA="/input/r.tsv", CHORUS_RETRAIN="1")[1] == [
        "chorus train --data /input/r.tsv --artifacts ART"
    ]


def test_loop_mode_runs_train_every_whether_or_not_there_is_a_version(run):
    run, artifacts = run
    (artifacts / "CURRENT").write_text("v1\n")
    assert run(CHORUS_RETRAIN_EVERY="1h", CHORUS_TRAIN_DATA="/input/r.tsv")[1] == [
        "chorus train --data /input/r.tsv --artifacts ART --every 1h"
    ]
    said = run(CHORUS_RETRAIN_EVERY="30m")[1]
    assert said[0].startswith("python -c ") and said[0].endswith(" /tmp/demo.tsv.gz")  # the demo data, made once
    assert said[1:] == ["chorus train --data /tmp/demo.tsv.gz --artifacts ART --every 30m"]


def test_the_image_runs_the_script_and_the_build_context_holds_it():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    trainer = dockerfile.split("FROM runtime AS trainer\n", 1)[1]
    assert "COPY deploy/trainer.sh /opt/chorus-trainer.sh" in trainer
    assert trainer.rstrip().endswith('CMD ["sh", "/opt/chorus-trainer.sh"]')
    assert "!deploy/trainer.sh" in (REPO / ".dockerignore").read_text().splitlines()
    assert os.access(SCRIPT, os.R_OK) and Path(SCRIPT).read_text().startswith("#!/bin/sh\n")
