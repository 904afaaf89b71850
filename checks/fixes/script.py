"""A check's fixes as a reviewable migration script (SQL for psql, mongosh JavaScript,
redis-cli commands), for teams that ship changes through their own migration tools. Each
step is rendered by its engine's adapter, as everywhere else a step is shown."""

from __future__ import annotations

from collections.abc import Sequence

from checks.adapters import adapter_for
from checks.model import Finding, FixSafety


def migration_script(
    engine: str, target: str, url: str, check: str, findings: Sequence[Finding], *, generated_at: str, version: str
) -> str:
    """A reviewable script of every fix the check proposes on the target, inverse included as comments."""
    adapter = adapter_for(engine)
    c = adapter.comment
    with_fix = [f for f in findings if f.fix is not None]
    lines = [
        f"{c} dbvitals {version}: fixes proposed by {check} on target {target} ({url})",
        f"{c} generated {generated_at}; {len(with_fix)} finding(s) with a fix. Review before running.",
    ]
    lines += adapter.script_preamble()
    if not with_fix:
        lines += [f"{c} nothing to do: {check} proposes no fix on {target} right now."]
    for finding in with_fix:
        fix = finding.fix
        assert fix is not None
        lines += [
            "",
            f"{c} --- finding {finding.id} [{finding.severity.value}] {finding.object}: {finding.title}",
            f"{c} fix: {fix.summary}",
            f"{c} safety: {fix.safety.value}" + (f"; lock/impact: {fix.lock}" if fix.lock else ""),
        ]
        if fix.notes:
            lines.append(f"{c} notes: {fix.notes}")
        manual = fix.safety is FixSafety.MANUAL
        if manual:
            lines.append(f"{c} MANUAL: adapt this to your schema and run it yourself; left commented out.")
        body = adapter.script_steps(fix.steps)
        lines += [f"{c} {line}" for line in body] if manual else body
        if fix.inverse:
            lines.append(f"{c} to undo:")
            lines += [f"{c}   {line}" for line in adapter.script_steps(fix.inverse)]
    return "\n".join(lines) + "\n"

