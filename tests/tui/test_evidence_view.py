"""The proof line and the evidence's formatting, as tables of cases: what an on-call engineer
reads first must be whole, with units, and lead with urgency for capacity findings."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from checks.model import Finding, Severity
from console.widgets.evidence_view import proof_line, render_evidence, scalar


def finding(message: str, **evidence) -> Finding:
    return Finding(id="x", check="postgres.sequence-exhaustion", severity=Severity.CRITICAL, target="t",
                   object="o", title="t", message=message, evidence=evidence)


@pytest.mark.parametrize(("message", "evidence", "expected"), [
    ("public.audit_log_id_seq is at 2,100,000,001 of 2,147,483,647 (97.8%), limited by its column; it feeds "
     "public.audit_log.id. Inserts fail when it is reached.", {},
     "public.audit_log_id_seq is at 2,100,000,001 of 2,147,483,647 (97.8%), limited by its column"),
    ("At full pools the application opens 80 connections. Keep instances × pool under the limit.",
     {"arithmetic": "4 instances × 20 = 80 connections > 57 usable"}, "4 instances × 20 = 80 connections > 57 usable"),
    ("public.t_seq is at 97%.", {"exhausted_in_days": 12.4, "estimated_exhaustion": "2026-12-14 10:00 UTC"},
     "runs out in 12 days (~2026-12-14 10:00 UTC) · public.t_seq is at 97%"),
    ("1.1 MiB in public.users is fine. Next.", {}, "1.1 MiB in public.users is fine"),
])
def test_proof_line(message, evidence, expected):
    assert proof_line(finding(message, **evidence)) == expected


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("used", 0.9779, "97.8 %"),
    ("index_scan_share", 0.0, "0.0 %"),
    ("table_bytes", 24576, "24.0 kB (24,576 bytes)"),
    ("rate_per_second", 0.0312, "0.0312 /s"),
    ("exhausted_in_days", 20000.0, "54.8 years (20,000.0 days)"),
    ("ttl_median_s", 604794, "7 d (604,794 s)"),
    ("limit", 2147483647, "2,147,483,647"),
    ("called", True, "yes"),
    ("current", None, "—"),
])
def test_values_carry_their_units(key, value, shown):
    assert scalar(key, value) == shown


def test_evidence_wraps_sql_and_lists_without_cutting_them():
    evidence = {"existing_indexes": ["CREATE UNIQUE INDEX follows_pkey ON public.follows USING btree "
                                     "(follower_id, followee_id)"],
                "arithmetic": "4 instances × 20 = 80 connections > 57 usable"}
    buffer = io.StringIO()
    Console(file=buffer, width=60, no_color=True).print(render_evidence(evidence))
    text = " ".join(buffer.getvalue().split())
    assert "• CREATE UNIQUE INDEX follows_pkey ON public.follows USING btree (follower_id, followee_id)" in text
    assert "4 instances × 20 = 80 connections > 57 usable" in text
