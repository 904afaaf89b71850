"""The full redis.ttl-coverage scan against `redis-cli --bigkeys`, on 1,000,000 keys, side by side.

Starts a private redis-server on a free loopback port, loads the keys (DEBUG POPULATE for the
bulk, plus patterned keys: sessions with and without TTL, rate limits, caches), then times
`redis-cli -p PORT --bigkeys` and dbvitals' full keyspace pass (the one redis.ttl-coverage and
redis.big-keys share), the latter in a child process whose peak RSS is read from getrusage.

    .venv/bin/python bench/redis_ttl_scan.py [--keys 1000000]

Targets: no slower than --bigkeys, and under 300 MB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import asyncio, json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from checks.config import config_from_dict
from checks.engine import Scope
from checks.model import Engine, TargetState, TargetStatus
from checks.connectors.redis import connect
from checks.redis.ttl_coverage import TtlCoverage

async def main():
    settings = config_from_dict({"targets": {"bench": {"kind": "redis", "url": sys.argv[1], "role": "cache"}}})
    target = settings.targets["bench"]
    connection = await connect("bench", target)
    check = TtlCoverage()
    scope = Scope("bench", target, TtlCoverage.Options(), connection.status)
    started = time.perf_counter()
    facts = await check.gather(connection.session, scope)
    findings = check.evaluate(facts, scope)
    seconds = time.perf_counter() - started
    await connection.close()
    print(json.dumps({
        "seconds": seconds,
        "scanned": facts.scanned,
        "patterns": sum(len(d.patterns) for d in facts.databases),
        "findings": [(f.object, f.evidence["without_ttl"]) for f in findings],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"redis-server on {port} did not start")


def load(port: int, total: int) -> None:
    import redis

    client = redis.Redis(port=port)
    patterned = min(total // 5, 200_000)
    client.execute_command("DEBUG", "POPULATE", total - patterned, "bulk")  # bulk:0 ... (no TTL)
    pipe = client.pipeline(transaction=False)
    for n in range(patterned):
        kind = n % 4
        if kind == 0:
            pipe.set(f"session:{uuid.uuid4()}", "u", ex=None if n % 100 == 0 else 604800)
        elif kind == 1:
            pipe.set(f"rate:vote:{n}:2026-05-{n % 28 + 1:02d}", 1)
        elif kind == 2:
            pipe.set(f"cache:user:{n}", "{}", ex=3600)
        else:
            pipe.hset(f"user:{n}:profile", mapping={"name": "x", "n": n})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        sys.exit("redis-server and redis-cli are needed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dbvitals-bench-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--enable-debug-command", "local"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        started = time.perf_counter()
        load(port, args.keys)
        print(f"loaded {args.keys:,} keys in {time.perf_counter() - started:.1f}s (port {port})")
        print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        # Twice each, interleaved (A B B A): right after a bulk load the server is still rehashing
        # its key table, which slows whichever pass comes first.
        runs: dict[str, list[float]] = {"bigkeys": [], "dbvitals": []}
        result: dict = {}
        for tool in ("bigkeys", "dbvitals", "dbvitals", "bigkeys"):
            if tool == "bigkeys":
                started = time.perf_counter()
                subprocess.run(["redis-cli", "-p", str(port), "--bigkeys"], check=True, stdout=subprocess.DEVNULL)
                runs[tool].append(time.perf_counter() - started)
                print(f"redis-cli --bigkeys:        {runs[tool][-1]:6.1f}s")
                continue
            child = subprocess.run(
                [sys.executable, "-c", CHILD, f"redis://127.0.0.1:{port}/0", str(ROOT)],
                check=True, capture_output=True, text=True,
            )
            result = json.loads(child.stdout)
            runs[tool].append(result["seconds"])
            print(f"dbvitals ttl-coverage scan: {result['seconds']:6.1f}s  ({result['scanned']:,} keys, "
                  f"{result['patterns']} patterns, peak RSS {result['max_rss_mb']:.0f} MB)")
        for pattern, missing in result["findings"]:
            print(f"  finding: {pattern} ({missing:,} keys without TTL)")
        for label, pick in (("best", min), ("worst", max)):
            ratio = pick(runs["dbvitals"]) / pick(runs["bigkeys"])
            print(f"ratio dbvitals / --bigkeys ({label} of each): {ratio:.2f}  (target <= 1.00)")
        print(f"peak RSS of the dbvitals process: {result['max_rss_mb']:.0f} MB  (target < 300 MB)")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
