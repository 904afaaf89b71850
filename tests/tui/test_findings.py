"""Pilot tests of the findings table: filters, sorting, the detail screen, copy, export, help."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input

from checks.model import Severity
from console.screens.confirm_fix import ConfirmFixModal
from console.screens.detail import FindingDetailScreen
from console.screens.history import FixHistoryScreen, HistoryEntryScreen
from console.screens.export import ExportModal
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from console.widgets.evidence_view import EvidenceView
from console.widgets.findings_table import FindingsTable
from console.widgets.fix_view import StepsView
from tests.tui.helpers import settle, synthetic_app, synthetic_findings, wait_until

SIZES = [(80, 24), (120, 40)]


def table(app) -> FindingsTable:
    return app.main_screen.query_one(FindingsTable)


@pytest.mark.parametrize("size", SIZES)
async def test_filter_by_free_text(size):
    app = synthetic_app(30)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("slash", *"00007")
        await settle(pilot)
        assert [f.object for f in table(app).shown] == ["pattern:00007:*"]
        assert "1 of 30" in str(app.main_screen.query_one("#findings-title").render())
        await pilot.press("enter", "x")
        await settle(pilot)
        assert len(table(app).shown) == 30


async def test_filter_by_severity_keys_and_query_tokens():
    app = synthetic_app(30)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("1")
        await settle(pilot)
        assert {f.severity for f in table(app).shown} == {Severity.CRITICAL}
        await pilot.press("2")
        await settle(pilot)
        assert {f.severity for f in table(app).shown} == {Severity.CRITICAL, Severity.HIGH}
        await pilot.press("x", "slash", *"sev:low target:orders")
        await settle(pilot)
        shown = table(app).shown
        assert shown and all(f.severity is Severity.LOW and f.target == "orders" for f in shown)


async def test_filter_by_target_and_check_cycles():
    app = synthetic_app(30)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("t")
        await settle(pilot)
        assert {f.target for f in table(app).shown} == {"orders"}
        await pilot.press("t")
        await settle(pilot)
        assert {f.target for f in table(app).shown} == {"sessions"}
        await pilot.press("x", "C")
        await settle(pilot)
        assert len({f.check for f in table(app).shown}) == 1


async def test_sort_cycles_and_reverses():
    app = synthetic_app(30)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        # Urgency: the down target (events) first, then production (orders), each by severity.
        order = [({"events": 0, "orders": 1}.get(f.target, 2), -f.severity.rank) for f in table(app).shown]
        assert order == sorted(order)
        await pilot.press("s")
        await settle(pilot)
        targets = [f.target for f in table(app).shown]
        assert targets == sorted(targets)
        await pilot.press("S")
        await settle(pilot)
        assert [f.target for f in table(app).shown] == sorted(targets, reverse=True)


@pytest.mark.parametrize("size", SIZES)
async def test_open_a_finding_shows_rationale_evidence_and_fix(size):
    app = synthetic_app(12)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 12)
        await pilot.press("slash", *"target:orders", "enter")
        await settle(pilot)
        chosen = table(app).selected()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FindingDetailScreen))
        screen = app.screen
        assert screen.finding == chosen
        text = " ".join(str(w.render()) for w in screen.query("Static"))
        assert chosen.title in text
        assert "Deleting a parent row scans" in text  # the registry check's rationale
        assert "SHARE UPDATE EXCLUSIVE" in text and "safe" in text
        evidence = screen.query_one(EvidenceView)
        drawn = [" ".join(line.text.split()) for line in evidence.render_lines(evidence.region.reset_offset)]
        assert drawn[:4] == [f"rows {chosen.evidence['rows']:,}", "scans seq 120", "index 0", "columns • customer_id"]
        assert screen.query_one("#fix-steps", StepsView).steps == chosen.fix.steps
        assert screen.query_one("#fix-inverse", StepsView).steps == chosen.fix.inverse
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_copy_fix_and_evidence_go_to_the_clipboard():
    app = synthetic_app(12)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 12)
        await pilot.press("slash", *"target:orders", "enter")
        await settle(pilot)
        await pilot.press("c")
        runnable = [line for line in app.clipboard.splitlines() if line.strip() and not line.startswith("--")]
        # Pasted into psql, only the fix runs: its inverse is there, but commented out.
        assert runnable == ["CREATE INDEX CONCURRENTLY table_00000_customer_id_idx ON public.table_00000 (customer_id);"]
        assert "-- DROP INDEX CONCURRENTLY public.table_00000_customer_id_idx" in app.clipboard
        await pilot.press("y")
        assert json.loads(app.clipboard)["evidence"]["scans"] == {"seq": 120, "index": 0}


@pytest.mark.parametrize("suffix", ["json", "md"])
async def test_export_shows_the_path_lets_the_user_change_it_and_says_where_it_went(tmp_path, monkeypatch, suffix):
    monkeypatch.chdir(tmp_path)
    app = synthetic_app(12)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 12)
        await pilot.press("1")
        await settle(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportModal))
        box = app.screen.query_one("#export-path", Input)
        assert box.value.startswith(str(tmp_path)) and box.value.endswith(".json")  # shown in full before writing
        target = tmp_path / "handover" / f"findings.{suffix}"
        target.parent.mkdir()
        box.value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.written is not None)
        said = str(app.screen.query_one("#export-result").render())
        assert "Written 3 findings to" in said and str(target) in said.replace("\n", "")
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
    assert not list(tmp_path.glob("dbvitals-findings-*"))  # nothing written where the console started
    text = target.read_text()
    assert target.stat().st_mode & 0o777 == 0o600
    if suffix == "json":
        doc = json.loads(text)
        assert {f["severity"] for f in doc["findings"]} == {"critical"} and doc["filter"] == "severity:critical"
        assert len(doc["findings"]) == 3
    else:
        assert text.startswith("# dbvitals findings") and text.count("| critical |") == 3


async def test_the_count_never_reads_as_hidden_while_results_arrive():
    app = synthetic_app(0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.ingest([], synthetic_findings(3))
        # Before the table's debounce has run: the title must not say "0 of 3".
        assert " of " not in str(app.main_screen.query_one("#findings-title").render())
        await settle(pilot)
        assert "Findings 3" in str(app.main_screen.query_one("#findings-title").render())


async def test_help_lists_every_binding():
    app = synthetic_app(3)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = app.screen.rows
        described = {does for _, _, does in rows}
        for binding in [*app.BINDINGS, *MainScreen.BINDINGS, *FindingDetailScreen.BINDINGS,
                        *FixHistoryScreen.BINDINGS, *HistoryEntryScreen.BINDINGS, *ConfirmFixModal.BINDINGS]:
            assert (binding.tooltip or binding.description) in described
        keys = {(where, key) for where, key, _ in rows}
        assert {("main", "tab"), ("fix history", "u, z"), ("findings table", "up, k"), ("findings table", "down, j"),
                ("confirm fix", "n, esc, q")} <= keys
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_ten_thousand_findings_filter():
    app = synthetic_app(10_000)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 10_000)
        await pilot.press("slash", *"09999")
        await settle(pilot)
        assert [f.object for f in table(app).shown] == ["public.table_09999"]
        await pilot.press("escape", "x", "end")
        await settle(pilot)
        assert table(app).cursor == 9_999


async def test_enter_on_a_target_shows_its_findings():
    app = synthetic_app(30)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 30)
        await pilot.press("shift+tab")
        assert app.focused.id == "targets"
        await pilot.press("down", "enter")
        await settle(pilot)
        assert {f.target for f in table(app).shown} == {"sessions"}
        assert app.focused is table(app)


async def test_cursor_stays_on_the_most_urgent_finding_until_the_user_moves():
    findings = synthetic_findings(12)
    low = [f for f in findings if f.severity is Severity.LOW]
    app = synthetic_app(0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.ingest([], low)  # the first results to arrive are not the most urgent
        await settle(pilot)
        assert table(app).selected() in low
        app.ingest([], findings)
        await settle(pilot)
        assert table(app).cursor == 0 and table(app).selected().severity is Severity.CRITICAL
        await pilot.press("j", "j", "k")
        await settle(pilot)
        chosen = table(app).selected()
        assert table(app).cursor == 1
        app.controller.store.remove(table(app).shown[0].id)  # once moved, the cursor follows its finding
        app.main_screen.refresh_findings()
        await settle(pilot)
        assert table(app).selected() == chosen


async def test_q_and_escape_go_back_from_every_screen_and_q_quits_only_the_main_one():
    app = synthetic_app(12)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app).shown) == 12)
        for opener, closer in [("enter", "q"), ("enter", "escape"), ("question_mark", "q"),
                               ("question_mark", "escape"), ("h", "q"), ("h", "escape")]:
            await pilot.press(opener)
            await wait_until(pilot, lambda: not isinstance(app.screen, MainScreen))
            await pilot.press(closer)
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running)
