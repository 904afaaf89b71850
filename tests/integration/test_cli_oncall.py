"""The command line as an on-call engineer types it (#23): options where people put them, no
console without a terminal, no passing gate that lost its output, the text gate report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from checks.model import Finding, Report, Severity, TargetState, TargetStatus
from checks.snapshots.store import SnapshotStore
from tests.integration.test_cli import ROOT, dbvitals, write_config


def redis_config(tmp_path: Path, redis_db) -> Path:
    return write_config(tmp_path / "dbvitals.toml", {"cache": {"kind": "redis", "url": redis_db.url}})


def test_snapshot_save_takes_config_after_the_command_and_its_action(tmp_path, redis_db):
    """The README's deploy gate: `dbvitals snapshot save --config FILE --label X`."""
    config = redis_config(tmp_path, redis_db)
    store = tmp_path / "snapshots.db"
    saved = dbvitals("snapshot", "--store", str(store), "save", "--config", str(config), "--label", "before-deploy",
                     "--check", "redis.connection", "--no-activity")
    assert saved.returncode == 0, saved.stderr
    assert "(before-deploy): 1 targets" in saved.stdout
    listed = dbvitals("snapshot", "list", "--format", "json", "--store", str(store), "--config", str(config))
    assert [s["label"] for s in json.loads(listed.stdout)["snapshots"]] == ["before-deploy"]
    twice = dbvitals("--config", str(config), "snapshot", "save", "--config", str(config))
    assert twice.returncode == 2 and "--config given in two places" in twice.stderr
    assert "Traceback" not in twice.stderr


def test_the_console_without_a_terminal_says_how_to_get_a_report_and_exits_2(tmp_path):
    for argv in ([], ["ui"]):
        result = subprocess.run([sys.executable, "-m", "console", *argv], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, cwd=tmp_path, timeout=5,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert "the console needs a terminal" in line and "`dbvitals check --format text`" in line
        assert result.stdout == ""


def test_a_report_cut_by_a_closed_pipe_fails_with_one_line(tmp_path, redis_db):
    """`dbvitals check --format json | head -c 1`: the reader is gone before the report is
    written (here closed before the process starts, so the write always meets it closed)."""
    config = redis_config(tmp_path, redis_db)
    reader, writer = os.pipe()
    os.close(reader)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "console", "check", "--config", str(config), "--format", "json",
             "--check", "redis.connection", "--fail-on", "never"],
            stdout=writer, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
        )
    finally:
        os.close(writer)
    assert process.returncode == 141
    assert process.stderr.splitlines() == [
        "dbvitals: error: standard output was closed before the output was written whole (broken pipe)"]


def test_the_text_gate_report_ends_with_the_findings_that_failed_it(tmp_path, redis_db):
    config = redis_config(tmp_path, redis_db)  # a bare URL: medium findings (no socket_timeout...)
    found = dbvitals("check", "--config", str(config), "--check", "redis.*", "--format", "json", "--fail-on", "never")
    failing = sorted(f["id"] for f in json.loads(found.stdout)["findings"]
                     if f["severity"] in {"medium", "high", "critical"})
    assert failing
    failed = dbvitals("check", "--config", str(config), "--check", "redis.*", "--fail-on", "medium")
    assert failed.returncode == 1, failed.stderr
    lines = failed.stdout.rstrip().splitlines()
    summary = next(i for i, line in enumerate(lines) if " check runs on 1 target" in line)
    tail = lines[summary + 1:]
    assert tail[0].startswith(f"gate failed (--fail-on medium): {len(failing)} finding")
    assert sorted(line.split()[-1] for line in tail[2:]) == failing  # after the header row: one row each
    passed = dbvitals("check", "--config", str(config), "--check", "redis.*", "--fail-on", "never")
    assert passed.returncode == 0 and passed.stdout.rstrip().splitlines()[-1] == "gate passed (--fail-on never)"


def test_snapshot_show_lists_the_worst_first_then_by_target_and_check(tmp_path, redis_db):
    config = redis_config(tmp_path, redis_db)
    order = [("a1", Severity.INFO, "cache", "redis.x"), ("b2", Severity.CRITICAL, "cache", "redis.z"),
             ("c3", Severity.LOW, "web", "redis.a"), ("d4", Severity.CRITICAL, "cache", "redis.a"),
             ("e5", Severity.HIGH, "web", "redis.b")]
    findings = [Finding(id=i, check=check, severity=severity, target=target, object="o", title="t", message="m")
                for i, severity, target, check in order]
    targets = [TargetStatus(name, "redis", TargetState.CONNECTED) for name in ("cache", "web")]
    store = tmp_path / "s.db"
    SnapshotStore(store).save(Report(targets=targets, findings=findings, errors=[], duration_ms=1.0), {})
    shown = dbvitals("snapshot", "--store", str(store), "show", "latest", "--format", "json", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert [f["id"] for f in json.loads(shown.stdout)["findings"]] == ["d4", "b2", "e5", "c3", "a1"]
    text = dbvitals("snapshot", "--store", str(store), "show", "latest", "--config", str(config)).stdout
    rows = [line.split()[:2] for line in text.splitlines() if line.startswith("  ") and line.split()[1] in "a1b2c3d4e5"]
    assert rows == [["critical", "d4"], ["critical", "b2"], ["info", "a1"], ["high", "e5"], ["low", "c3"]]


def test_fix_finds_the_id_of_the_last_check_refuses_one_it_does_not_know_and_wraps_between_words(tmp_path, pg_db):
    pg_db.execute("CREATE TABLE parent (id int PRIMARY KEY)")
    pg_db.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))")
    config = tmp_path / "dbvitals.toml"
    config.write_text(f'[targets.orders]\nkind = "postgres"\nurl = "{pg_db.url}"\nallow_fixes = true\n')
    check = ["--config", str(config), "--check", "postgres.fk-missing-index"]
    unknown = dbvitals("fix", "0123456789ab", "--dry-run", *check[:2])
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.splitlines() == [
        f"dbvitals: error: finding 0123456789ab is not in the last report of this config: `dbvitals check "
        f"--config {config}` finds the current ones (then `dbvitals fix ID`), or give it as TARGET/CHECK/ID"]

    found = dbvitals("check", *check, "--format", "json", "--fail-on", "never")
    [finding] = json.loads(found.stdout)["findings"]
    plain = dbvitals("fix", finding["id"], "--dry-run", *check[:2])
    assert plain.returncode == 0, plain.stderr
    assert max(len(line) for line in plain.stdout.splitlines()) > 60  # long lines, piped: one line each
    wrapped = dbvitals("fix", finding["id"], "--dry-run", "--width", "60", *check[:2])
    assert wrapped.returncode == 0, wrapped.stderr
    assert all(len(line) <= 60 for line in wrapped.stdout.splitlines()), wrapped.stdout
    assert max(len(word) for word in plain.stdout.split()) < 58  # so no word has to be cut
    assert wrapped.stdout.split() == plain.stdout.split()  # every word whole, in order
