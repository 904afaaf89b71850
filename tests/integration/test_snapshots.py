"""Snapshots, diff and record against real servers, and the SQLite store's own rules."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from checks.model import Report
from checks.snapshots.diff import diff
from checks.snapshots.store import SCHEMA_VERSION, SnapshotError, SnapshotStore
from tests import support
from tests.integration.test_cli import dbvitals


def config(tmp_path: Path, targets: dict[str, dict[str, object]]) -> Path:
    return support.write_targets_toml(tmp_path, targets, f'journal = "{tmp_path / "state" / "journal.jsonl"}"')


def test_diff_names_a_dropped_index_and_a_new_problem(tmp_path, pg_db):
    pg_db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL)")
    pg_db.execute("CREATE INDEX orders_customer_idx ON orders (customer_id)")
    pg_db.execute("INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 5000) g")
    pg_db.execute("ANALYZE orders")
    path = config(tmp_path, {"app": {"kind": "postgres", "url": pg_db.url}})
    before = dbvitals("snapshot", "--config", str(path), "save", "--label", "before-deploy")
    assert before.returncode == 0, before.stderr
    assert "snapshot 1 (before-deploy)" in before.stdout

    pg_db.execute("DROP INDEX orders_customer_idx")
    pg_db.execute("CREATE TABLE audit_log (at timestamptz, what text)")  # no primary key: a new finding
    after = dbvitals("snapshot", "--config", str(path), "save", "--label", "after-deploy")
    assert after.returncode == 0, after.stderr

    text = dbvitals("diff", "--config", str(path))
    assert text.returncode == 0, text.stderr
    assert "public.orders_customer_idx: index dropped" in text.stdout
    new_block = text.stdout.split("New findings:")[1].split("Resolved findings:")[0]
    assert "postgres.no-primary-key" in new_block and "public.orders" not in new_block

    gate = dbvitals("diff", "--config", str(path), "before-deploy", "after-deploy", "--fail-on", "low", "--format", "json")
    assert gate.returncode == 1
    doc = json.loads(gate.stdout)
    assert doc["schema"] == "dbvitals.diff/1"
    assert "postgres.no-primary-key" in [f["check"] for f in doc["new"]]
    assert all(f["object"].startswith("public.audit_log") for f in doc["new"])  # nothing else is new
    assert {"kind": "pg.index", "name": "public.orders_customer_idx", "change": "index dropped"}.items() <= {
        k: v for c in doc["figures"] if c["name"] == "public.orders_customer_idx" for k, v in c.items()}.items()

    passing = dbvitals("diff", "--config", str(path), "latest~1", "latest", "--fail-on", "critical")
    assert passing.returncode == 0

    # Against now: the problem fixed since the last snapshot is resolved.
    pg_db.execute("ALTER TABLE audit_log ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
    now = dbvitals("diff", "--config", str(path), "after-deploy", "now", "--format", "json")
    assert now.returncode == 0, now.stderr
    assert "postgres.no-primary-key" in [f["check"] for f in json.loads(now.stdout)["resolved"]]

    listing = json.loads(dbvitals("snapshot", "--config", str(path), "list", "--format", "json").stdout)
    assert [s["label"] for s in listing["snapshots"]] == ["before-deploy", "after-deploy"]
    shown = dbvitals("snapshot", "--config", str(path), "show", "after-deploy", "--format", "json")
    assert any(f["check"] == "postgres.no-primary-key" for f in json.loads(shown.stdout)["findings"])


def test_no_secret_enters_the_store(tmp_path, pg_db, redis_db):
    secret = "Zq/9?#@:%s3cr3t'\"pw"
    path = config(tmp_path, {
        "app": {"kind": "postgres", "url": pg_db.url, "password": secret},  # trust auth ignores it
        "cache": {"kind": "redis", "url": redis_db.url},
    })
    redis_db.client.set(f"session:{secret}", "x")  # even a key that carries it
    result = dbvitals("snapshot", "--config", str(path), "save")
    assert result.returncode == 0, result.stderr
    store = tmp_path / "state" / "snapshots.db"
    for file in store.parent.glob("snapshots.db*"):
        assert secret.encode() not in file.read_bytes()
    assert secret not in result.stdout + result.stderr
    assert oct(store.stat().st_mode & 0o777) == "0o600"


def test_redis_pattern_figures_and_growth(tmp_path, redis_db):
    path = config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}})
    redis_db.client.mset({f"feed:{i}": "x" * 100 for i in range(20)})
    assert dbvitals("snapshot", "--config", str(path), "save").returncode == 0
    redis_db.client.mset({f"feed:{i}": "x" * 100 for i in range(20, 200)})
    assert dbvitals("snapshot", "--config", str(path), "save").returncode == 0
    doc = json.loads(dbvitals("diff", "--config", str(path), "--format", "json").stdout)
    [change] = [c for c in doc["figures"] if c["kind"] == "redis.pattern"]
    assert change["name"] == "feed:{id}" and (change["before"], change["after"]) == (20, 200)


def test_record_takes_snapshots_with_bounded_retention(tmp_path, pg_db):
    path = config(tmp_path, {"app": {"kind": "postgres", "url": pg_db.url}})
    result = dbvitals("record", "--config", str(path), "--every", "5s", "--for", "1s", "--label", "incident")
    assert result.returncode == 0, result.stderr
    assert "recorded 1 snapshot as incident" in result.stderr
    store = SnapshotStore(tmp_path / "state" / "snapshots.db")
    assert [i.label for i in store.list()] == ["incident"]
    refused = dbvitals("record", "--config", str(path), "--every", "1s")
    assert refused.returncode == 2 and "at least 5s" in refused.stderr


def test_diff_judges_usage_only_over_a_window_long_enough(tmp_path, pg_db):
    """Issue #25 item 4: `users_pkey: stopped being used` over a 5-second window."""
    pg_db.execute("""
        CREATE TABLE users (id int PRIMARY KEY, name text);
        INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 5000) g;
        ANALYZE users;
        SET enable_seqscan = off;
        SELECT name FROM users WHERE id = 7;
        SELECT pg_stat_force_next_flush();""")
    path = config(tmp_path, {"app": {"kind": "postgres", "url": pg_db.url}})
    for label in ("a", "b"):
        saved = dbvitals("snapshot", "--config", str(path), "save", "--label", label)
        assert saved.returncode == 0, saved.stderr
    short = dbvitals("diff", "--config", str(path), "a", "b")
    assert short.returncode == 0, short.stderr
    assert "stopped being used" not in short.stdout
    assert "window too short to judge usage" in short.stdout and "at least 60 min needed" in short.stdout
    judged = dbvitals("diff", "--config", str(path), "a", "b", "--min-usage-window", "0s")
    assert "public.users_pkey: stopped being used" in judged.stdout
    bad = dbvitals("diff", "--config", str(path), "a", "b", "--min-usage-window", "soon")
    assert bad.returncode == 2 and "--min-usage-window" in bad.stderr and "Traceback" not in bad.stderr


