"""The API page of the documentation renders docs/openapi.json: it must be what the gateway serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chorus.services.gateway.app import create_app
from chorus.services.gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def test_the_committed_document_is_the_gateways():
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert committed == create_app(Settings()).openapi(), "docs/openapi.json is stale: run python scripts/openapi.py"


def test_the_script_says_when_the_file_is_stale(tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/openapi.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "matches the gateway's API" in done.stdout
    # a copy of the repository's script and document, the document changed: --check fails and says what to run
    (tmp_path / "scripts").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "scripts" / "openapi.py").write_text((ROOT / "scripts" / "openapi.py").read_text())
    (tmp_path / "docs" / "openapi.json").write_text('{"openapi": "3.1.0"}\n')
    (tmp_path / "chorus").symlink_to(ROOT / "chorus")
    done = subprocess.run(
        [sys.executable, "scripts/openapi.py", "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "docs/openapi.json differs from the gateway's API" in done.stdout
