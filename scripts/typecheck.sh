#!/bin/sh
# Type-check kqi as it installs: the stage folders ingest/, clustering/, maps/ are the modules
# kqi.ingest, kqi.clustering, kqi.maps (setuptools package-dir), a mapping no type checker reads
# from pyproject.toml. So mypy runs on a tree of links with the installed layout.
# Usage: scripts/typecheck.sh [mypy options]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
# a relative PYTHON (PYTHON=.venv/bin/python) names a file from where the script was started
case "$python" in */*) python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python") ;; esac
tree="$here/build/typecheck"
rm -rf "$tree"
mkdir -p "$tree/kqi"
for f in "$here"/kqi/*.py "$here"/kqi/py.typed; do ln -s "$f" "$tree/kqi/"; done
for stage in ingest clustering maps; do ln -s "$here/$stage" "$tree/kqi/$stage"; done
for sub in "$here"/kqi/*/__init__.py; do d=$(dirname "$sub"); ln -s "$d" "$tree/kqi/$(basename "$d")"; done
cd "$tree"
exec "$python" -m mypy --config-file "$here/pyproject.toml" -p kqi "$@"
