"""`dbvitals fix / undo / history` end to end on a real PostgreSQL, MongoDB and Redis: the
prompt, the refusals and exit codes, migration scripts, and a fix process killed mid-fix."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import console.formats.sarif_format
import console.runtime
from checks.model import finding_id
from console.cli import main
from tests.data import fix_checks
from tests.support import kill_fix_mid_build, pg_address, signal_fix_mid_build

PASSWORD = "cli-Secret-77"


@pytest.fixture
def registry(monkeypatch):
    reg = fix_checks.registry()
    for where in (console.runtime, console.formats.sarif_format):  # the modules that load the registry
        monkeypatch.setattr(where, "load_registry", lambda *a, **k: reg)
    return reg


@pytest.fixture
def orders(pg_db):
    pg_db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, note varchar(10))")
    pg_db.execute("INSERT INTO orders SELECT g, g % 7, 'n' FROM generate_series(1, 500) g")
    return pg_db


def write_config(tmp_path, url, *, kind="postgres", name="pg", **target) -> Path:
    lines = [f'journal = "{tmp_path / "journal.jsonl"}"', "", f"[targets.{name}]", f'kind = "{kind}"', f'url = "{url}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in target.items()]
    path = tmp_path / "dbvitals.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pg_config(orders, tmp_path, **target) -> Path:
    target.setdefault("allow_fixes", True)
    return write_config(tmp_path, orders.url.replace("postgres@", f"postgres:{PASSWORD}@"), **target)


MISSING = finding_id("test.pg-missing-index", "pg", "public.orders.customer_id")
NARROW = finding_id("test.pg-narrow-column", "pg", "public.orders.note")
# Where each is, for a `dbvitals fix` with no report before it.
MISSING_AT = f"pg/test.pg-missing-index/{MISSING}"
NARROW_AT = f"pg/test.pg-narrow-column/{NARROW}"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def index_count(orders) -> int:
    return orders.fetch("SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'orders_customer_id_idx'")[0]["n"]


def test_dry_run_shows_what_would_run_where_and_applies_nothing(orders, tmp_path, registry, capsys):
    config = pg_config(orders, tmp_path, environment="staging")
    assert main(["fix", MISSING_AT, "--dry-run", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"Fix for finding {MISSING} (test.pg-missing-index, medium)" in out
    host, port = pg_address()
    assert f"target:  pg (postgres, staging) postgresql://postgres:***@{host}:{port}/" in out
    assert "safety:  safe" in out and "lock:    SHARE UPDATE EXCLUSIVE on orders" in out
    assert "1. CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);   [outside a transaction]" in out
    assert "1. DROP INDEX CONCURRENTLY IF EXISTS public.orders_customer_id_idx;" in out
    assert "dry run: nothing applied." in out and PASSWORD not in out
    assert index_count(orders) == 0


def test_without_a_terminal_or_yes_nothing_is_applied(orders, tmp_path, registry, capsys):
    config = pg_config(orders, tmp_path)
    assert main(["fix", MISSING_AT, "--config", str(config)]) == 3
    assert "no terminal to confirm on: pass --yes" in capsys.readouterr().err
    assert index_count(orders) == 0


def test_the_prompt_applies_on_yes_and_production_needs_the_target_name(orders, tmp_path, registry, capsys, monkeypatch):
    config = pg_config(orders, tmp_path, environment="production")
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert main(["fix", MISSING_AT, "--config", str(config)]) == 3
    captured = capsys.readouterr()
    assert "type the target name to confirm" in captured.err and "not confirmed" in captured.err
    assert index_count(orders) == 0
    monkeypatch.setattr(sys, "stdin", Terminal("pg\n"))
    assert main(["fix", MISSING_AT, "--config", str(config)]) == 0
    assert "fixed (verified)" in capsys.readouterr().out
    assert index_count(orders) == 1


def test_fix_history_undo_round_trip(orders, tmp_path, registry, capsys):
    config = pg_config(orders, tmp_path)
    assert main(["fix", MISSING_AT, "--yes", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    entry_id = out.split("journal entry ")[1].split()[0]
    assert index_count(orders) == 1

    assert main(["history", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert entry_id in listing and "test.pg-missing-index" in listing and "fixed" in listing

    assert main(["undo", entry_id[:6], "--yes", "--config", str(config)]) == 0
    undo_out = capsys.readouterr().out
    assert "inverse steps, in this order:" in undo_out and "undone (verified)" in undo_out
    # The prompt states the lock of the DROP it runs, not that of the original build.
    lock_line = next(line for line in undo_out.splitlines() if line.strip().startswith("lock:"))
    assert "SHARE UPDATE EXCLUSIVE on the table of" in lock_line and "scans the table twice" not in lock_line
    assert index_count(orders) == 0

    assert main(["history", entry_id, "--config", str(config)]) == 0
    detail = capsys.readouterr().out
    assert "state     fixed, undone by" in detail and "1. CREATE INDEX CONCURRENTLY" in detail
    assert main(["history", "--format", "json", "--config", str(config)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in doc["entries"]] == ["undo", "fix"]
    assert main(["undo", entry_id, "--yes", "--config", str(config)]) == 3  # already undone
    assert PASSWORD not in (tmp_path / "journal.jsonl").read_text()


def test_refusals_say_why_and_exit_non_zero(orders, tmp_path, registry, capsys):
    config = pg_config(orders, tmp_path)
    assert main(["fix", NARROW_AT, "--yes", "--config", str(config)]) == 3
    out = capsys.readouterr().out
    assert "REFUSED: an unsafe fix (ACCESS EXCLUSIVE on orders while the column is rewritten): it is applied only with --allow-unsafe" in out
    assert main(["fix", NARROW_AT, "--yes", "--allow-unsafe", "--config", str(config)]) == 0
    capsys.readouterr()
    locked = pg_config(orders, tmp_path, allow_fixes=False)
    assert main(["fix", MISSING_AT, "--yes", "--config", str(locked)]) == 3
    assert "does not allow fixes" in capsys.readouterr().out
    assert main(["fix", "pg/test.pg-missing-index/0123456789ab", "--yes", "--config", str(config)]) == 1
    assert "no finding pg/test.pg-missing-index/0123456789ab now" in capsys.readouterr().out
    assert main(["fix", "--config", str(config)]) == 2


def test_sql_migration_script_is_what_psql_runs(orders, tmp_path, registry, capsys):
    config = pg_config(orders, tmp_path)
    script = tmp_path / "fix.sql"
    assert main(["fix", "--check", "test.pg-missing-index", "--target", "pg", "--script", str(script),
                 "--config", str(config)]) == 0
    text = script.read_text()
    assert "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);" in text
    assert PASSWORD not in text and index_count(orders) == 0
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", orders.url, "-f", str(script)], check=True)
    assert index_count(orders) == 1


def test_mongosh_and_redis_cli_scripts(mongo_db, redis_db, tmp_path, registry, capsys):
    mongo_db.db.orders.insert_one({"customerId": 1})
    config = write_config(tmp_path, mongo_db.url, kind="mongodb", name="docs")
    script = tmp_path / "fix.js"
    assert main(["fix", "--check", "test.mongo-missing-index", "--target", "docs", "--script", str(script),
                 "--config", str(config)]) == 0
    text = script.read_text()
    assert f'must(db.getSiblingDB("{mongo_db.name}").runCommand({{"createIndexes": "orders"' in text and '"maxTimeMS": 1800000' in text

    redis_db.client.set("session:1", "x")
    config = write_config(tmp_path, redis_db.url, kind="redis", name="cache")
    script = tmp_path / "fix.redis"
    assert main(["fix", "--check", "test.redis-missing-ttl", "--target", "cache", "--script", str(script),
                 "--config", str(config)]) == 0
    text = script.read_text()
    assert f"rcli -n {redis_db.index} --scan --pattern 'session:*'" in text
    assert "# to undo:" in text
    # The script reaches the target's server and database, not redis-cli's default, and works.
    redis_db.client.set("session:2", "x", ex=999)
    redis_db.client.set("session:x:y", "x")  # the glob matches it, the pattern's regex does not
    subprocess.run(["bash", str(script)], check=True, cwd=tmp_path, capture_output=True)
    assert 86000 < redis_db.client.ttl("session:1") <= 86400
    assert redis_db.client.ttl("session:x:y") == -1
    assert redis_db.client.ttl("session:2") <= 999  # NX: an existing TTL is kept
    assert main(["fix", "--check", "test.mongo-missing-index", "--target", "cache", "--script", str(script),
                 "--config", str(config)]) == 2  # a MongoDB check on a Redis target


def test_a_fix_process_killed_mid_fix_leaves_an_entry_that_says_it_did_not_finish(orders, tmp_path, capsys):
    config = pg_config(orders, tmp_path)
    program = (
        "import sys, checks.registry; from tests.data import fix_checks; reg = fix_checks.registry(); "
        "checks.registry.load_registry = lambda *a, **k: reg; from console.cli import main; "
        f"sys.exit(main(['fix', '{MISSING_AT}', '--yes', '--lock-timeout', '60', '--config', '{config}']))"
    )

    # The build waits for the writer.
    asyncio.run(kill_fix_mid_build(orders.url, program, "INSERT INTO orders VALUES (9999, 1, 'x')"))
    entries = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert len(entries) == 1 and entries[0]["outcome"] is None  # started, never finished
    entry_id = entries[0]["id"]
    assert main(["history", "--config", str(config)]) == 0
    assert "DID NOT FINISH" in capsys.readouterr().out
    assert main(["history", entry_id, "--config", str(config)]) == 0
    assert "the process stopped before the fix finished: check the target" in capsys.readouterr().out
    # What it left on the server, an INVALID index, is found and dropped by the next attempt.
    assert orders.fetch("SELECT count(*) AS n FROM pg_index WHERE NOT indisvalid AND indrelid = 'orders'::regclass")[0]["n"] == 1
    reg = fix_checks.registry()
    console.runtime.load_registry, saved = (lambda *a, **k: reg), console.runtime.load_registry
    try:
        assert main(["fix", MISSING_AT, "--yes", "--config", str(config)]) == 0
    finally:
        console.runtime.load_registry = saved
    assert "dropped INVALID index public.orders_customer_id_idx left by an earlier, interrupted build" in capsys.readouterr().out
    assert orders.fetch("SELECT bool_and(indisvalid) AS ok FROM pg_index WHERE indrelid = 'orders'::regclass")[0]["ok"]
    assert main(["undo", entry_id, "--yes", "--config", str(config)]) == 3  # it applied nothing to undo


def fix_program(config: Path) -> str:
    return (
        "import sys, checks.registry; from tests.data import fix_checks; reg = fix_checks.registry(); "
        "checks.registry.load_registry = lambda *a, **k: reg; from console.cli import main; "
        f"sys.exit(main(['fix', '{MISSING_AT}', '--yes', '--lock-timeout', '60', '--config', '{config}']))"
    )


def invalid_indexes(orders) -> int:
    return orders.fetch("SELECT count(*) AS n FROM pg_index WHERE NOT indisvalid AND indrelid = 'orders'::regclass")[0]["n"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_mid_build_stops_the_build_drops_its_invalid_index_and_journals_it(orders, tmp_path, signum):
    """Ctrl-C, `kill` or a closed terminal while CREATE INDEX CONCURRENTLY waits behind a long
    transaction: dbvitals ends the build on the server, drops the INVALID index it had created,
    journals the fix as failed with what it cleaned up, and exits 128 + the signal."""
    config = pg_config(orders, tmp_path)
    code, out, err = asyncio.run(signal_fix_mid_build(orders.url, fix_program(config),
                                                      "INSERT INTO orders VALUES (9999, 1, 'x')", signum))
    assert code == 128 + signum, (code, out, err)
    assert "internal error" not in err and "Traceback" not in err, err
    assert invalid_indexes(orders) == 0
    assert orders.fetch("SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'orders' "
                        "AND indexname = 'orders_customer_id_idx'")[0]["n"] == 0
    assert orders.fetch("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'dbvitals fix %'")[0]["n"] == 0
    entries = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    last = entries[-1]
    assert len({e["id"] for e in entries}) == 1 and last["outcome"] == "failed", last
    assert last["steps_done"] == 0 and last["leftovers"] == [], last
    assert "interrupted after 0 of 1 steps" in last["message"], last
    assert "dropped INVALID index public.orders_customer_id_idx the interrupted build left" in last["message"], last


def test_a_cleanup_that_cannot_finish_in_time_names_what_it_left(orders, tmp_path):
    """The writer outlives the cleanup's lock wait: the INVALID index stays, and the journal
    names it and the statement that drops it."""
    config = pg_config(orders, tmp_path)
    code, out, err = asyncio.run(signal_fix_mid_build(orders.url, fix_program(config),
                                                      "INSERT INTO orders VALUES (9999, 1, 'x')", signal.SIGTERM,
                                                      hold_blocker_s=60))
    assert code == 143, (code, out, err)
    assert invalid_indexes(orders) == 1
    last = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()][-1]
    assert last["outcome"] == "failed" and "interrupted" in last["message"], last
    assert any("INVALID index public.orders_customer_id_idx" in item
               and "DROP INDEX CONCURRENTLY IF EXISTS public.orders_customer_id_idx" in item
               for item in last["leftovers"]), last
    orders.execute("DROP INDEX IF EXISTS orders_customer_id_idx")


@pytest.fixture
def check_runs(monkeypatch):
    """The check runs a command makes, as (targets, checks): observed, not replaced."""
    import checks.fixes

    runs: list[tuple[list[str], list[str] | None]] = []
    real = checks.fixes._run

    async def spy(settings, registry, *, targets, checks, **kwargs):
        runs.append((list(targets or settings.targets), None if checks is None else sorted(checks)))
        return await real(settings, registry, targets=targets, checks=checks, **kwargs)

    monkeypatch.setattr(checks.fixes, "_run", spy)
    return runs


def two_target_config(orders, tmp_path) -> Path:
    """`pg` and `other`, both on the test database: a fleet of two."""
    url = orders.url
    path = tmp_path / "dbvitals.toml"
    path.write_text(f'journal = "{tmp_path / "journal.jsonl"}"\n\n'
                    f'[targets.pg]\nkind = "postgres"\nurl = "{url}"\nallow_fixes = true\n\n'
                    f'[targets.other]\nkind = "postgres"\nurl = "{url}"\n')
    return path


def test_fix_after_check_runs_one_check_on_one_target_once(orders, tmp_path, registry, capsys, check_runs):
    config = str(two_target_config(orders, tmp_path))
    assert main(["check", "--config", config, "--fail-on", "never"]) == 0
    capsys.readouterr()
    assert main(["fix", MISSING[:8], "--dry-run", "--config", config]) == 0  # a unique prefix will do
    assert "dry run: nothing applied." in capsys.readouterr().out
    # Found, re-checked and planned from one run of the one check that reports it.
    assert check_runs == [(["pg"], ["test.pg-missing-index"])]
    check_runs.clear()
    assert main(["fix", MISSING, "--yes", "--config", config]) == 0
    assert check_runs == [(["pg"], ["test.pg-missing-index"])] * 2  # find, then verify
    assert index_count(orders) == 1


def test_a_reference_names_where_to_look_without_any_earlier_report(orders, tmp_path, registry, capsys, check_runs):
    config = str(two_target_config(orders, tmp_path))
    assert main(["fix", f"pg/test.pg-missing-index/{MISSING}", "--dry-run", "--config", config]) == 0
    assert f"Fix for finding {MISSING}" in capsys.readouterr().out
    assert check_runs == [(["pg"], ["test.pg-missing-index"])]
    assert main(["fix", f"nowhere/test.pg-missing-index/{MISSING}", "--dry-run", "--config", config]) == 2
    assert "unknown target nowhere" in capsys.readouterr().err


def test_an_id_no_report_knows_is_refused_at_once_naming_the_check_command(orders, tmp_path, registry, capsys,
                                                                          check_runs):
    """No search of every fixing check on every target (production included): exit 2 at once."""
    config = str(two_target_config(orders, tmp_path))
    assert main(["fix", MISSING, "--dry-run", "--config", config]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"finding {MISSING} is not in the last report of this config: `dbvitals check --config {config}` " \
           "finds the current ones" in line and "TARGET/CHECK/ID" in line
    assert main(["fix", MISSING, "--dry-run", "--target", "other", "--config", config]) == 2
    assert f"`dbvitals check --config {config} --target other`" in capsys.readouterr().err
    assert check_runs == []  # no check ran, on no target
    assert main(["check", "--config", config, "--target", "pg", "--fail-on", "never"]) == 0
    capsys.readouterr()
    assert main(["fix", MISSING, "--dry-run", "--target", "other", "--config", config]) == 2  # it is on pg
    assert main(["fix", MISSING, "--dry-run", "--config", config]) == 0  # the report of pg knows it
    assert check_runs == [(["pg"], ["test.pg-missing-index"])]


def test_the_verification_reuses_the_connection_of_the_find(orders, tmp_path, registry, capsys, monkeypatch):
    """`fix --yes` opens one check connection: the find (which is the re-check) and the
    verification share it; the fix's steps run on a read-write session of their own."""
    import checks.runner

    config = str(pg_config(orders, tmp_path))
    opened = []
    real = checks.runner.connect

    async def counting(name, target):
        opened.append(name)
        return await real(name, target)

    monkeypatch.setattr(checks.runner, "connect", counting)  # where the runner opens check connections
    assert main(["fix", f"pg/test.pg-missing-index/{MISSING}", "--yes", "--config", config]) == 0
    assert "fixed (verified)" in capsys.readouterr().out
    assert opened == ["pg"] and index_count(orders) == 1
    # After the fix the index exists: the verification saw it through the kept connection.
    assert main(["fix", f"pg/test.pg-missing-index/{MISSING}", "--dry-run", "--config", config]) == 1
    assert f"no finding pg/test.pg-missing-index/{MISSING} now" in capsys.readouterr().out


