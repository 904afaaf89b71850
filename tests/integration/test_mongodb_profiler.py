"""The profiler is changed only on request, as an action of the pipeline (refused without
allow_fixes, journaled, verified, undoable), and always given back its previous setting, also
when the process is told to stop by SIGINT, SIGTERM or SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymongo import AsyncMongoClient

from checks.mongodb.profiler import read_profiler_setting, restore_profiler, set_profiler
from console.cli import main


def _config(tmp_path, url: str, environment: str = "development", *, allow_fixes: bool = True):
    path = tmp_path / "dbvitals.toml"
    path.write_text(f'journal = "{tmp_path / "journal.jsonl"}"\n\n'
                    f'[targets.app]\nkind = "mongodb"\nurl = "{url}"\nenvironment = "{environment}"\n'
                    f"allow_fixes = {'true' if allow_fixes else 'false'}\n")
    return str(path)


def _journal(tmp_path) -> list[dict]:
    latest: dict[str, dict] = {}
    for line in (tmp_path / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        latest[entry["id"]] = entry
    return list(latest.values())


def _level(mongo_db) -> tuple[int, int]:
    state = mongo_db.db.command("profile", -1)
    return state["was"], state["slowms"]


def test_set_and_restore_round_trip(mongo_db):
    async def go():
        client = AsyncMongoClient(mongo_db.url)
        try:
            before = await set_profiler(client, mongo_db.name, 1, slowms=7)
            during = await read_profiler_setting(client, mongo_db.name)
            after = await restore_profiler(client, before)
            return before, during, after
        finally:
            await client.close()

    before, during, after = asyncio.run(go())
    assert (during.level, during.slowms) == (1, 7)
    assert (after.level, after.slowms) == (before.level, before.slowms) == (0, 100)


def test_cli_shows_the_setting_without_changing_it(mongo_db, tmp_path, capsys):
    assert main(["profiler", "--config", _config(tmp_path, mongo_db.url), "--target", "app"]) == 0
    out = capsys.readouterr().out
    assert f"{mongo_db.name}: level 0 (off), slowms 100" in out
    assert mongo_db.db.command("profile", -1)["was"] == 0


def test_cli_profiles_for_a_while_then_restores(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url)
    assert main(["profiler", "--config", config, "--target", "app", "--level", "1", "--slowms", "20", "--for", "0.3s"]) == 0
    out = capsys.readouterr().out
    assert "was    " in out and "level 0 (off), slowms 100" in out
    assert "now    " in out and "level 1 (slow operations), slowms 20" in out
    assert "restored" in out
    state = mongo_db.db.command("profile", -1)
    assert (state["was"], state["slowms"]) == (0, 100)


def test_cli_refuses_production_without_yes(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url, environment="production")
    assert main(["profiler", "--config", config, "--target", "app", "--level", "1"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert mongo_db.db.command("profile", -1)["was"] == 0


def test_setting_the_profiler_is_refused_without_allow_fixes(mongo_db, tmp_path, capsys):
    """Read-only means read-only: a target without allow_fixes keeps its profiler, and the
    refusal is journaled with the same words a fix's refusal has."""
    config = _config(tmp_path, mongo_db.url, allow_fixes=False)
    for extra in ([], ["--keep"], ["--for", "0.2s"]):
        assert main(["profiler", "--config", config, "--target", "app", "--level", "2", *extra]) == 3, extra
        out = capsys.readouterr().out
        assert "target app does not allow fixes (set allow_fixes = true in [targets.app] to permit them)" in out
        assert _level(mongo_db) == (0, 100)
    entries = _journal(tmp_path)
    assert entries and all(e["outcome"] == "refused" for e in entries)


def test_dry_run_shows_the_change_and_its_inverse_and_changes_nothing(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url)
    assert main(["profiler", "--config", config, "--target", "app", "--level", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '{"profile": 2}' in out.replace("'", '"') and '"slowms": 100' in out.replace("'", '"'), out
    assert "dry run: nothing applied" in out
    assert _level(mongo_db) == (0, 100) and not (tmp_path / "journal.jsonl").exists()


def test_a_kept_setting_is_journaled_verified_and_undone_with_undo(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url)
    assert main(["profiler", "--config", config, "--target", "app", "--level", "1", "--slowms", "30", "--keep"]) == 0
    assert _level(mongo_db) == (1, 30)
    [entry] = _journal(tmp_path)
    assert entry["kind"] == "fix" and entry["outcome"] == "fixed" and entry["verified"] is True
    assert entry["finding"]["check"] == "mongodb.profiler" and entry["steps_done"] == 1
    assert entry["steps"][0]["command"] == {"profile": 1, "slowms": 30}
    assert entry["inverse"][0]["command"] == {"profile": 0, "slowms": 100, "sampleRate": 1.0}
    assert f"dbvitals undo {entry['id']}" in capsys.readouterr().out
    assert main(["history", entry["id"], "--config", config]) == 0
    assert "mongodb.profiler" in capsys.readouterr().out
    assert main(["undo", entry["id"], "--yes", "--config", config]) == 0
    assert "undone (verified)" in capsys.readouterr().out
    assert _level(mongo_db) == (0, 100)
    undo = [e for e in _journal(tmp_path) if e["undoes"] == entry["id"]]
    assert len(undo) == 1 and undo[0]["outcome"] == "fixed" and undo[0]["verified"] is True
    assert main(["undo", entry["id"], "--yes", "--config", config]) == 3  # already undone


def test_profiling_for_a_while_journals_the_change_and_its_restore(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url)
    assert main(["profiler", "--config", config, "--target", "app", "--level", "2", "--for", "0.2s"]) == 0
    assert _level(mongo_db) == (0, 100)
    change, restore = _journal(tmp_path)
    assert (change["kind"], change["outcome"], change["verified"]) == ("fix", "fixed", True)
    assert (restore["kind"], restore["undoes"], restore["outcome"], restore["verified"]) == ("undo", change["id"], "fixed", True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_during_for_restores_the_profiler_and_journals_it(mongo_db, tmp_path, signum):
    """`--for 10m` told to stop (Ctrl-C, kill, a closed terminal): the previous setting is put
    back and journaled before the process exits 128 + the signal."""
    config = _config(tmp_path, mongo_db.url)
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from console.cli import main; sys.exit(main(sys.argv[1:]))",
         "profiler", "--config", config, "--target", "app", "--level", "2", "--for", "10m"],
        cwd=Path(__file__).parents[2], env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while _level(mongo_db)[0] != 2 or "profiling until" not in _peek(tmp_path, process):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=5)
            time.sleep(0.05)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 128 + signum, (process.returncode, out, err)
    assert "restored" in out and "Traceback" not in err, (out, err)
    assert _level(mongo_db) == (0, 100)
    change, restore = _journal(tmp_path)
    assert change["outcome"] == "fixed" and restore["undoes"] == change["id"] and restore["outcome"] == "fixed"


def _peek(tmp_path, process) -> str:
    """Whether the change is journaled as done (the process then waits out --for)."""
    path = tmp_path / "journal.jsonl"
    if not path.exists():
        return ""
    return "profiling until" if any(e["outcome"] == "fixed" for e in _journal(tmp_path)) else ""
