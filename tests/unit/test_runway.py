"""Capacity graded by runway (days left), not share used; the sequence check as the example."""

from __future__ import annotations

import datetime as dt

import pytest

from checks.model import Severity
from checks.postgres import sequence_exhaustion
from checks.runway import grade, runway_text
from console.widgets.evidence_view import proof_line
from tests.unit.test_postgres_evaluate import Schema, scope, sequence


@pytest.mark.parametrize(
    ("days", "by_share", "expected"),
    [
        (0.5, Severity.HIGH, Severity.CRITICAL),
        (6.9, Severity.LOW, Severity.CRITICAL),
        (7, Severity.CRITICAL, Severity.HIGH),
        (29.9, Severity.CRITICAL, Severity.HIGH),
        (30, Severity.CRITICAL, Severity.MEDIUM),
        (365, Severity.CRITICAL, Severity.MEDIUM),
        (366, Severity.CRITICAL, Severity.LOW),
        (3500, Severity.CRITICAL, Severity.LOW),
        (None, Severity.CRITICAL, Severity.CRITICAL),
        (None, Severity.HIGH, Severity.HIGH),
    ],
)
def test_grade_by_days_left(days, by_share, expected):
    assert grade(days, by_share) is expected


@pytest.mark.parametrize(
    ("days", "at_least", "text"),
    [
        (None, False, "runway unknown"),
        (0.5, False, "runs out in 12.0 hours"),
        (12.25, False, "runs out in 12.2 days"),
        (3504, True, "runs out in more than 9.6 years"),
        (10**6, False, "runs out in more than a century"),
    ],
)
def test_runway_text(days, at_least, text):
    assert runway_text(days, at_least=at_least) == text


NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def judged(rates: sequence_exhaustion.Rates, last: int = 2_146_000_000):
    s = Schema()
    oid = s.table("orders", {"id": "integer"})
    seq = sequence(last, table=oid, column=1)
    check = sequence_exhaustion.SequenceExhaustion()
    [finding] = check.evaluate(sequence_exhaustion.Facts(s.build(), (seq,), "app", rates(oid)), scope(check))
    return finding


def test_a_sequence_at_99_percent_with_no_growth_is_not_critical():
    finding = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (0, 1.0)}, inserts={oid: 0}, now=NOW,
                                                          stats_since=NOW - dt.timedelta(days=3)))
    assert finding.evidence["used"] > 0.99 and finding.severity is Severity.LOW
    assert finding.evidence["runway"].startswith("runs out in more than")
    assert "no insert into public.orders" in finding.evidence["rate_from"]


def test_a_sequence_at_99_percent_drawing_fast_is_critical():
    finding = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (1000, 1.0)}, now=NOW))  # 1.5 M left
    assert finding.severity is Severity.CRITICAL and finding.evidence["runway"] == "runs out in 0.4 hours"


def test_a_sequence_at_80_percent_that_runs_out_this_week_is_critical():
    finding = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (1000, 1.0)}, now=NOW), last=1_800_000_000)
    assert finding.evidence["used"] < 0.9 and finding.severity is Severity.CRITICAL  # 347 M left: 4 days


def test_a_sequence_with_no_rate_keeps_the_share_and_says_runway_unknown():
    finding = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (0, 1.0)}, now=NOW))
    assert finding.severity is Severity.CRITICAL and finding.evidence["runway"] == "runway unknown"
    assert "Runway unknown" in finding.message and finding.title == "orders_id_seq has used 99.9% of its range"


def test_the_console_proof_line_leads_with_the_runway():
    unknown = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (0, 1.0)}, now=NOW))
    assert proof_line(unknown).startswith("runway unknown · ")
    fast = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (1000, 1.0)}, now=NOW))
    assert proof_line(fast).startswith("runs out in 0.4 hours (~2026-01-01 00:24 UTC) · ")
    idle = judged(lambda oid: sequence_exhaustion.Rates(advanced={1: (0, 1.0)}, inserts={oid: 0}, now=NOW,
                                                       stats_since=NOW - dt.timedelta(days=3)))
    assert proof_line(idle).startswith("runs out in more than ")


@pytest.mark.parametrize("days, text", [
    (1.5, "reaches 1.0 GB in 36.0 hours"), (20.3, "reaches 1.0 GB in 20.3 days"),
    (3650, "reaches 1.0 GB in 10.0 years"), (None, "runway unknown")])
def test_the_runway_names_what_happens_when_it_is_not_running_out(days, text):
    assert runway_text(days, event="reaches 1.0 GB") == text
