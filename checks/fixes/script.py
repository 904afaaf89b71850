"""A check's fixes as a reviewable migration script (SQL for psql, mongosh JavaScript,
a bash script of redis-cli commands), for teams that ship changes through their own migration
tools. Each step is rendered by its engine's adapter, as everywhere else a step is shown; every
name in a comment goes through `comment`, so that no name can end the comment it is in."""

from __future__ import annotations

from collections.abc import Sequence

from checks.engines import adapter_for
from checks.fixes.quoting import comment
from checks.model import Finding, FixSafety
from checks.units import counted


def migration_script(
    engine: str, target: str, url: str, check: str, findings: Sequence[Finding], *, generated_at: str, version: str,
    connect_url: str | None = None,
) -> str:
    """A reviewable script of every fix the check proposes on the target, inverse included as
    comments. `url` is shown (masked); a script that connects by itself (Redis) reaches the
    server `connect_url` names, never writing its password."""
    adapter = adapter_for(engine)
    c = adapter.comment
    with_fix = [f for f in findings if f.fix is not None]
    lines = list(adapter.script_interpreter)
    lines += [
        f"{c} dbvitals {comment(version)}: fixes proposed by {comment(check)} on target {comment(target)} ({comment(url)})",
        f"{c} generated {comment(generated_at)}; {counted(len(with_fix), 'finding')} with a fix. Review before running.",
    ]
    lines += adapter.script_preamble(connect_url)
    if not with_fix:
        lines += [f"{c} nothing to do: {comment(check)} proposes no fix on {comment(target)} right now."]
    for finding in with_fix:
        fix = finding.fix
        assert fix is not None
        lines += [
            "",
            f"{c} --- finding {comment(finding.id)} [{finding.severity.value}] {comment(finding.object)}: "
            f"{comment(finding.title)}",
            f"{c} fix: {comment(fix.summary)}",
            f"{c} safety: {fix.safety.value}" + (f"; lock/impact: {comment(fix.lock)}" if fix.lock else ""),
        ]
        if fix.notes:
            lines.append(f"{c} notes: {comment(fix.notes)}")
        manual = fix.safety is FixSafety.MANUAL
        if manual:
            lines.append(f"{c} MANUAL: adapt this to your schema and run it yourself; left commented out.")
        body = adapter.script_steps(fix.steps)
        lines += [f"{c} {comment(line)}" for line in body] if manual else body
        if fix.inverse:
            lines.append(f"{c} to undo:")
            lines += [f"{c}   {comment(line)}" for line in adapter.script_steps(fix.inverse)]
    return "\n".join(lines) + "\n"

