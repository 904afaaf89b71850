"""How long `dbvitals checks` takes, and whether loading the catalog imports a driver.

Runs `dbvitals checks --format json` in fresh processes (median of --runs), beside a bare
`python -c pass` in the same run as the baseline of interpreter start-up, and lists any driver
(asyncpg, pymongo, bson, redis) the registry pulled in. Goal: under 0.5 s, no driver. Two
figures: warm (the catalog manifest cached in the state directory matches the installed checks:
every run after the first, or after an upgrade) and cold (no manifest: every check imported).

Bytecode is cached (in a temporary PYTHONPYCACHEPREFIX) as an installed package has it: with
PYTHONDONTWRITEBYTECODE every start compiles every module again, which is not what a user runs.

    .venv/bin/python bench/registry_timing.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = ("asyncpg", "pymongo", "bson", "redis", "motor")
PROBE = (
    "import sys, time\n"
    "started = time.perf_counter()\n"
    "from checks.registry import load_registry\n"
    "registry = load_registry()\n"
    "elapsed = time.perf_counter() - started\n"
    "import json\n"
    f"print(json.dumps({{'seconds': elapsed, 'checks': len(registry.checks), "
    f"'drivers': sorted({{m.split('.')[0] for m in sys.modules}} & set({DRIVERS!r}))}}))"
)


CACHE = tempfile.mkdtemp(prefix="dbvitals-pycache-")
STATE = tempfile.mkdtemp(prefix="dbvitals-state-")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
    "PYTHONPYCACHEPREFIX": CACHE, "XDG_STATE_HOME": STATE}


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh process: on a loaded machine the
    wall time is mostly waiting for a core, the CPU time is what the command costs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, env=ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(argv: list[str], runs: int, *, cold: bool = False) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        if cold:
            shutil.rmtree(Path(STATE) / "dbvitals", ignore_errors=True)
        samples.append(timed(argv))
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    command = [sys.executable, "-m", "console", "checks", "--format", "json"]
    timed(command)  # warm the file cache and the bytecode
    baseline = medians([sys.executable, "-c", "pass"], args.runs)
    catalog = medians(command, args.runs)
    cold = medians(command, args.runs, cold=True)
    probe = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, check=True, capture_output=True,
                                      text=True, env=ENV).stdout)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"python -c pass: wall {baseline[0]:.3f}s, CPU {baseline[1]:.3f}s (medians of {args.runs})")
    print(f"dbvitals checks, warm: wall {catalog[0]:.3f}s, CPU {catalog[1]:.3f}s (medians of {args.runs}; goal < 0.5s)")
    print(f"dbvitals checks, cold: wall {cold[0]:.3f}s, CPU {cold[1]:.3f}s (no cached catalog: every check imported)")
    print(f"load_registry in process: {probe['seconds']:.3f}s for {probe['checks']} checks; "
          f"drivers imported: {', '.join(probe['drivers']) or 'none'}")
    shutil.rmtree(CACHE, ignore_errors=True)
    shutil.rmtree(STATE, ignore_errors=True)
    return 1 if probe["drivers"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
