"""The Redis keyspace checks on 1,000,000 keys against `redis-cli --bigkeys`, side by side in one run.

Starts a private redis-server on a free loopback port, loads the keys (DEBUG POPULATE for the
bulk, plus patterned keys: sessions with and without TTL, rate limits, caches, hashes), lets
it settle, then times both on the same data:

- `redis-cli -p PORT --bigkeys` (SCAN, then TYPE and the length of every key);
- the keyspace checks as a user runs them: the engine's Runner with redis.ttl-coverage,
  redis.big-keys, redis.memory-by-pattern, redis.memory-policy and redis.hot-keys (one shared
  pass: TYPE, TTL and the length of every key, MEMORY USAGE, OBJECT ENCODING and OBJECT
  IDLETIME on one key in 100 inside the same page script, the small patterns' samples after),
  in a child process whose peak RSS is read from getrusage.

One warm-up run of each first (right after a bulk load the server is still rehashing its key
table, which slows whichever pass comes first), then rounds of A B B A; every run is printed
with the CPU the server and the client spent, then the median ratio. redis.ttl-coverage alone
(no lengths) is timed after, for information.

With --linear, the keyspace then grows to 5,000,000 keys and the same run is timed again: the
time per million keys at 5M against 1M shows whether the cost grows linearly (it takes a few
minutes and ~1 GB in the server, so it is an option).

    .venv/bin/python bench/redis_ttl_scan.py [--keys 1000000] [--rounds 2] [--linear]

Targets: median ratio dbvitals / --bigkeys <= 0.80, peak RSS under 100 MB, and (--linear)
time per million keys at 5M within 1.2x of 1M. The machine's other load shows in the load
average and in wall time; the CPU columns do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import asyncio, json, resource, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[3])
from checks.config import config_from_dict
from checks.registry import load_registry
from checks.runner import Runner

async def main():
    settings = config_from_dict({"targets": {"bench": {"kind": "redis", "url": sys.argv[1], "role": "cache", "check_timeout": 600}}})
    runner = Runner(settings, load_registry(), checks=sys.argv[2].split(","))
    before = resource.getrusage(resource.RUSAGE_SELF)
    begun = time.perf_counter()
    report = await runner.run()
    seconds = time.perf_counter() - begun
    usage = resource.getrusage(resource.RUSAGE_SELF)
    assert not report.errors, report.errors
    ttl = [f for f in report.findings if f.check == "redis.ttl-coverage"]
    scan = next((f.evidence["scan"] for f in report.findings if "scan" in f.evidence), {})
    print(json.dumps({
        "seconds": seconds,
        "process_seconds": time.perf_counter() - started,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime,  # the run, not the imports
        "scanned": scan.get("scanned_keys"),
        "findings": [(f.object, f.evidence["without_ttl"]) for f in ttl],
        "other_findings": len(report.findings) - len(ttl),
        "max_rss_mb": usage.ru_maxrss / 1024,
    }))

asyncio.run(main())
"""
TTL_ONLY = "redis.ttl-coverage"
KEYSPACE_CHECKS = "redis.ttl-coverage,redis.big-keys,redis.memory-by-pattern,redis.memory-policy,redis.hot-keys"
TARGET_RATIO = 0.80
TARGET_RSS_MB = 100
TARGET_LINEAR = 1.2


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


