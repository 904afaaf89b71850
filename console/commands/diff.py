"""`dbvitals diff [A] [B]`: new and resolved findings and the figures that moved most between
two snapshots (default: the latest two; `now` runs the checks now). A gate after a deploy:
exit 1 when a new finding reaches --fail-on."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from checks.config import parse_duration
from checks.display import terminal_safe as safe_line
from checks.model import Severity
from checks.snapshots.diff import MIN_USAGE_WINDOW, diff
from checks.snapshots.store import Snapshot, SnapshotError, SnapshotInfo
from checks.snapshots.take import take
from console.commands.snapshot import store_for
from console.formats.markdown_format import markdown_escape as _md
from console.runtime import SEVERITIES, CliError, load_checks, load_settings, run_async


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", nargs="?", metavar="A", help="a snapshot id, label, latest~N (default: the one before B)")
    parser.add_argument("after", nargs="?", metavar="B", help="a snapshot, or now (default: the latest; now if only one exists)")
    parser.add_argument("--store", metavar="FILE", help="the snapshot database (default: snapshots.db beside the journal)")
    parser.add_argument("--format", default="text", choices=("text", "json", "markdown"))
    parser.add_argument("--fail-on", default="never", choices=SEVERITIES, metavar="SEVERITY",
                        help="exit 1 when a NEW finding is at least this severe (default: never)")
    parser.add_argument("--target", action="append", metavar="NAME", help="with now: only this target")
    parser.add_argument("--min-usage-window", metavar="DURATION", default=None,
                        help="judge 'stopped being used' only when the snapshots are at least this far apart "
                             "(default: 1h)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    store = store_for(args, settings)
    try:
        window = MIN_USAGE_WINDOW if args.min_usage_window is None else parse_duration(args.min_usage_window)
    except ValueError as exc:
        raise CliError(f"--min-usage-window {args.min_usage_window!r}: {exc}") from None
    try:
        before, after = _pick(args, settings, store)
        result = diff(store.load(before), _snapshot(settings, store, after, args.target), min_usage_window=window)
    except SnapshotError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(render(result, args.format))
    if args.fail_on == "never":
        return 0
    threshold = Severity(args.fail_on)
    return 1 if any(f.severity.at_least(threshold) for f in result.new) else 0


def _pick(args: argparse.Namespace, settings: Any, store: Any) -> tuple[int, int | str]:
    infos = store.list()
    if not infos:
        raise SnapshotError(f"no snapshots in {store.path} (take one with `dbvitals snapshot save`)")
    if args.after is not None:
        after: int | str = "now" if args.after == "now" else store.resolve(args.after)
    else:
        after = "now" if len(infos) == 1 or args.before is not None else infos[-1].id
    if args.before is not None:
        before = store.resolve(args.before)
    elif after == "now":
        before = infos[-1].id
    else:
        earlier = [i.id for i in infos if i.id < after]
        if not earlier:
            raise SnapshotError(f"snapshot {after} is the oldest: nothing to compare it with")
        before = earlier[-1]
    return before, after


def _snapshot(settings: Any, store: Any, ref: int | str, targets: Any) -> Any:
    if ref != "now":
        return store.load(int(ref))
    taken = run_async(take(settings, load_checks(settings), targets=targets, with_activity=False))
    for problem in taken.problems:
        print(f"dbvitals: warning: {problem}", file=sys.stderr)
    figures = {t: {(k, n): m for k, n, m in rows} for t, rows in taken.figures.items()}
    info = SnapshotInfo(0, "now", None, "now", len(taken.report.targets), len(taken.report.findings))
    return Snapshot(info, taken.report.targets, taken.report.findings,
                    [e.to_dict() for e in taken.report.errors], figures)


def render(result: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    markdown = fmt == "markdown"
    line = _md if markdown else safe_line
    def label(info: dict[str, Any]) -> str:
        if info["source"] == "now":
            return "now"
        return f"snapshot {info['id']}{' (' + info['label'] + ')' if info['label'] else ''} at {info['taken_at']}"

    lines = [f"{'## ' if markdown else ''}Changes from {line(label(result.before))} to {line(label(result.after))}", ""]
    bullet = "- " if markdown else "  "

    def finding_line(f: Any) -> str:
        text = f"{f.severity.value.upper():<8} {f.target}  {f.check}  {f.title}"
        return bullet + (_md(text) if markdown else safe_line(text))

    for title, bucket in (("New findings", result.new), ("Resolved findings", result.resolved)):
        lines.append(f"{'### ' if markdown else ''}{title}: {len(bucket)}")
        lines.extend(finding_line(f) for f in bucket)
        lines.append("")
    if result.changed:
        lines.append(f"{'### ' if markdown else ''}Severity changed: {len(result.changed)}")
        for b, a in result.changed:
            text = f"{b.severity.value} → {a.severity.value}  {a.target}  {a.title}"
            lines.append(bullet + (_md(text) if markdown else safe_line(text)))
        lines.append("")
    lines.append(f"{'### ' if markdown else ''}Figures that moved: {len(result.figures)}")
    for c in result.figures:
        text = f"{c.target}  {c.kind}  {c.name}: {c.change}"
        lines.append(bullet + (_md(text) if markdown else safe_line(text)[:400]))
    return "\n".join(lines) + "\n"
