"""`dbvitals fix FINDING_ID`: re-check, show exactly what would run where, confirm, apply,
verify and journal. `dbvitals fix --check ID --target NAME --script FILE` writes the fixes as
a reviewable migration script instead of applying them."""

from __future__ import annotations

import argparse
from typing import Any

from console.commands.applying import (
    EXIT_NOT_FIXED,
    EXIT_OK,
    EXIT_REFUSED,
    confirm,
    describe_steps,
    journal_for,
    limits_from,
    progress,
    report_outcome,
    say,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Apply the fix of one finding: re-run its check, show the steps with their safety, lock and "
        "inverse, ask for confirmation, apply, verify, and record it in the journal. "
        f"Exit codes: {EXIT_OK} fixed (or --dry-run/--script done), {EXIT_NOT_FIXED} not fixed, failed "
        f"or no such finding, 2 usage or config error, {EXIT_REFUSED} refused or not confirmed."
    )
    parser.add_argument("finding_id", nargs="?", metavar="FINDING_ID", help="the finding's id (from `dbvitals check`)")
    parser.add_argument("--target", metavar="NAME", help="look for the finding on this target only (faster)")
    parser.add_argument("--check", metavar="ID", help="with --script: the check whose fixes to write")
    parser.add_argument("--script", metavar="FILE", help="write a migration script (SQL, mongosh JS or redis-cli) instead of applying")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, apply nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="apply without a prompt (for scripts)")
    parser.add_argument("--allow-unsafe", action="store_true", help="permit fixes marked unsafe (data change or blocking lock)")
    parser.add_argument("--lock-timeout", type=float, metavar="SECONDS", help="lock wait per statement (default 5)")
    parser.add_argument("--statement-timeout", type=float, metavar="SECONDS", help="time limit per statement (default 1800)")


def run(args: argparse.Namespace) -> int:
    from console.runtime import CliError, load_checks, load_settings, run_async

    if args.script or args.check:
        return _write_script(args)
    if not args.finding_id:
        raise CliError("give a FINDING_ID (from `dbvitals check`), or --check ID --target NAME --script FILE")
    settings = load_settings(args)
    registry = load_checks(settings)
    from checks.fixes import FixRefused, apply_fix, find_finding, plan_fix

    targets = [args.target] if args.target else None
    try:
        finding = run_async(find_finding(settings, registry, args.finding_id, targets=targets))
        if finding is None:
            where = f"target {args.target}" if args.target else "any target"
            say(f"no finding {args.finding_id} on {where} now: it may be fixed already (run `dbvitals check`), "
                 "or the id is mistyped")
            return EXIT_NOT_FIXED
        plan = run_async(plan_fix(settings, registry, finding, allow_unsafe=args.allow_unsafe))
    except FixRefused as exc:
        raise CliError(f"cannot plan the fix: {exc}", code=EXIT_REFUSED) from None
    if plan.gone:
        say(f"finding {finding.id} is gone: re-running {finding.check} on {finding.target} no longer finds it. Nothing to do.")
        return EXIT_OK
    say(describe_plan(plan))
    if args.dry_run:
        say("dry run: nothing applied." if plan.applicable else "dry run: this fix would be refused.")
        return EXIT_OK if plan.applicable else EXIT_REFUSED
    journal = journal_for(settings)
    if plan.refusals:
        outcome = run_async(apply_fix(settings, registry, plan, allow_unsafe=args.allow_unsafe, journal=journal))
        say(f"refused (journal entry {outcome.entry_id}):")
        for reason in plan.refusals:
            say(f"  - {reason}")
        return EXIT_REFUSED
    if not args.yes:
        confirm(f"apply this fix to {plan.target}", plan.target, plan.environment)
    outcome = run_async(apply_fix(settings, registry, plan, allow_unsafe=args.allow_unsafe, on_progress=progress,
                             journal=journal, limits=limits_from(args)))
    return report_outcome(outcome, journal)


def describe_plan(plan: Any) -> str:
    from checks.display import terminal_safe as safe

    finding = plan.finding
    environment = f", {plan.environment}" if plan.environment else ""
    lines = [
        f"Fix for finding {finding.id} ({finding.check}, {finding.severity.value})",
        f"  target:  {plan.target} ({plan.engine}{environment}) {plan.url}",
        f"  object:  {safe(finding.object)}",
        f"  problem: {safe(finding.title)}",
    ]
    if finding.fix is None:
        lines.append("  fix:     none")
        return "\n".join(lines)
    lines += [
        f"  fix:     {safe(plan.summary)}",
        f"  safety:  {plan.safety.value}",
        f"  lock:    {safe(plan.lock or 'not stated')}",
    ]
    lines += describe_steps("steps, in this order", plan.steps)
    lines += describe_steps("inverse (what `dbvitals undo` runs)", plan.inverse) if plan.inverse else [
        "  inverse: none: this fix cannot be undone by dbvitals"
    ]
    if plan.notes:
        lines.append(f"  notes:   {safe(plan.notes)}")
    for reason in plan.refusals:
        lines.append(f"  REFUSED: {safe(reason)}")
    return "\n".join(lines)


def _write_script(args: argparse.Namespace) -> int:
    import datetime as dt

    from checks.engine import Runner, UsageError
    from checks.fixes.script import migration_script
    from console.runtime import CliError, load_checks, load_settings, run_async, version

    if not (args.check and args.target and args.script):
        raise CliError("a migration script needs --check ID, --target NAME and --script FILE")
    if args.finding_id:
        raise CliError("give either a FINDING_ID or --check/--target/--script, not both")
    settings = load_settings(args)
    registry = load_checks(settings)
    check = registry.checks.get(args.check)
    if check is None:
        raise CliError(f"no check {args.check} (run `dbvitals checks` for the catalog)")
    target = settings.targets.get(args.target)
    if target is None:
        raise CliError(f"unknown target {args.target} (configured: {', '.join(settings.targets) or 'none'})")
    if check.engine.value != target.kind:
        raise CliError(f"{args.check} is a {check.engine.value} check and {args.target} is a {target.kind} target")
    try:
        report = run_async(Runner(settings, registry, targets=[args.target], checks=[args.check]).run())
    except UsageError as exc:
        raise CliError(str(exc)) from None
    if report.targets and not report.targets[0].reachable:
        raise CliError(f"target {args.target} is unreachable: {report.targets[0].error}", code=EXIT_NOT_FIXED)
    for error in report.errors:
        raise CliError(f"{error.check} on {error.target}: {error.kind}: {error.message}", code=EXIT_NOT_FIXED)
    findings = [f for f in report.findings if f.check == args.check]
    text = migration_script(
        target.kind, args.target, target.masked_url, args.check, findings,
        generated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), version=version(),
        connect_url=target.connect_url,
    )
    try:
        with open(args.script, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CliError(f"--script {args.script}: cannot write: {exc.strerror}") from None
    fixes = sum(1 for f in findings if f.fix is not None)
    say(f"wrote {fixes} fix(es) from {len(findings)} finding(s) of {args.check} on {args.target} to {args.script}")
    return EXIT_OK