def load(port: int, total: int, bulk_prefix: str = "bulk") -> None:
    import redis

    client = redis.Redis(port=port, socket_timeout=600)
    patterned = min(total // 5, 200_000)
    bulk = total - patterned
    for chunk, start in enumerate(range(0, bulk, 1_000_000)):  # bulk:0 ... (no TTL), a million per call
        client.execute_command("DEBUG", "POPULATE", min(1_000_000, bulk - start), f"{bulk_prefix}{chunk or ''}")
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


def server_cpu(port: int) -> float:
    import redis

    info = redis.Redis(port=port).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_bigkeys(port: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server_cpu(port)
    started = time.perf_counter()
    subprocess.run(["redis-cli", "-p", str(port), "--bigkeys"], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu_seconds": client, "server_cpu": server_cpu(port) - server_before}


def run_dbvitals(port: int, checks: str) -> dict:
    server_before = server_cpu(port)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, f"redis://127.0.0.1:{port}/0", checks, str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(child.stdout)
    result["server_cpu"] = server_cpu(port) - server_before
    return result


def describe(label: str, run: dict) -> str:
    line = (f"{label:28s} {run['seconds']:6.2f}s   client CPU {run['cpu_seconds']:5.2f}s   "
            f"server CPU {run['server_cpu']:5.2f}s")
    if "max_rss_mb" in run:
        line += f"   peak RSS {run['max_rss_mb']:.0f} MB   (process {run['process_seconds']:.2f}s with imports)"
    return line


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of A B B A after the warm-up")
    parser.add_argument("--linear", action="store_true", help="then grow to 5x the keys and time the same run")
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
        time.sleep(2)  # let the server finish rehashing its key table
        print(f"machine: {os.cpu_count()} cores, load average {load_average()}")

        tools = {
            "bigkeys": ("redis-cli --bigkeys", lambda: run_bigkeys(port)),
            "dbvitals": ("dbvitals keyspace checks", lambda: run_dbvitals(port, KEYSPACE_CHECKS)),
        }
        for label, run in tools.values():
            print(describe(f"warm-up {label}", run()))
        runs: dict[str, list[dict]] = {"bigkeys": [], "dbvitals": []}
        for _ in range(args.rounds):
            for name in ("bigkeys", "dbvitals", "dbvitals", "bigkeys"):
                label, run = tools[name]
                runs[name].append(run())
                print(describe(label, runs[name][-1]))
        ttl_only = [run_dbvitals(port, TTL_ONLY) for _ in range(2)]
        for run in ttl_only:
            print(describe("dbvitals ttl-coverage alone", run))

        last = runs["dbvitals"][-1]
        print(f"scanned {last['scanned']:,} keys; ttl-coverage findings:")
        for pattern, missing in last["findings"]:
            print(f"  {pattern} ({missing:,} keys without TTL)")
        # Pairs in running order: A B | B A -> each dbvitals run against the --bigkeys run beside it.
        ratios = [d["seconds"] / b["seconds"] for d, b in zip(runs["dbvitals"], runs["bigkeys"])]
        median = statistics.median(r["seconds"] for r in runs["dbvitals"]) / statistics.median(
            r["seconds"] for r in runs["bigkeys"])
        cpu = lambda r: r["cpu_seconds"] + r["server_cpu"]  # noqa: E731
        cpu_ratio = statistics.median(map(cpu, runs["dbvitals"])) / statistics.median(map(cpu, runs["bigkeys"]))
        print("ratios per pair (dbvitals / --bigkeys): " + ", ".join(f"{r:.2f}" for r in ratios))
        print(f"median ratio dbvitals keyspace checks / --bigkeys: {median:.2f}  (target <= {TARGET_RATIO:.2f})")
        print(f"median CPU ratio (client + server): {cpu_ratio:.2f}")
        print(f"ttl-coverage alone, median: {statistics.median(r['seconds'] for r in ttl_only):.2f}s")
        peak = max(r["max_rss_mb"] for r in runs["dbvitals"] + ttl_only)
        print(f"peak RSS of the dbvitals process: {peak:.0f} MB  (target < {TARGET_RSS_MB} MB)")
        if args.linear:
            base = statistics.median(r["seconds"] for r in runs["dbvitals"])
            load(port, args.keys * 4, bulk_prefix="more")  # 4x more: 5x in all
            time.sleep(5)
            grown = [run_dbvitals(port, KEYSPACE_CHECKS) for _ in range(2)]
            for run in grown:
                print(describe(f"dbvitals at {args.keys * 5:,} keys", run))
            bigkeys_grown = run_bigkeys(port)
            print(describe(f"--bigkeys at {args.keys * 5:,} keys", bigkeys_grown))
            seconds = statistics.median(r["seconds"] for r in grown)
            small, big = last["scanned"], grown[-1]["scanned"]  # keys really read (the reload rewrites a few)
            per_million = lambda s, keys: s / (keys / 1_000_000)  # noqa: E731
            growth = per_million(seconds, big) / per_million(base, small)
            print(f"seconds per million keys: {per_million(base, small):.2f} at {small:,}, "
                  f"{per_million(seconds, big):.2f} at {big:,}: growth {growth:.2f}  "
                  f"(target <= {TARGET_LINEAR:.1f}; 1.0 is linear)")
            # CPU (this process and the server) does not depend on the machine's other load as wall time does.
            cpu_small = statistics.median(map(cpu, runs["dbvitals"]))
            cpu_big = statistics.median(map(cpu, grown))
            print(f"CPU seconds per million keys (client + server): {per_million(cpu_small, small):.2f} at {small:,}, "
                  f"{per_million(cpu_big, big):.2f} at {big:,}: growth {per_million(cpu_big, big) / per_million(cpu_small, small):.2f}")
            # The server's own cost per key grows with its table (cache misses): --bigkeys shows the same.
            client_growth = (per_million(statistics.median(r["cpu_seconds"] for r in grown), big)
                             / per_million(statistics.median(r["cpu_seconds"] for r in runs["dbvitals"]), small))
            bigkeys_small = statistics.median(map(cpu, runs["bigkeys"]))
            print(f"  dbvitals' own CPU per key: growth {client_growth:.2f}; --bigkeys (client + server) per key: growth "
                  f"{per_million(cpu(bigkeys_grown), big) / per_million(bigkeys_small, small):.2f}")
            print(f"peak RSS at {big:,} keys: {max(r['max_rss_mb'] for r in grown):.0f} MB "
                  f"(target < {TARGET_RSS_MB} MB)")
        print(f"load average after: {load_average()}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: the data must go anyway
            server.kill()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
