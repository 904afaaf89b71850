#!/usr/bin/env bash
# First look: set-up, then `dbvitals demo` — disposable PostgreSQL, Redis and SecantusDB servers
# seeded with real problems, opened in the console (quitting removes them). Arguments go to
# `dbvitals demo`, e.g. --headless for a report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dbvitals demo "$@"
