"""The fix journal: append-only snapshots, the last one wins, unfinished entries stay visible."""

from __future__ import annotations

import json

import pytest

from checks.actions.journal import ENTRY_ID_HEX, KINDS, Journal, JournalEntry, JournalError
from checks.actions.kill import plan_kill
from checks.postgres import activity as pg_activity
from checks.activity.session import ActivityWatch
from checks.config import config_from_dict
from checks.fixes import fix_entry
from checks.model import Fix, FixSafety, FixStep
from tests.support import settings_for


def entry(entry_id: str = "ab12cd34", **changes) -> JournalEntry:
    base = dict(
        id=entry_id, kind="fix", started_at="2026-01-01T00:00:00.000+00:00", user="alice", host="box",
        target="pg", engine="postgres", url="postgresql://app:***@db/app", environment="production",
        finding={"id": "f" * 12, "check": "postgres.fk-missing-index", "object": "public.orders", "title": "t",
                 "severity": "medium"},
        summary="create index", safety="safe", lock="SHARE UPDATE EXCLUSIVE",
        steps=[{"language": "sql", "command": "CREATE INDEX CONCURRENTLY i ON t (c)", "description": "",
                "database": None, "transactional": False}],
        inverse=[],
    )
    base.update(changes)
    return JournalEntry(**base)


