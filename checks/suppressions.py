"""The pre-deploy gate's filters: suppressions from the config and a baseline of known findings.

A suppression silences findings whose check, target and object match its globs, for the
reason it gives, until its expiry date (inclusive). An expired suppression stops suppressing
and is reported, so a temporary exception cannot quietly become permanent. A baseline is the
set of finding ids recorded earlier: the report still shows every finding, but only findings
not in the baseline can fail the gate.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from checks.config import ConfigError, Suppression
from checks.model import Finding, Report, Severity
from checks.units import counted


@dataclass(frozen=True)
class Suppressed:
    finding: Finding
    rule: int  # 1-based position in the config's suppressions list
    suppression: Suppression

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding.to_dict(), "suppression": rule_dict(self.rule, self.suppression)}


@dataclass(frozen=True)
class ExpiredSuppression:
    rule: int
    suppression: Suppression
    matched: tuple[str, ...]  # ids of the findings it would have silenced, reported again now

    def describe(self) -> str:
        s = self.suppression
        return (
            f"suppression #{self.rule} (check={s.check} target={s.target} object={s.object}) expired on "
            f"{s.expires.isoformat() if s.expires else '?'} and no longer suppresses "
            f"{counted(len(self.matched), 'finding')}; its reason was: {s.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**rule_dict(self.rule, self.suppression), "matched": list(self.matched), "message": self.describe()}


@dataclass
class SuppressionResult:
    findings: list[Finding]
    suppressed: list[Suppressed]
    expired: list[ExpiredSuppression]
    unused: list[int]  # active suppressions that matched nothing (stale config)


def rule_dict(rule: int, suppression: Suppression) -> dict[str, Any]:
    return {
        "rule": rule,
        "check": suppression.check,
        "target": suppression.target,
        "object": suppression.object,
        "reason": suppression.reason,
        "expires": suppression.expires.isoformat() if suppression.expires else None,
    }


def matches(suppression: Suppression, finding: Finding) -> bool:
    return (
        fnmatch.fnmatchcase(finding.check, suppression.check)
        and fnmatch.fnmatchcase(finding.target, suppression.target)
        and fnmatch.fnmatchcase(finding.object, suppression.object)
    )


def is_expired(suppression: Suppression, today: dt.date) -> bool:
    return suppression.expires is not None and today > suppression.expires


def apply_suppressions(
    findings: Iterable[Finding], suppressions: Sequence[Suppression], *, today: dt.date | None = None
) -> SuppressionResult:
    """Split findings into kept and suppressed; the first matching active suppression wins."""
    today = today or dt.date.today()
    for number, suppression in enumerate(suppressions, 1):
        if not suppression.reason.strip():
            raise ConfigError(f"suppressions[{number}]: reason is empty; say why the finding is accepted")
    active = [(n, s) for n, s in enumerate(suppressions, 1) if not is_expired(s, today)]
    expired_rules = [(n, s) for n, s in enumerate(suppressions, 1) if is_expired(s, today)]
    kept: list[Finding] = []
    suppressed: list[Suppressed] = []
    used: set[int] = set()
    findings = list(findings)
    for finding in findings:
        rule = next(((n, s) for n, s in active if matches(s, finding)), None)
        if rule is None:
            kept.append(finding)
        else:
            used.add(rule[0])
            suppressed.append(Suppressed(finding, rule[0], rule[1]))
    expired = [
        ExpiredSuppression(n, s, tuple(f.id for f in kept if matches(s, f)))
        for n, s in expired_rules
    ]
    unused = [n for n, _ in active if n not in used]
    return SuppressionResult(kept, suppressed, expired, unused)


@dataclass
class GatedReport(Report):
    """A report with what the gate did to it: suppressed findings, expired suppressions, and
    which findings are new against a baseline. Renderers read these; plain Reports work too."""

    suppressed: list[Suppressed] = field(default_factory=list)
    expired: list[ExpiredSuppression] = field(default_factory=list)
    unused_suppressions: list[int] = field(default_factory=list)
    baseline: str | None = None  # the baseline file, when one was given
    known: frozenset[str] = frozenset()  # finding ids in the baseline
    fail_on: str = "high"
    config_path: str | None = None
    allow_partial: bool = False  # --allow-partial: a check cut short by its budget does not fail the gate

    def partial_fails(self) -> bool:
        """Whether checks cut short by their budget fail this gate."""
        return not self.allow_partial and bool(self.partial())

    def is_new(self, finding: Finding) -> bool:
        return self.baseline is None or finding.id not in self.known

    def gating(self) -> list[Finding]:
        """The findings that fail the gate: new, and at least as severe as fail_on."""
        if self.fail_on == "never":
            return []
        threshold = Severity(self.fail_on)
        return [f for f in self.findings if self.is_new(f) and f.severity.at_least(threshold)]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.suppressed or self.expired or self.baseline is not None:
            data["gate"] = {
                "fail_on": self.fail_on,
                "suppressed": [s.to_dict() for s in self.suppressed],
                "expired_suppressions": [e.to_dict() for e in self.expired],
                "baseline": None if self.baseline is None else {
                    "file": self.baseline,
                    "new": [f.id for f in self.findings if self.is_new(f)],
                    "known": [f.id for f in self.findings if not self.is_new(f)],
                },
            }
        return data


def gated(
    report: Report,
    suppressions: Sequence[Suppression] = (),
    *,
    baseline: str | None = None,
    known: Iterable[str] = (),
    fail_on: str = "high",
    config_path: str | None = None,
    today: dt.date | None = None,
    allow_partial: bool = False,
) -> GatedReport:
    result = apply_suppressions(report.findings, suppressions, today=today)
    base = {f.name: getattr(report, f.name) for f in fields(Report)}
    base["findings"] = result.findings
    return GatedReport(
        **base,
        suppressed=result.suppressed,
        expired=result.expired,
        unused_suppressions=result.unused,
        baseline=baseline,
        known=frozenset(known),
        fail_on=fail_on,
        config_path=config_path,
        allow_partial=allow_partial,
    )


def as_gated(report: Report) -> GatedReport:
    """Any report as a GatedReport (a plain one: nothing suppressed, no baseline)."""
    return report if isinstance(report, GatedReport) else gated(report)
