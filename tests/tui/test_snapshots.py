"""SVG snapshots at 80×24 (an SSH session) and 120×40, from synthetic data: no latencies,
no timestamps, nothing that changes between runs. `--snapshot-update` rewrites them."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from checks.fixes import FixPlan
from checks.model import FixSafety, FixStep
from console.screens.confirm_fix import ConfirmFixModal
from console.widgets.findings_table import FindingsTable
from tests.tui.helpers import settle, synthetic_app, synthetic_findings, wait_until

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def ready(count: int, *keys: str):
    async def run_before(pilot) -> None:
        table = pilot.app.main_screen.query_one(FindingsTable)
        await wait_until(pilot, lambda: len(table.shown) == count)
        for key in keys:
            # One at a time past the table's debounce: Enter opens what the filter shows.
            await pilot.press(key)
            await settle(pilot)
        if keys:
            # A new screen restyles for a few frames after it mounts.
            await pilot.pause(0.4)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, size):
    """Targets (production marked, one down) above every finding, by severity."""
    assert snap_compare(synthetic_app(12), terminal_size=size, run_before=ready(12))


@pytest.mark.parametrize("size", SIZES)
def test_filtered_by_severity_and_text(snap_compare, size):
    """`2` keeps high findings, `/` narrows by text; the title counts what is shown."""
    assert snap_compare(synthetic_app(30), terminal_size=size, run_before=ready(30, "2", "slash", *"orders", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_finding_detail(snap_compare, size):
    """Title, rationale, evidence table and the fix with safety, lock and inverse."""
    assert snap_compare(synthetic_app(12), terminal_size=size, run_before=ready(12, "t", "enter"))


def confirm_plan() -> FixPlan:
    """The plan of the first synthetic fix on the production target."""
    finding = next(f for f in synthetic_findings(12) if f.target == "orders")
    assert finding.fix is not None
    return FixPlan(finding=finding, target="orders", steps=finding.fix.steps, inverse=finding.fix.inverse,
                   safety=finding.fix.safety, lock=finding.fix.lock, refusals=[], summary=finding.fix.summary,
                   url="postgresql://app@orders.internal:5432/orders")


@pytest.mark.parametrize("size", SIZES)
def test_confirm_fix_on_production(snap_compare, size):
    """Exactly what will run and where; production asks for the target's name."""

    async def run_before(pilot) -> None:
        await ready(12)(pilot)
        plan = confirm_plan()
        await pilot.app.push_screen(ConfirmFixModal(plan, target="orders", where=plan.url, production=True))
        pilot.app.screen.query_one(Input).cursor_blink = False
        await pilot.pause(0.4)

    assert snap_compare(synthetic_app(12), terminal_size=size, run_before=run_before)


def test_confirm_unsafe_fix_keeps_its_header_at_80x24(snap_compare):
    """An unsafe fix: target, URL, UNSAFE and the reason stay on screen above the scrolling steps;
    the buttons are inside the box; the footer shows the dialog's keys."""
    finding = next(f for f in synthetic_findings(12) if f.target == "orders")
    widen = tuple(FixStep("sql", f"ALTER TABLE public.audit_log_{i} ALTER COLUMN id TYPE bigint;") for i in range(6))
    narrow = tuple(FixStep("sql", f"ALTER TABLE public.audit_log_{i} ALTER COLUMN id TYPE integer;") for i in range(6))

    async def run_before(pilot) -> None:
        await ready(12)(pilot)
        plan = FixPlan(finding=finding, target="orders", steps=widen, inverse=narrow, safety=FixSafety.UNSAFE,
                       lock="ACCESS EXCLUSIVE on public.audit_log for the whole table rewrite (about 2,000 rows); "
                            "its indexes are rebuilt while reads and writes wait",
                       refusals=[], summary="Widen audit_log.id to bigint",
                       url="postgresql://app@orders.internal:5432/orders")
        await pilot.app.push_screen(ConfirmFixModal(plan, target="orders", where=plan.url, production=False))
        pilot.app.screen.query_one(Input).cursor_blink = False
        await pilot.pause(0.4)

    assert snap_compare(synthetic_app(12), terminal_size=(80, 24), run_before=run_before)


def test_detail_wraps_long_evidence_at_80x24(snap_compare):
    """The proof on one line, then SQL, lists and arithmetic wrapped whole, never cut off."""
    from checks.model import Finding, Severity

    long = Finding(
        id="2b7b8000af2f", check="postgres.fk-missing-index", severity=Severity.CRITICAL, target="orders",
        object="public.follows(followee_id)", title="follows(followee_id) has no index for its foreign key",
        message="Foreign key follows_followee_id_fkey on public.follows(followee_id) → public.users has no index "
                "whose leading columns cover it: each delete on public.users scans public.follows.",
        evidence={"constraint": "follows_followee_id_fkey", "columns": ["followee_id"],
                  "existing_indexes": ["CREATE UNIQUE INDEX follows_pkey ON public.follows USING btree "
                                       "(follower_id, followee_id)"],
                  "arithmetic": "4 instances × 20 = 80 connections > 57 usable", "table_bytes": 24576,
                  "index_scan_share": 0.0},
    )
    app = synthetic_app(0)
    app.call_after_refresh(app.ingest, [], [long])
    assert snap_compare(app, terminal_size=(80, 24), run_before=ready(1, "enter"))


def test_help(snap_compare):
    """`?` lists every binding."""
    assert snap_compare(synthetic_app(3), terminal_size=(80, 24), run_before=ready(3, "question_mark"))


def test_high_contrast_theme(snap_compare):
    """The 16-colour theme: severities still tell apart."""
    assert snap_compare(synthetic_app(12, theme="dbvitals-high-contrast"), terminal_size=(80, 24), run_before=ready(12))
