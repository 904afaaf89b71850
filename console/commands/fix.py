"""`dbvitals fix FINDING_ID`: re-check, show exactly what would run where, confirm, apply,
verify and journal. `dbvitals fix --check ID --target NAME --script FILE` writes the fixes as
a reviewable migration script instead of applying them."""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK = 0
EXIT_NOT_FIXED = 1  # applied but still found, failed, or no such finding
EXIT_REFUSED = 3  # refused, declined at the prompt, or nothing to confirm on


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
    from console.cli import CliError, load_checks, load_settings

    if args.script or args.check:
        return _write_script(args)
    if not args.finding_id:
        raise CliError("give a FINDING_ID (from `dbvitals check`), or --check ID --target NAME --script FILE")
    settings = load_settings(args)
    registry = load_checks(settings)
    from checks.fixes import FixRefused, apply_fix, find_finding, plan_fix

    targets = [args.target] if args.target else None
    try:
        finding = _run(find_finding(settings, registry, args.finding_id, targets=targets))
        if finding is None:
            where = f"target {args.target}" if args.target else "any target"
            _say(f"no finding {args.finding_id} on {where} now: it may be fixed already (run `dbvitals check`), "
                 "or the id is mistyped")
            return EXIT_NOT_FIXED
        plan = _run(plan_fix(settings, registry, finding, allow_unsafe=args.allow_unsafe))
    except FixRefused as exc:
        raise CliError(f"cannot plan the fix: {exc}", code=EXIT_REFUSED) from None
    if plan.gone:
        _say(f"finding {finding.id} is gone: re-running {finding.check} on {finding.target} no longer finds it. Nothing to do.")
        return EXIT_OK
    _say(describe_plan(plan))
    if args.dry_run:
        _say("dry run: nothing applied." if plan.applicable else "dry run: this fix would be refused.")
        return EXIT_OK if plan.applicable else EXIT_REFUSED
    journal = journal_for(settings)
    if plan.refusals:
        outcome = _run(apply_fix(settings, registry, plan, allow_unsafe=args.allow_unsafe, journal=journal))
        _say(f"refused (journal entry {outcome.entry_id}):")
        for reason in plan.refusals:
            _say(f"  - {reason}")
        return EXIT_REFUSED
    if not args.yes:
        confirm(f"apply this fix to {plan.target}", plan.target, plan.environment)
    outcome = _run(apply_fix(settings, registry, plan, allow_unsafe=args.allow_unsafe, on_progress=progress,
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


def describe_steps(title: str, steps: Any) -> list[str]:
    from checks.adapters import step_text
    from checks.display import terminal_safe

    lines = [f"  {title}:"]
    for number, step in enumerate(steps, 1):
        text = step_text(step).splitlines() or [""]
        where = ""
        if not step.transactional:
            where = "   [outside a transaction]"
        lines.append(f"    {number}. {text[0]}{where}")
        lines += [f"       {line}" for line in text[1:]]
        if step.description:
            lines.append(f"       ({terminal_safe(step.description)})")
    return lines


def confirm(question: str, target: str, environment: str | None) -> None:
    """Ask on the terminal; production needs the target's name typed. No terminal: refuse."""
    import sys

    from console.cli import CliError

    if not sys.stdin or not sys.stdin.isatty():
        raise CliError("no terminal to confirm on: pass --yes to apply without a prompt "
                       "(review it first with --dry-run)", code=EXIT_REFUSED)
    production = (environment or "").lower() in {"production", "prod", "live"}
    prompt = (f"{question}? {target} is {environment}: type the target name to confirm: " if production
              else f"{question}? [y/N] ")
    sys.stderr.write(prompt)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    accepted = answer == target if production else answer.lower() in {"y", "yes"}
    if not accepted:
        raise CliError("not confirmed: nothing applied", code=EXIT_REFUSED)


def progress(message: str) -> None:
    import sys

    sys.stderr.write(f"  {message}\n")
    sys.stderr.flush()


def outcome_word(outcome: str | None, *, undo: bool = False) -> str:
    """An outcome as the user reads it: an undo that worked is "undone", not "fixed"."""
    if outcome is None:
        return "DID NOT FINISH"
    if undo and outcome in UNDO_WORDS:
        return UNDO_WORDS[outcome]
    return outcome.replace("_", " ")


UNDO_WORDS = {"fixed": "undone", "not_fixed": "not undone"}


def report_outcome(outcome: Any, journal: Any, *, undo: bool = False) -> int:
    verified = {True: "verified", False: "verified: still found", None: "not verified"}[outcome.verified]
    if undo:
        verified = {True: "verified", False: "verified: the finding is not back", None: "not verified"}[outcome.verified]
    _say(f"{outcome_word(outcome.outcome, undo=undo)} ({verified}) in {outcome.duration_ms / 1000:.2f}s, journal entry {outcome.entry_id} "
         f"in {journal.path}")
    _say(f"  {outcome.message}")
    if outcome.outcome == "fixed":
        return EXIT_OK
    return EXIT_REFUSED if outcome.outcome == "refused" else EXIT_NOT_FIXED


def journal_for(settings: Any) -> Any:
    from checks.fixes import Journal

    return Journal.for_settings(settings)


def limits_from(args: argparse.Namespace) -> Any:
    from checks.fixes import FixLimits
    from console.cli import CliError

    defaults = FixLimits()
    lock = args.lock_timeout if args.lock_timeout is not None else defaults.lock_timeout_s
    statement = args.statement_timeout if args.statement_timeout is not None else defaults.statement_timeout_s
    if lock <= 0 or statement <= 0:
        raise CliError("--lock-timeout and --statement-timeout must be positive")
    return FixLimits(lock_timeout_s=lock, statement_timeout_s=statement)


def _write_script(args: argparse.Namespace) -> int:
    import datetime as dt

    from checks.engine import Runner, UsageError
    from checks.fixes.script import migration_script
    from console.cli import CliError, _version, load_checks, load_settings

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
        report = _run(Runner(settings, registry, targets=[args.target], checks=[args.check]).run())
    except UsageError as exc:
        raise CliError(str(exc)) from None
    if report.targets and not report.targets[0].reachable:
        raise CliError(f"target {args.target} is unreachable: {report.targets[0].error}", code=EXIT_NOT_FIXED)
    for error in report.errors:
        raise CliError(f"{error.check} on {error.target}: {error.kind}: {error.message}", code=EXIT_NOT_FIXED)
    findings = [f for f in report.findings if f.check == args.check]
    text = migration_script(
        target.kind, args.target, target.masked_url, args.check, findings,
        generated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), version=_version(),
        connect_url=target.connect_url,
    )
    try:
        with open(args.script, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CliError(f"--script {args.script}: cannot write: {exc.strerror}") from None
    fixes = sum(1 for f in findings if f.fix is not None)
    _say(f"wrote {fixes} fix(es) from {len(findings)} finding(s) of {args.check} on {args.target} to {args.script}")
    return EXIT_OK


def _run(coro: Any) -> Any:
    from console.cli import run_async

    return run_async(coro)


def _say(text: str) -> None:
    import sys

    from checks.display import terminal_safe
    from checks.secrets import mask_text

    # The last line of defence for everything fix and undo print: no secret, no control character.
    sys.stdout.write(mask_text(terminal_safe(text, keep_newlines=True)) + "\n")
    sys.stdout.flush()
