"""A fourth engine from its own package: the example SQLite engine (tests/example_engine_sqlite),
registered only by its entry points, driven through `dbvitals check / fix / history / undo` as a
user would, in subprocesses. Its fixes go through the same pipeline, journal, verification and
undo guards as the built-in engines'."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A table name that is data, not SQL: a quote and a line break.
HOSTILE = 'or"ders\nx'


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def app(tmp_path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE {_quote(HOSTILE)} (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), note TEXT);
        CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES {_quote(HOSTILE)}(id));
        CREATE INDEX items_order ON items (order_id);
    """)
    conn.close()
    return path


@pytest.fixture
def config(tmp_path, app) -> Path:
    path = tmp_path / "dbvitals.toml"
    path.write_text(f'journal = "{tmp_path / "journal.jsonl"}"\n\n[targets.app]\nkind = "sqlite"\n'
                    f'path = "{app}"\nallow_fixes = true\n', encoding="utf-8")
    return path


def dbvitals(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args, "--config", str(config)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def findings(config: Path) -> dict[str, dict]:
    out = dbvitals(config, "check", "--format", "json")
    assert out.returncode == 0, out.stderr
    return {f["check"]: f for f in json.loads(out.stdout)["findings"]}


def entry_id(out: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"journal entry ([0-9a-f]+)", out.stdout)
    assert match, out.stdout + out.stderr
    return match[1]


def indexes(app: Path) -> dict[str, str]:
    conn = sqlite3.connect(app)
    try:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    finally:
        conn.close()


def journal_mode(app: Path) -> str:
    conn = sqlite3.connect(app)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


def test_check_fix_history_undo_both_problems(config, app):
    found = findings(config)
    assert set(found) == {"sqlite.fk-missing-index", "sqlite.journal-mode"}  # items.order_id is indexed
    fk, mode = found["sqlite.fk-missing-index"], found["sqlite.journal-mode"]
    assert fk["evidence"] == {"table": HOSTILE, "columns": ["customer_id"], "references": "customers"}
    assert fk["fix"]["steps"][0]["command"].endswith(f'ON {_quote(HOSTILE)} ("customer_id")')
    assert mode["evidence"] == {"journal_mode": "delete"}
    before = indexes(app)

    fixed = dbvitals(config, "fix", fk["id"], "--yes")
    assert fixed.returncode == 0 and "fixed (verified)" in fixed.stdout, fixed.stdout + fixed.stderr
    index_entry = entry_id(fixed)
    (created,) = set(indexes(app)) - set(before)
    # The unsafe journal-mode switch needs --allow-unsafe, like any unsafe fix.
    refused = dbvitals(config, "fix", mode["id"], "--yes")
    assert refused.returncode == 3 and "--allow-unsafe" in refused.stdout
    assert journal_mode(app) == "delete"
    switched = dbvitals(config, "fix", mode["id"], "--yes", "--allow-unsafe")
    assert switched.returncode == 0 and "fixed (verified)" in switched.stdout, switched.stdout + switched.stderr
    mode_entry = entry_id(switched)
    assert journal_mode(app) == "wal"
    assert findings(config) == {}

    history = dbvitals(config, "history", "--format", "json")
    assert history.returncode == 0, history.stderr
    entries = {e["id"]: e for e in json.loads(history.stdout)["entries"]}
    for entry in (index_entry, mode_entry):
        assert (entries[entry]["outcome"], entries[entry]["verified"]) == ("fixed", True), entries[entry]
    shown = dbvitals(config, "history", index_entry)
    assert f"undo sees index {created!r}" in shown.stdout, shown.stdout

    undone = dbvitals(config, "undo", mode_entry, "--yes", "--allow-unsafe")
    assert undone.returncode == 0 and "undone (verified)" in undone.stdout, undone.stdout + undone.stderr
    assert journal_mode(app) == "delete"  # the mode the fix found
    undone = dbvitals(config, "undo", index_entry, "--yes")
    assert undone.returncode == 0 and "undone (verified)" in undone.stdout, undone.stdout + undone.stderr
    assert indexes(app) == before
    assert set(findings(config)) == {"sqlite.fk-missing-index", "sqlite.journal-mode"}
    assert "\n" not in "".join(line for line in undone.stdout.splitlines() if line.startswith("  finding:"))


def test_undo_refuses_when_the_index_changed_since_the_fix(config, app):
    fk = findings(config)["sqlite.fk-missing-index"]
    fixed = dbvitals(config, "fix", fk["id"], "--yes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    (created,) = set(indexes(app)) - {"items_order"}
    conn = sqlite3.connect(app)
    conn.execute(f"DROP INDEX {_quote(created)}")  # someone rebuilt it, wider, under the same name
    conn.execute(f"CREATE INDEX {_quote(created)} ON {_quote(HOSTILE)} (customer_id, note)")
    conn.commit()
    conn.close()
    kept = indexes(app)[created]

    undo = dbvitals(config, "undo", entry_id(fixed), "--yes")
    assert undo.returncode == 3, undo.stdout + undo.stderr
    assert "is not the one this fix created" in undo.stdout
    assert indexes(app)[created] == kept  # not dropped


def test_undo_refuses_when_the_journal_mode_changed_since_the_fix(config, app):
    mode = findings(config)["sqlite.journal-mode"]
    fixed = dbvitals(config, "fix", mode["id"], "--yes", "--allow-unsafe")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    conn = sqlite3.connect(app)
    conn.execute("PRAGMA journal_mode=DELETE")  # only WAL persists in the file: the others read as delete
    conn.close()
    undo = dbvitals(config, "undo", entry_id(fixed), "--yes", "--allow-unsafe")
    assert undo.returncode == 3 and "journal_mode is delete now, not the wal this fix left" in undo.stdout, undo.stdout


def test_checks_never_write_and_fixes_need_allow_fixes(config, app, tmp_path):
    config.write_text(config.read_text().replace("allow_fixes = true", "allow_fixes = false"))
    before = app.read_bytes()
    fk = findings(config)["sqlite.fk-missing-index"]
    assert app.read_bytes() == before  # read-only: not a byte changed, no WAL file made
    refused = dbvitals(config, "fix", fk["id"], "--yes")
    assert refused.returncode == 3 and "allow_fixes = true" in refused.stdout
    assert app.read_bytes() == before


@pytest.mark.parametrize("target, words", [
    ('path = "/nonexistent/dir/app.db"', "unable to open database file"),
    ('url = "sqlite:/x.db"', "path"),
])
def test_bad_input_is_a_message_not_a_traceback(tmp_path, target, words):
    config = tmp_path / "dbvitals.toml"
    config.write_text(f'[targets.app]\nkind = "sqlite"\n{target}\n', encoding="utf-8")
    out = dbvitals(config, "check")
    assert "Traceback" not in out.stderr + out.stdout
    assert words in out.stderr + out.stdout


def test_not_a_database_is_a_connection_finding(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database file" * 100)
    config = tmp_path / "dbvitals.toml"
    config.write_text(f'[targets.app]\nkind = "sqlite"\npath = "{junk}"\n', encoding="utf-8")
    out = dbvitals(config, "check", "--format", "json")
    assert "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    assert report["targets"][0]["state"] == "error"
    assert [f["check"] for f in report["findings"]] == ["sqlite.connection"]
