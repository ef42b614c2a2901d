#!/usr/bin/env bash
# The style, typing and layering gate that .ci/run runs: ruff's formatter and linter on the tree, mypy on the
# package and the tests, and the import contracts of pyproject.toml ([tool.importlinter]).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV:-.venv}/bin

"$bin/ruff" format --check .
"$bin/ruff" check .
"$bin/mypy" -p chorus -p tests
"$bin/lint-imports"
