"""`dbvitals fix FINDING_ID`: re-check, show exactly what would run where, confirm, apply,
verify and journal. `dbvitals fix --check ID --target NAME --script FILE` writes the fixes as
a reviewable migration script instead of applying them."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from checks.display import terminal_safe as safe
from checks.fixes import FixRefused, apply_fix, locate_finding, plan_fix
from checks.fixes.locate import group_by_target, parse_reference
from checks.fixes.script import migration_script
from checks.registry import UsageError
from checks.runner import KeptConnections, Runner
from checks.units import counted
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
from console.runtime import CliError, finding_index, load_checks, load_settings, run_async
from console.version import version


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Apply the fix of one finding: re-run its check, show the steps with their safety, lock and "
        "inverse, ask for confirmation, apply, verify, and record it in the journal. "
        "The id comes from the last `dbvitals check` of the same config (or is given as TARGET/CHECK/ID); "
        "only that check runs, on that target. "
        f"Exit codes: {EXIT_OK} fixed (or --dry-run/--script done), {EXIT_NOT_FIXED} not fixed, failed "
        "or no such finding now, 2 usage or config error or an id the last report does not know, "
        f"{EXIT_REFUSED} refused or not confirmed."
    )
    parser.add_argument("finding_id", nargs="?", metavar="FINDING_ID", help="the finding's id (from `dbvitals check`; a unique prefix will do), or TARGET/CHECK/ID")
    parser.add_argument("--target", metavar="NAME", help="the finding is on this target (narrows an id prefix)")
    parser.add_argument("--check", metavar="ID", help="with --script: the check whose fixes to write")
    parser.add_argument("--script", metavar="FILE", help="write a migration script (SQL, mongosh JS or redis-cli) instead of applying")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, apply nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="apply without a prompt (for scripts)")
    parser.add_argument("--allow-unsafe", action="store_true", help="permit fixes marked unsafe (data change or blocking lock)")
    parser.add_argument("--lock-timeout", type=float, metavar="SECONDS", help="lock wait per statement (default 5)")
    parser.add_argument("--statement-timeout", type=float, metavar="SECONDS", help="time limit per statement (default 1800)")


def run(args: argparse.Namespace) -> int:
    if args.script or args.check:
        return _write_script(args)
    if not args.finding_id:
        raise CliError("give a FINDING_ID (from `dbvitals check`), or --check ID --target NAME --script FILE")
    settings = load_settings(args)
    journal_for(settings)  # a journal that cannot be written fails here, before any check runs
    registry = load_checks(settings)
    wanted, where = where_to_look(settings, registry, args.finding_id, args.target)
    return run_async(_fix(args, settings, registry, wanted, where))


async def _fix(args: argparse.Namespace, settings: Any, registry: Any, wanted: str, where: dict[str, list[str]]) -> int:
    """Find, re-check, plan, apply and verify in one event loop: the run that finds the finding
    is its re-check, and the plan (with its refusals) is made from it once."""
    kept = KeptConnections()  # the check connections of the find, kept open for the verification
    try:
        return await _find_plan_apply(args, settings, registry, wanted, where, kept)
    finally:
        await kept.close()


async def _find_plan_apply(args: argparse.Namespace, settings: Any, registry: Any, wanted: str,
                           where: dict[str, list[str]], kept: Any) -> int:
    import asyncio

    try:
        finding, report = await locate_finding(settings, registry, wanted, where=where, kept=kept)
        if finding is None:
            looked = "; ".join(f"{', '.join(checks)} on {target}" for target, checks in where.items())
            say(f"no finding {args.finding_id} now (ran {looked}): it may be fixed already, or the id is mistyped "
                "(`dbvitals check` lists the current ones)")
            return EXIT_NOT_FIXED
        plan = await plan_fix(settings, registry, finding, allow_unsafe=args.allow_unsafe, report=report)
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
        outcome = await apply_fix(settings, registry, plan, journal=journal)
        say(f"refused (journal entry {outcome.entry_id}):")
        for reason in plan.refusals:
            say(f"  - {reason}")
        return EXIT_REFUSED
    limits = limits_from(args)
    if not args.yes:
        await asyncio.to_thread(confirm, f"apply this fix to {plan.target}", plan.target, plan.environment)
    outcome = await apply_fix(settings, registry, plan, on_progress=progress, journal=journal, limits=limits, kept=kept)
    return report_outcome(outcome, journal)


def where_to_look(settings: Any, registry: Any, given: str, target: str | None) -> tuple[str, dict[str, list[str]]]:
    """(the id to look for, target -> the checks to run). A TARGET/CHECK/ID reference or the last
    report's index names one check on one target. An id neither knows is refused at once: looking
    for it would run every check that fixes on every target, production included."""
    if target is not None and target not in settings.targets:
        raise CliError(f"unknown target {target} (configured: {', '.join(settings.targets) or 'none'})")
    reference = parse_reference(given)
    if reference is not None:
        if reference.target not in settings.targets:
            raise CliError(f"{given}: unknown target {reference.target} (configured: {', '.join(settings.targets) or 'none'})")
        if reference.check not in registry.checks:
            raise CliError(f"{given}: no check {reference.check} (run `dbvitals checks` for the catalog)")
        if target is not None and target != reference.target:
            raise CliError(f"{given} is on target {reference.target}, not --target {target}")
        return reference.finding_id, {reference.target: [reference.check]}
    known = [
        location for location in finding_index(settings).lookup(given)
        if location.target in settings.targets and location.check in registry.checks
        and (target is None or location.target == target)
    ]
    if not known:
        raise CliError(f"finding {given} is not in the last report of this config{f' on {target}' if target else ''}: "
                       f"`{check_command(settings, target)}` finds the current ones (then `dbvitals fix ID`), "
                       "or give it as TARGET/CHECK/ID")
    return given, group_by_target(known)


def check_command(settings: Any, target: str | None) -> str:
    """The `dbvitals check` that reports findings into this config's index, as one would type it."""
    words = ["dbvitals", "check"]
    config = settings.model_config.get("config_file")
    if config:
        words += ["--config", str(config)]
    if target:
        words += ["--target", target]
    return shlex.join(safe(word) for word in words)


def describe_plan(plan: Any) -> str:
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
    if check.engine != target.kind:
        raise CliError(f"{args.check} is a {check.engine} check and {args.target} is a {target.kind} target")
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
        connect_url=target.url,  # the server itself (not a tunnel of this run); its password is never written
    )
    try:
        with open(args.script, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CliError(f"--script {args.script}: cannot write: {exc.strerror}") from None
    fixes = sum(1 for f in findings if f.fix is not None)
    say(f"wrote {counted(fixes, 'fix', 'fixes')} from {counted(len(findings), 'finding')} of {args.check} on {args.target} to {args.script}")
    return EXIT_OK

