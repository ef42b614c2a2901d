"""The rating package's layout: the service process imports only what loads and answers, and no module imports
another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chorus" / "services" / "rating"


def test_the_service_imports_no_offline_module():
    code = (
        "import sys, chorus.services.rating.app\n"
        "print(sorted(m for m in sys.modules if m.startswith('chorus.training') or m.startswith('scipy.optimize')"
        " or m == 'tracemalloc' or m == 'implicit' or m.startswith('implicit.')"
        " or m == 'sklearn' or m.startswith('sklearn.') or m.split('.')[0] in ('numba', 'pyspark')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_module_imports_a_private_name():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__future__"]
                assert not private, f"{path.relative_to(PACKAGE)} imports {private} from {node.module}"
