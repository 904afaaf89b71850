"""The gate `dbvitals check` applies: the config's suppressions, then `--baseline FILE` (report
every finding, fail only on those not in the file), and the exit code judged on what is left."""

from __future__ import annotations

import argparse
from typing import Any, cast

from checks.config import ConfigError, resolve_config_path
from checks.model import Report, Severity
from checks.suppressions import gated
from console.runtime import EXIT_FINDINGS, EXIT_OK, CliError


def load_baseline(path: str) -> list[str]:
    """Finding ids from a baseline file (or from a `dbvitals check --format json` report)."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise CliError(f"--baseline {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"--baseline {path}: not JSON: {exc}") from None
    items = data.get("findings") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise CliError(f"--baseline {path}: expected a dbvitals baseline (`dbvitals baseline save FILE`)")
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(i, str) for i in ids):
        raise CliError(f"--baseline {path}: every finding needs an id")
    return cast(list[str], ids)


def gate(report: Any, settings: Any, args: argparse.Namespace) -> Any:
    """The report with the config's suppressions applied and, with --baseline, new findings
    marked. Expired suppressions are said on standard error as well as in the report."""
    import sys

    baseline = getattr(args, "baseline", None)
    try:
        result = gated(
            report,
            settings.suppressions,
            baseline=baseline,
            known=load_baseline(baseline) if baseline else (),
            fail_on=getattr(args, "fail_on", "high"),
            allow_partial=bool(getattr(args, "allow_partial", False)),
            config_path=str(resolve_config_path(getattr(args, "config", None))),
        )
    except ConfigError as exc:
        raise CliError(f"invalid config: {exc}") from None
    for expired in result.expired:
        print(f"dbvitals: warning: {expired.describe()}", file=sys.stderr)
    return result


def failing(report: Any) -> Any:
    """What the exit code is judged on: with a baseline, only the findings not in it."""
    if getattr(report, "baseline", None) is None:
        return report
    return Report(targets=report.targets, findings=[f for f in report.findings if report.is_new(f)],
                  errors=report.errors, duration_ms=report.duration_ms, checks=report.checks)


def exit_code(report: Any, fail_on: str, *, allow_partial: bool = False) -> int:
    # A check cut short by its budget did not look at everything: it does not pass, whatever
    # --fail-on says about findings, unless the caller accepts it (--allow-partial).
    if not allow_partial and any(row.get("outcome") == "partial" for row in report.checks):
        return EXIT_FINDINGS
    if fail_on == "never":
        return EXIT_OK
    threshold = Severity(fail_on)
    if any(f.severity.at_least(threshold) for f in report.findings):
        return EXIT_FINDINGS
    # A check that could not run may hide a problem: a gate must not pass silently.
    if any(e.kind in {"error", "timeout"} for e in report.errors):
        return EXIT_FINDINGS
    return EXIT_OK
