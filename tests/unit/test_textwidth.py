"""Tables at the terminal's width: columns give way, words are never broken inside a cell,
and the text report follows the terminal (120 columns when piped)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from checks.model import Finding, Report, Severity, TargetState, TargetStatus
from console.cli import parse_arguments
from console.formats.text_format import render
from console.textwidth import Column, fit_columns, fitted, message_width, terminal_width, wrap_words

HISTORY = [Column("entry", 9, words=False), Column("started", 8), Column("user", 2),
           Column("target", 7, words=False), Column("kind", 4), Column("check", 3, words=False),
           Column("object", 6, words=False), Column("outcome", 9), Column("verified", 1), Column("duration", 2)]
ROW = ["27b9fbe1", "2026-12-02 04:30:22", "root", "app_postgres", "fix", "postgres.fk-missing-index",
       "public.follows(followee_id)", "fixed, undone by 1234abcd", "yes", "0.52s"]


def printed(renderable, width: int) -> list[str]:
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True).print(renderable)
    return buffer.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 100, 160])
def test_history_rows_keep_every_identifier_whole(width):
    lines = printed(fitted(HISTORY, [ROW], width), width)
    text = "\n".join(lines)
    assert all(len(line.rstrip()) <= width for line in lines)
    for whole in ("27b9fbe1", "2026-12-02", "04:30:22", "app_postgres", "public.follows(followee_id)", "1234abcd"):
        assert whole in text
    if width >= 160:
        assert "postgres.fk-missing-index" in text and "environ" not in text


def test_the_least_needed_columns_give_way_first():
    shown = fit_columns(HISTORY, [ROW], 80)
    assert [HISTORY[i].name for i in shown][:2] == ["entry", "started"]
    assert "outcome" in [HISTORY[i].name for i in shown] and "verified" not in [HISTORY[i].name for i in shown]


def test_too_narrow_for_the_essentials_prints_records():
    columns = [Column("target", 9, words=False), Column("url", 9, words=False), Column("error", 9)]
    row = ["orders_primary", "postgresql://app@orders-primary.internal.example:5432/orders", "refused"]
    lines = printed(fitted(columns, [row], 70), 70)
    assert [line.split() for line in lines] == [["target", row[0]], ["url", row[1]], ["error", row[2]]]


def test_text_report_at_80_columns_breaks_no_word():
    titles = ["wallet_events.transaction_id type differs from transactions key",
              "Index authorId_1 is redundant with authorId_1_createdAt_-1"]
    findings = [Finding(id=f"{i:012d}", check="postgres.fk-type-mismatch", severity=Severity.HIGH, target="app",
                        object="public.wallet_events.transaction_id", title=t, message="m")
                for i, t in enumerate(titles)]
    report = Report(targets=[TargetStatus("app", "postgres", TargetState.CONNECTED, 1.0)], findings=findings,
                    errors=[], duration_ms=1.0)
    lines = render(report, width=80).splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    words = {w for line in lines for w in line.split()}
    for title in titles:
        assert set(title.split()) <= words  # every word whole, wherever the line wraps


def test_the_text_report_follows_the_terminal_and_is_120_when_piped(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal_width(default=120) == 120  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "80")
    assert terminal_width(default=120) == 80


def test_theme_reaches_the_demo_either_side_of_the_command():
    assert parse_arguments(["--theme", "dbvitals-light", "demo"]).theme == "dbvitals-light"
    assert parse_arguments(["demo", "--theme", "dbvitals-high-contrast"]).theme == "dbvitals-high-contrast"


OUTCOME = ("fixed (verified) in 0.52s, journal entry 20261208-013000-0001 in /home/oncall/.local/state/dbvitals/"
           "journal.jsonl; the check fails no more")


@pytest.mark.parametrize("width", [40, 60, 80, 100])
def test_a_message_wraps_between_words_and_never_splits_one_that_fits(width):
    lines = wrap_words(OUTCOME, width).splitlines()
    assert all(len(line) <= width for line in lines)
    words = [word for line in lines for word in line.split()]
    assert words == OUTCOME.split() or width < len("/home/oncall/.local/state/dbvitals/journal.jsonl;") + 2
    assert "fails" in words and all(line.startswith("  ") for line in lines[1:])


def test_only_a_word_longer_than_a_line_is_cut_and_it_starts_a_line_of_its_own():
    path = "/" + "d" * 60
    lines = wrap_words(f"    1. read {path} now", 40).splitlines()
    assert lines[0] == "    1. read" and lines[1] == "      " + path[:34]
    assert "".join(line.strip() for line in lines[1:]).startswith(path)
    assert wrap_words("a\n\n  b", 40) == "a\n\n  b"  # blank lines and indentation kept


def test_messages_are_wrapped_at_the_terminal_and_left_whole_when_piped(monkeypatch):
    monkeypatch.delenv("DBVITALS_WIDTH", raising=False)
    monkeypatch.setenv("COLUMNS", "72")  # exported by a shell: not a reason to wrap what a script reads
    assert message_width(io.StringIO()) is None and wrap_words(OUTCOME, None) == OUTCOME
    monkeypatch.setenv("DBVITALS_WIDTH", "64")  # what --width 64 sets
    assert message_width(io.StringIO()) == 64
