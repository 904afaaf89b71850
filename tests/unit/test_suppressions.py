"""Suppressions (globs, a reason, an optional expiry) and the baseline, as the gate applies them."""

from __future__ import annotations

import datetime as dt

import pytest

from checks.config import ConfigError, Suppression
from checks.model import Finding, Report, Severity
from checks.suppressions import apply_suppressions, gated

TODAY = dt.date(2026, 6, 1)


def finding(check="postgres.unused-index", target="orders", obj="public.orders_old_idx", severity=Severity.HIGH):
    return Finding(id=f"{check}|{target}|{obj}", check=check, severity=severity, target=target, object=obj,
                   title="t", message="m")


@pytest.mark.parametrize(
    "rule, suppressed",
    [
        ({}, True),
        ({"check": "postgres.unused-index"}, True),
        ({"check": "postgres.*"}, True),
        ({"check": "redis.*"}, False),
        ({"target": "orders"}, True),
        ({"target": "billing"}, False),
        ({"object": "public.orders_*"}, True),
        ({"object": "public.orders"}, False),  # the whole object must match, not a prefix
        ({"check": "postgres.*", "target": "orders", "object": "public.*_idx"}, True),
        ({"expires": dt.date(2026, 6, 1)}, True),  # the expiry day itself still suppresses
        ({"expires": dt.date(2026, 5, 31)}, False),
    ],
)
def test_matching(rule, suppressed):
    result = apply_suppressions([finding()], [Suppression(reason="known", **rule)], today=TODAY)
    assert (len(result.suppressed) == 1) is suppressed
    assert (len(result.findings) == 1) is not suppressed


def test_expired_suppression_stops_suppressing_and_says_so():
    rule = Suppression(check="postgres.*", reason="until the migration ships", expires=dt.date(2026, 5, 1))
    result = apply_suppressions([finding(), finding(obj="x")], [rule], today=TODAY)
    assert len(result.findings) == 2 and not result.suppressed
    [expired] = result.expired
    assert expired.rule == 1 and len(expired.matched) == 2
    text = expired.describe()
    assert "expired on 2026-05-01" in text and "no longer suppresses 2 findings" in text
    assert "until the migration ships" in text


def test_first_matching_rule_wins_and_unused_rules_are_listed():
    rules = [Suppression(target="orders", reason="a"), Suppression(check="postgres.*", reason="b"),
             Suppression(check="redis.*", reason="c")]
    result = apply_suppressions([finding()], rules, today=TODAY)
    assert [s.rule for s in result.suppressed] == [1]
    assert result.unused == [2, 3]


def test_a_suppression_needs_a_reason():
    with pytest.raises(ConfigError, match="reason is empty"):
        apply_suppressions([finding()], [Suppression(reason="  ")], today=TODAY)


def report(*findings):
    return Report(targets=[], findings=list(findings), errors=[], duration_ms=1.0)


def test_baseline_reports_everything_and_gates_only_new_findings():
    old, new, low = finding(obj="old"), finding(obj="new"), finding(obj="low", severity=Severity.LOW)
    gate = gated(report(old, new, low), baseline="b.json", known=[old.id], fail_on="high", today=TODAY)
    assert gate.findings == [old, new, low]
    assert [f.id for f in gate.gating()] == [new.id]
    assert gate.to_dict()["gate"]["baseline"] == {"file": "b.json", "new": [new.id, low.id], "known": [old.id]}


def test_fail_on_never_gates_nothing():
    assert gated(report(finding()), fail_on="never").gating() == []


def test_plain_reports_keep_their_json_shape():
    assert "gate" not in gated(report(finding())).to_dict()
    suppressed = gated(report(finding()), [Suppression(reason="accepted risk")], today=TODAY)
    gate = suppressed.to_dict()["gate"]
    assert suppressed.findings == [] and gate["suppressed"][0]["suppression"]["reason"] == "accepted risk"
