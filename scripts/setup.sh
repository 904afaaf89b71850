#!/usr/bin/env bash
# Everything dbvitals needs on a fresh Debian machine: PostgreSQL and Redis servers (Debian
# packages, started and reachable on loopback), and a virtualenv in .venv with dbvitals, its test
# extra (pytest, SecantusDB as the test MongoDB), and the example check plugin and example SQLite
# engine the tests install.
# Safe to run again: it installs and starts only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------------------------
if [ -z "${DBVITALS_TEST_PG_URL:-}" ]; then
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    say "installing PostgreSQL (Debian package)"
    apt_install postgresql postgresql-contrib
  fi
  if ! listening 5432; then
    say "starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || as_root pg_ctlcluster "$version" main start
    for _ in $(seq 1 30); do listening 5432 && break; sleep 0.5; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1 </dev/null; then
    # A packaged cluster asks for a password over TCP: let the local test user in without one.
    say "allowing trust auth for postgres on 127.0.0.1 (test machine set-up)"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! as_root grep -q 'dbvitals test set-up' "$hba"; then
      as_root sed -i '1i # dbvitals test set-up\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || as_root pg_ctlcluster "$version" main reload
    sleep 1
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null </dev/null \
    || { echo "PostgreSQL on 127.0.0.1:5432 does not accept user postgres" >&2; exit 1; }
  # hypopg (hypothetical indexes): postgres.missing-index verifies its suggestions with it, and the tests do.
  if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select count(*) from pg_available_extensions where name = 'hypopg'" </dev/null)" = 0 ]; then
    major=$(( $(psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'show server_version_num' </dev/null) / 10000 ))
    say "installing hypopg for PostgreSQL $major (Debian package)"
    apt_install "postgresql-$major-hypopg"
  fi
fi

# --- Redis ------------------------------------------------------------------------------------
if [ -z "${DBVITALS_TEST_REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null; then
    say "installing Redis (Debian package)"
    apt_install redis-server redis-tools
  fi
  if ! command -v redis-cli >/dev/null; then apt_install redis-tools; fi
  # The script-escaping tests run generated mongosh JavaScript in node.
  if ! command -v node >/dev/null && ! command -v nodejs >/dev/null; then
    say "installing Node.js (Debian package)"
    apt_install nodejs
  fi
  if ! listening 6379; then
    say "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do listening 6379 && break; sleep 0.2; done
  fi
fi

# --- Servers the fleet tests start themselves -------------------------------------------------
# A real Prometheus scrapes `dbvitals serve`; a real sshd on loopback is the bastion of the SSH
# tunnel tests. Installed only: each test starts its own on free ports and stops it.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  say "installing Prometheus (Debian package; the tests start their own)"
  apt_install prometheus
fi
if ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  say "installing OpenSSH (Debian packages; the tests start their own sshd)"
  apt_install openssh-server openssh-client
fi

# deploy/ tests: systemd-analyze verifies the unit, openssl makes the TLS tests' certificates.
if ! command -v systemd-analyze >/dev/null || ! command -v openssl >/dev/null; then apt_install systemd openssl; fi

# --- Python -----------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "dbvitals needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1
fi
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then apt_install python3-venv; fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
# The install is skipped when .venv already has what these pyproject files declare (a stamp of
# their hash), so a machine without network can run the tests again; a fresh clone installs.
stamp=$(cat pyproject.toml tests/example_plugin/pyproject.toml tests/example_engine_sqlite/pyproject.toml \
  | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.dbvitals-installed 2>/dev/null)" != "$stamp" ]; then
  say "installing dbvitals into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' ./tests/example_plugin ./tests/example_engine_sqlite
  echo "$stamp" > .venv/.dbvitals-installed
else
  say ".venv is up to date with pyproject.toml (delete .venv/.dbvitals-installed to reinstall)"
fi
say "set-up done"
