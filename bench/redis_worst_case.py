"""The Redis keyspace checks when every key pattern is a finding: cost against findings.

Starts a private redis-server on a free loopback port and fills it with key patterns of which
not one key has a TTL, all named as cache entries (`cache:<word>:<word>:<word>:<id>`, ten keys
each), so redis.ttl-coverage flags every pattern; then runs the keyspace checks as a user runs
them (the engine's Runner: redis.ttl-coverage, redis.big-keys, redis.memory-policy over one
shared pass) at --patterns and at five times as many, and prints each time, the findings and
the ratio. Goal: linear, the 5× run at most 6× the time.

    .venv/bin/python bench/redis_worst_case.py [--patterns 512] [--keys-per-pattern 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks.config import config_from_dict  # noqa: E402
from checks.registry import load_registry  # noqa: E402
from checks.runner import Runner  # noqa: E402
from tests import support  # noqa: E402

CHECKS = ["redis.ttl-coverage", "redis.big-keys", "redis.memory-policy"]
# Sixteen literals per position: fewer than the scan's collapse threshold, so each stays a pattern.
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike", "november", "oscar", "papa"]


def fill(port: int, patterns: int, per_pattern: int) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    client.flushall()
    names = itertools.islice(itertools.product(WORDS, WORDS, WORDS), patterns)
    pipe = client.pipeline(transaction=False)
    for n, (a, b, c) in enumerate(names):
        for key in range(per_pattern):
            pipe.set(f"cache:{a}:{b}:{c}:{n * per_pattern + key}", "v")
        if n % 200 == 199:
            pipe.execute()
    pipe.execute()
    client.close()


def run(port: int) -> tuple[float, int, list[str]]:
    settings = config_from_dict({"targets": {"cache": {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0"}}})
    started = time.perf_counter()
    report = asyncio.run(Runner(settings, load_registry(), checks=CHECKS).run())
    elapsed = time.perf_counter() - started
    flagged = sum(1 for f in report.findings if f.check == "redis.ttl-coverage")
    return elapsed, flagged, [f"{e.check}: {e.message}" for e in report.errors]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=512)
    parser.add_argument("--keys-per-pattern", type=int, default=10)
    args = parser.parse_args()
    if args.patterns * 5 > len(WORDS) ** 3:
        parser.error(f"--patterns at most {len(WORDS) ** 3 // 5}")
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = support.free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        support.wait_for_port(port, process=server)
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        times = {}
        for patterns in (args.patterns, args.patterns * 5):
            fill(port, patterns, args.keys_per_pattern)
            run(port)  # warm-up: the server rehashes its key table right after a bulk load
            elapsed, flagged, errors = run(port)
            times[patterns] = elapsed
            print(f"{patterns:,} patterns ({patterns * args.keys_per_pattern:,} keys), none with a TTL: "
                  f"{elapsed:.2f}s, {flagged:,} ttl-coverage findings" + (f"; errors: {'; '.join(errors)}" if errors else ""))
        small, large = args.patterns, args.patterns * 5
        print(f"ratio {times[large] / times[small]:.2f}× for 5× the patterns and findings (goal ≤ 6×)")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
