"""The command line as an on-call engineer types it (#23): options where people put them, no
console without a terminal, no passing gate that lost its output, the text gate report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    listed = dbvitals("snapshot", "--store", str(store), "list", "--format", "json", "--config", str(config))
    assert [s["label"] for s in json.loads(listed.stdout)["snapshots"]] == ["before-deploy"]
    twice = dbvitals("--config", str(config), "snapshot", "save", "--config", str(config))
    assert twice.returncode == 2 and "--config given both before and after the command" in twice.stderr
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
