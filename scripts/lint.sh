#!/usr/bin/env bash
# The style and typing gate that .ci/run runs: ruff's formatter and linter on the tree, mypy on the package.
#
# mypy reads the package as it is installed, `chorus` with services/ and shared/ beneath it, from a tree of
# symbolic links (mypy does not follow setuptools' editable-install finder); it names the files by their paths in
# the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV:-.venv}/bin

"$bin/ruff" format --check .
"$bin/ruff" check .

view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
mkdir "$view/chorus"
for entry in chorus/*; do ln -s "$PWD/$entry" "$view/chorus/"; done
ln -s "$PWD/services" "$view/chorus/services"
ln -s "$PWD/shared" "$view/chorus/shared"
(cd "$view" && "$OLDPWD/$bin/mypy" --config-file "$OLDPWD/pyproject.toml" -p chorus) |
  sed -e "s#^chorus/services/#services/#" -e "s#^chorus/shared/#shared/#"
