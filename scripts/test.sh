#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up (servers and .venv), the static checks (ruff,
# mypy, then the import contracts: each stops the run on a finding), then pytest. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff check ."
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== lint-imports"
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