def test_a_name_holding_a_newline_cannot_forge_a_step_in_the_preview(pg_db, tmp_path, capsys):
    forged = "items\n    2. DROP TABLE public.victim CASCADE;"
    pg_db.execute("CREATE TABLE parents (id int PRIMARY KEY)")
    pg_db.execute(f'CREATE TABLE "{forged}" (id int PRIMARY KEY, parent_id int REFERENCES parents (id))')
    config = str(write_config(tmp_path, pg_db.url, allow_fixes=True))
    main(["check", "--check", "postgres.fk-missing-index", "--format", "json", "--fail-on", "never", "--config", config])
    found = [f for f in json.loads(capsys.readouterr().out)["findings"] if "DROP TABLE" in f["object"]]
    assert len(found) == 1, found
    assert main(["fix", found[0]["id"], "--dry-run", "--config", config]) == 0
    out = capsys.readouterr().out
    numbered = [line for line in out.splitlines() if line.lstrip()[:3] in ("1. ", "2. ")]
    assert [line.lstrip()[:2] for line in numbered] == ["1.", "1."], out  # the fix's one step and its inverse's
    assert not any(line.lstrip().startswith("DROP TABLE") for line in out.splitlines()), out
    assert 'U&"items\\000a    2. DROP TABLE public.victim CASCADE;"' in out  # the name, escaped on its own step line
