"""`dbvitals record --every 60s [--for 2h]`: snapshots on a schedule, for an incident or a deploy
window, with a retention limit so the disk stays bounded. `dbvitals ui --replay LABEL` steps
through them."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from checks.config import parse_duration
from checks.units import counted
from console.commands.snapshot import save_snapshot, store_for
from console.runtime import CliError, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", default="60s", metavar="DURATION", help="time between snapshots (default 60s, at least 5s)")
    parser.add_argument("--for", dest="duration", metavar="DURATION", help="stop after this long (default: until interrupted)")
    parser.add_argument("--keep", type=int, default=720, metavar="N",
                        help="keep the newest N snapshots of this recording (default 720: 12 h at 60s)")
    parser.add_argument("--label", metavar="TEXT", help="the recording's name (default: record-<start time>)")
    parser.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    parser.add_argument("--store", metavar="FILE", help="the snapshot database (default: snapshots.db beside the journal)")


def run(args: argparse.Namespace) -> int:
    try:
        every = parse_duration(args.every).total_seconds()
        duration = parse_duration(args.duration).total_seconds() if args.duration else None
    except ValueError as exc:
        raise CliError(f"--every/--for: {exc}") from None
    if every < 5:
        raise CliError(f"--every {args.every}: at least 5s, so recording never loads the servers")
    if args.keep < 1:
        raise CliError("--keep must be at least 1")
    settings = load_settings(args)
    store = store_for(args, settings)
    label = args.label or "record-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    taken = 0
    print(f"recording {label} every {every:g}s into {store.path} (Ctrl+C stops)", file=sys.stderr)
    try:
        while duration is None or time.monotonic() - started < duration:
            tick = time.monotonic()
            sid, result = save_snapshot(settings, store, label=label, targets=args.target, source="record")
            taken += 1
            store.prune(keep=args.keep, label=label)
            print(f"  snapshot {sid}: {len(result.report.findings)} findings", file=sys.stderr)
            remaining = every - (time.monotonic() - tick)
            if duration is not None:
                remaining = min(remaining, duration - (time.monotonic() - started))
            if remaining > 0:
                time.sleep(remaining)
    except KeyboardInterrupt:
        pass
    print(f"recorded {counted(taken, 'snapshot')} as {label}; replay with `dbvitals ui --replay {label}`", file=sys.stderr)
    return 0


