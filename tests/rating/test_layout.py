"""The rating package's layout: no module imports another's private names (what the service process loads is
checked for every service in ``tests/packaging/test_layers.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chorus" / "services" / "rating"


def test_no_module_imports_a_private_name():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__future__"]
                assert not private, f"{path.relative_to(PACKAGE)} imports {private} from {node.module}"
