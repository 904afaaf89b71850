#!/usr/bin/env bash
# First look: set-up, then dbvitals on the local servers (PostgreSQL, Redis, and a SecantusDB
# started here as the MongoDB) with config.example.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
data=$(mktemp -d)
.venv/bin/secantusd-py --host 127.0.0.1 --port 27017 --storage-path "$data" --log-level WARNING >/dev/null 2>&1 &
mongo=$!
trap 'kill $mongo 2>/dev/null; rm -rf "$data"' EXIT
sleep 2
.venv/bin/dbvitals check --config config.example.toml --fail-on never "$@"