def test_started_then_finished_is_one_entry_in_its_final_state(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    started = entry()
    journal.append(started)
    started.outcome, started.steps_done, started.verified = "fixed", 1, True
    journal.append(started)
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    assert len(lines) == 2  # append-only: the start is never rewritten
    assert [json.loads(line)["outcome"] for line in lines] == [None, "fixed"]
    [only] = journal.entries()
    assert (only.state, only.verified, only.steps_done) == ("fixed", True, 1)


def test_an_entry_without_its_end_says_it_did_not_finish(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(entry())
    [only] = journal.entries()
    assert only.state == "unfinished"
    assert not only.finished


def test_a_line_cut_short_by_a_crash_is_reported_and_the_rest_read(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append(entry("11111111"))
    with path.open("a") as handle:
        handle.write('{"schema": "dbvitals.journal/1", "id": "2222')
    assert [e.id for e in journal.entries()] == ["11111111"]
    assert len(journal.problems) == 1 and ":2:" in journal.problems[0]


@pytest.mark.parametrize(
    "query, expected",
    [("ab12cd34", "ab12cd34"), ("ab12", "ab12cd34"), ("ab1", None), ("ffff", None)],
)
def test_get_by_id_or_unique_prefix(tmp_path, query, expected):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(entry("ab12cd34"))
    journal.append(entry("cd99ee00"))
    found = journal.get(query)
    assert (found.id if found else None) == expected


def test_an_ambiguous_prefix_is_an_error(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(entry("ab12cd34"))
    journal.append(entry("ab12ffff"))
    with pytest.raises(LookupError, match="ambiguous"):
        journal.get("ab12")


def test_undone_by_links_a_successful_undo_only(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(entry("aaaa0000", outcome="fixed"))
    journal.append(entry("bbbb0000", kind="undo", undoes="aaaa0000", outcome="failed"))
    assert journal.undone_by("aaaa0000") is None
    journal.append(entry("cccc0000", kind="undo", undoes="aaaa0000", outcome="fixed"))
    assert journal.undone_by("aaaa0000").id == "cccc0000"


def test_journal_file_is_private(tmp_path):
    journal = Journal(tmp_path / "state" / "j.jsonl")
    journal.append(entry())
    assert (tmp_path / "state" / "j.jsonl").stat().st_mode & 0o077 == 0


def test_default_path_is_under_the_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert Journal.for_settings(config_from_dict({})).path == tmp_path / "xdg" / "dbvitals" / "journal.jsonl"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()  # a home that does not exist is no home (see checks/state.py)
    assert Journal.for_settings(config_from_dict({})).path == tmp_path / "home" / ".local" / "state" / "dbvitals" / "journal.jsonl"
    configured = config_from_dict({"journal": str(tmp_path / "mine.jsonl")})
    assert Journal.for_settings(configured).path == tmp_path / "mine.jsonl"


@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "42", "null", '{"id": 7}'])
def test_a_valid_json_line_that_is_not_an_entry_is_skipped_with_a_warning(tmp_path, capsys, line):
    from console.cli import main

    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append(entry("11111111"))
    with path.open("a") as handle:
        handle.write(line + "\n")
    journal.append(entry("33333333"))
    assert [e.id for e in journal.entries()] == ["11111111", "33333333"]
    assert len(journal.problems) == 1 and ":2: unreadable line" in journal.problems[0]
    config = tmp_path / "dbvitals.toml"
    config.write_text(f'journal = "{path}"\n')
    assert main(["history", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "11111111" in captured.out and "33333333" in captured.out
    assert f"warning: {path}:2: unreadable line" in captured.err and "Traceback" not in captured.err


def test_a_journal_path_that_is_a_directory_is_a_config_error_at_load(tmp_path, capsys):
    from console.cli import main

    config = tmp_path / "dbvitals.toml"
    config.write_text(f'journal = "{tmp_path}"\n\n[targets.pg]\nkind = "postgres"\n'
                      'url = "postgresql://postgres@127.0.0.1:1/none"\nallow_fixes = true\n')
    for command in (["history"], ["fix", "abcdef12", "--yes"], ["undo", "abcd", "--yes"]):
        assert main([*command, "--config", str(config)]) == 2, command
        err = capsys.readouterr().err
        assert f"journal: {tmp_path} is a directory" in err, err


BAD_LINES = ["[1, 2]", '"text"', "42", '{"id": "abcd0000", "kind": "fix", "steps": "x"}',
             json.dumps({**entry("abcd1111").to_dict(), "steps": "not a list"}),
             json.dumps({**entry("abcd2222").to_dict(), "finding": ["a"]}),
             json.dumps({**entry("abcd3333").to_dict(), "inverse": [1, 2]})]


@pytest.mark.parametrize("where", ["configured", "state-dir"])
def test_lines_that_are_not_entries_never_break_history_or_undo(tmp_path, capsys, monkeypatch, where):
    """Valid JSON that is not an entry (a list, a string, a number, an object with fields of the
    wrong type) is skipped with a warning naming its line, by history and undo alike, whether
    the journal is configured or in the default state directory."""
    from console.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "mine.jsonl" if where == "configured" else tmp_path / "xdg" / "dbvitals" / "journal.jsonl"
    journal = Journal(path)
    journal.append(entry("11111111"))
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in BAD_LINES))
    config = tmp_path / "dbvitals.toml"
    config.write_text((f'journal = "{path}"\n' if where == "configured" else "")
                      + '[targets.pg]\nkind = "postgres"\nurl = "postgresql://postgres@127.0.0.1:1/none"\n')
    for command, code in ((["history"], 0), (["history", "1111"], 0), (["history", "--format", "json"], 0),
                          (["undo", "abcd"], 3), (["undo", "abcd1111", "--dry-run"], 3), (["undo", "1111", "--dry-run"], 3)):
        assert main([*command, "--config", str(config)]) == code, command
        err = capsys.readouterr().err
        assert "internal error" not in err and "Traceback" not in err, (command, err)
        for number in range(2, 2 + len(BAD_LINES)):
            assert f"warning: {path}:{number}: unreadable line" in err, (command, number, err)


def test_a_default_journal_path_that_is_a_directory_is_one_clear_error(tmp_path, capsys, monkeypatch):
    """No `journal` key: the journal is $XDG_STATE_HOME/dbvitals/journal.jsonl; a directory there
    is an error the user can act on (exit 2) before anything runs, never an internal error."""
    from console.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "xdg" / "dbvitals" / "journal.jsonl"
    path.mkdir(parents=True)
    config = tmp_path / "dbvitals.toml"
    config.write_text('[targets.pg]\nkind = "postgres"\nurl = "postgresql://postgres@127.0.0.1:1/none"\n'
                      "allow_fixes = true\n")
    for command in (["history"], ["fix", "abcdef12", "--yes"], ["undo", "abcd", "--yes"]):
        assert main([*command, "--config", str(config)]) == 2, command
        err = capsys.readouterr().err
        assert f"journal: {path} is a directory" in err and "internal error" not in err, (command, err)
    with pytest.raises(JournalError, match="is a directory"):
        Journal(path).append(entry())


def test_fix_undo_cancel_and_terminate_write_one_entry_shape(tmp_path):
    """Every action of the pipeline journals the same fields, the same id length, masked."""
    settings = settings_for(pg={"kind": "postgres", "url": "postgresql://app:s3cret-pw@db/app", "allow_fixes": True})
    target = settings.targets["pg"]
    fix = Fix(summary="create index", steps=(FixStep("sql", "CREATE INDEX CONCURRENTLY i ON t (c)", transactional=False),),
              safety=FixSafety.SAFE, inverse=(FixStep("sql", "DROP INDEX CONCURRENTLY i", transactional=False),))
    finding = {"id": "f" * 12, "check": "postgres.fk-missing-index", "object": "public.t", "title": "t", "severity": "low"}
    fixed = fix_entry("fix", "pg", target, finding, fix, fix.steps, fix.inverse)
    undone = fix_entry("undo", "pg", target, finding, fix, fix.inverse, fix.steps, undoes=fixed.id)
    sample = pg_activity.sample_from_rows("pg", [
        {"pid": 41, "datname": "app", "usename": "app", "application_name": "worker", "client": None,
         "state": "active", "wait_event_type": None, "wait_event": None, "xact_age_s": 9.0, "query_age_s": 9.0,
         "state_age_s": 9.0, "query_start": "2026-01-01 00:00:00+00", "blocked_by": [],
         "query": "ALTER ROLE app PASSWORD 's3cret-pw'"},
    ])
    watch = ActivityWatch(settings, ["pg"])
    cancelled = plan_kill(settings, watch, "pg", sample, "41", terminate=False, allow_unsafe=True).entry
    terminated = plan_kill(settings, watch, "pg", sample, "41", terminate=True, allow_unsafe=True).entry
    journal = Journal(tmp_path / "j.jsonl")
    for written in (fixed, undone, cancelled, terminated):
        journal.append(written)
    text = (tmp_path / "j.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len({frozenset(line) for line in lines}) == 1
    assert [line["kind"] for line in lines] == list(KINDS)
    assert all(len(line["id"]) == ENTRY_ID_HEX and line["schema"] == "dbvitals.journal/1" for line in lines)
    assert [line["finding"]["check"] for line in lines[2:]] == ["activity", "activity"]
    assert "s3cret-pw" not in text
    assert [e.kind for e in journal.entries()] == list(KINDS)


def test_a_cancel_journaled_by_an_older_version_reads_as_a_cancel(tmp_path):
    path = tmp_path / "j.jsonl"
    old = entry("0123456789ab", finding={"id": "activity:41", "check": "activity", "object": "41",
                                          "title": "cancel 41", "severity": "info"}).to_dict()
    path.write_text(json.dumps({"schema": "dbvitals.journal/1", **old}) + "\n")
    journal = Journal(path)
    [read] = journal.entries()
    assert (read.kind, read.id) == ("cancel", "0123456789ab")
    assert journal.get("01234567").id == "0123456789ab"
