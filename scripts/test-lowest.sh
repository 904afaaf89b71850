#!/usr/bin/env bash
# The integration tests on the lowest declared version of every direct dependency (the floors in
# pyproject.toml's [project] dependencies, pinned with ==), in .venv-lowest; the test tools are
# the latest. Servers as scripts/setup.sh starts them. Extra arguments go to pytest (default:
# tests/integration).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-lowest
say() { printf '== %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
constraints="$VENV/lowest-constraints.txt"
"$VENV/bin/python" scripts/lowest_constraints.py pyproject.toml > "$constraints"
stamp=$(cat pyproject.toml tests/example_plugin/pyproject.toml tests/example_engine_sqlite/pyproject.toml \
  "$constraints" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$stamp" ]; then
  say "installing dbvitals with its lowest declared dependencies: $(tr '\n' ' ' < "$constraints")"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" \
    -e '.[test]' ./tests/example_plugin ./tests/example_engine_sqlite
  echo "$stamp" > "$VENV/.installed"
fi
say "installed: $("$VENV/bin/python" -m pip freeze --disable-pip-version-check | grep -iE "^($(cut -d= -f1 "$constraints" | paste -sd'|'))==" | tr '\n' ' ')"
if [ $# -eq 0 ]; then set -- tests/integration; fi
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
