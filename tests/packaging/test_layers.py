"""What runs in each container is what its folder holds: every module under ``chorus/services/<name>/`` is loaded by
that service's app, and the gateway's app loads neither numpy, scipy, the data layer nor the artifact store.

Each check runs in a fresh interpreter, so that what other tests imported does not count. The import directions
themselves (services independent, serving never imports training, ...) are ``[tool.importlinter]`` contracts that
``scripts/lint.sh`` checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SERVICES = ("gateway", "similarity", "rating")

#: Modules of a service folder that its app may leave unloaded, with the reason (the README names them too).
NOT_LOADED_BY_THE_APP: dict[str, str] = {}


def loaded_after(code: str) -> set[str]:
    """The module names loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def modules_of(service: str) -> set[str]:
    folder = REPO / "chorus" / "services" / service
    names = set()
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        names.add(".".join(("chorus", "services", service, *parts)).removesuffix(".__init__"))
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_every_module_of_a_service_is_loaded_by_its_app(service):
    loaded = loaded_after(f"from chorus.services.{service}.app import create_app\ncreate_app()")
    unloaded = modules_of(service) - loaded - set(NOT_LOADED_BY_THE_APP)
    assert not unloaded, f"chorus/services/{service}/ holds modules its app never loads: {sorted(unloaded)}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_loads_training_code_or_its_dependencies(service):
    loaded = loaded_after(f"from chorus.services.{service}.app import create_app\ncreate_app()")
    offline = {m for m in loaded if m.split(".")[0] in ("numba", "implicit", "sklearn", "pyspark")}
    offline |= {m for m in loaded if m.startswith(("chorus.training", "chorus.cli", "chorus.launcher"))}
    assert not offline, sorted(offline)


def test_the_gateway_loads_neither_numpy_nor_the_data_layer_nor_the_artifact_store():
    loaded = loaded_after("from chorus.services.gateway.app import create_app\ncreate_app()")
    heavy = {m for m in loaded if m.split(".")[0] in ("numpy", "scipy")}
    heavy |= {
        m for m in loaded if m.startswith(("chorus.shared.data", "chorus.shared.artifacts", "chorus.shared.serving"))
    }
    assert not heavy, sorted(heavy)


def test_the_probe_sees_what_an_import_loads():
    """The checks above can fail: importing the data layer shows up as numpy and the data modules."""
    loaded = loaded_after("import chorus.shared.data")
    assert "numpy" in loaded and "chorus.shared.data.loaders" in loaded
    assert modules_of("gateway") >= {"chorus.services.gateway.app", "chorus.services.gateway"}