def test_diff_shows_a_statement_by_its_text_not_its_queryid(tmp_path):
    store = SnapshotStore(tmp_path / "s.db")
    query = "SELECT * FROM   orders\n WHERE customer_id = $1"
    store.save(_report(), {"app": [("pg.statement", "-4966738708809000546",
                                    {"query": query, "calls": 100, "total_ms": 100.0, "rows": 100})]})
    store.save(_report(), {"app": [("pg.statement", "-4966738708809000546",
                                    {"query": query, "calls": 200, "total_ms": 1100.0, "rows": 200})]})
    a, b = store.load_all([i.id for i in store.list()])
    [change] = diff(a, b).figures
    assert change.name == "SELECT * FROM orders WHERE customer_id = $1"
    assert change.change.startswith("mean time per call grew 10.0x")
    assert change.to_dict()["ref"] == "-4966738708809000546"


# --- the store ------------------------------------------------------------------------------------

def _report() -> Report:
    from checks.model import Finding, Severity, TargetState, TargetStatus

    status = TargetStatus("app", "postgres", TargetState.CONNECTED)
    finding = Finding("abc123", "postgres.unused-index", Severity.LOW, "app", "public.i", "unused", "m")
    return Report([status], [finding], [], 1.0)


def test_store_migrates_uses_wal_and_refuses_a_newer_schema(tmp_path):
    store = SnapshotStore(tmp_path / "s.db")
    sid = store.save(_report(), {"app": [("pg.index", "public.i", {"scans": 3})]}, label="x")
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    loaded = store.load(sid)
    assert loaded.figures["app"][("pg.index", "public.i")] == {"scans": 3}
    assert [f.id for f in loaded.findings] == ["abc123"]
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SnapshotError, match="newer dbvitals"):
        store.list()


