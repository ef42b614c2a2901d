#!/usr/bin/env bash
# The style, typing and layering gate that .ci/run runs: ruff's formatter and linter on the tree, mypy on the
# package and the tests, the import contracts of pyproject.toml ([tool.importlinter]), and the documentation site
# (mkdocs build --strict: a broken link or a page missing from the nav fails; needs the .[docs] extra).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV:-.venv}/bin

"$bin/ruff" format --check .
"$bin/ruff" check .
"$bin/mypy" -p chorus -p tests
"$bin/lint-imports"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 "$bin/mkdocs" build --strict --quiet --site-dir "$site"