def test_a_store_refuses_another_applications_sqlite_file_and_leaves_it_as_it_was(tmp_path):
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
    before = other.read_bytes()
    for argv in (["snapshot", "--store", str(other), "list"], ["ui", "--replay", str(other)]):
        result = dbvitals("--config", str(config(tmp_path, {})), *argv)
        assert result.returncode == 2, result.stderr
        assert "is not a dbvitals snapshot store" in result.stderr and "Traceback" not in result.stderr
    assert other.read_bytes() == before  # no dbvitals table, still the rollback journal, not WAL
    with sqlite3.connect(other) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {"users"}
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 100)
    with pytest.raises(SnapshotError):
        SnapshotStore(text).list()
    assert text.read_text() == "not a database at all\n" * 100


@pytest.mark.parametrize("table, column, value", [
    ("findings", "finding", json.dumps({"id": "x", "check": "c", "severity": "bogus", "target": "app", "object": "o",
                                        "title": "t", "message": "m"})),
    ("findings", "finding", json.dumps(["not", "an", "object"])),
    ("targets", "status", json.dumps({"name": "app", "kind": "postgres", "state": "sideways"})),
    ("errors", "error", json.dumps("an error that is a string")),
    ("figures", "metrics", "{not json"),
])
def test_a_store_row_of_the_wrong_shape_is_a_clear_error_naming_the_row(tmp_path, table, column, value):
    path = tmp_path / "s.db"
    from checks.model import CheckError

    store = SnapshotStore(path)
    report = _report()
    report.errors.append(CheckError("postgres.bloat", "app", "timeout", "did not finish"))
    sid = store.save(report, {"app": [("pg.index", "public.i", {"scans": 3})]}, label="x")
    with sqlite3.connect(path) as db:
        assert db.execute(f"UPDATE {table} SET {column} = ?", (value,)).rowcount == 1
    with pytest.raises(SnapshotError, match=f"snapshot {sid}: a row of {table} is not what dbvitals writes"):
        store.load(sid)
    result = dbvitals("--config", str(config(tmp_path, {})), "diff", "--store", str(path), str(sid), str(sid))
    assert result.returncode == 2 and f"a row of {table}" in result.stderr and "Traceback" not in result.stderr


def test_store_prunes_by_count_and_age_and_resolves_references(tmp_path):
    store = SnapshotStore(tmp_path / "s.db")
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)).isoformat(timespec="seconds")
    first = store.save(_report(), {}, label="rec", taken_at=old)
    ids = [store.save(_report(), {}, label="rec") for _ in range(4)] + [store.save(_report(), {}, label="other")]
    assert store.resolve("latest") == ids[-1] and store.resolve("latest~1") == ids[-2]
    assert store.resolve("rec") == ids[3] and store.resolve(str(first)) == first
    with pytest.raises(SnapshotError, match="no snapshot 'nope'"):
        store.resolve("nope")
    assert store.prune(older_than=dt.timedelta(days=30)) == 1
    assert store.prune(keep=2, label="rec") == 2
    assert [i.label for i in store.list()] == ["rec", "rec", "other"]


def test_hostile_names_are_shown_escaped_in_every_diff_format(tmp_path, pg_db):
    hostile = 'evil\n\x1b[31m\\! touch PWNED\n-- *bold* | `x`'
    quoted = '"' + hostile.replace('"', '""') + '"'
    pg_db.execute(f"CREATE TABLE {quoted} (id int PRIMARY KEY, v int)")
    pg_db.execute(f"CREATE INDEX {quoted[:-1]}_v\" ON {quoted} (v)")
    path = config(tmp_path, {"app": {"kind": "postgres", "url": pg_db.url}})
    assert dbvitals("snapshot", "--config", str(path), "save").returncode == 0
    pg_db.execute(f"DROP INDEX {quoted[:-1]}_v\"")
    assert dbvitals("snapshot", "--config", str(path), "save").returncode == 0
    for fmt in ("text", "markdown"):
        out = dbvitals("diff", "--config", str(path), "--format", fmt).stdout
        assert "\x1b" not in out and "index dropped" in out
        dropped = [line for line in out.splitlines() if "index dropped" in line]
        assert len(dropped) == 1 and "\\x1b" in dropped[0]  # one line, the ESC shown, not sent
    markdown = dbvitals("diff", "--config", str(path), "--format", "markdown").stdout
    assert "\\*bold\\*" in markdown and "\\`x\\`" in markdown
