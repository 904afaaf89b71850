"""A fleet of 200 targets on loopback: PostgreSQL databases on two private clusters, Redis logical
databases on three private servers, MongoDB databases on a SecantusDB; discovered from six
configured targets (`databases = ...`). Prints the wall time of `dbvitals check` on all of them,
the time per target, the peak number of dbvitals sessions seen on each server (polled from the
server's side; the budget is max_sessions_per_server), the client's peak RSS, and then the same
fleet served to a real Prometheus: the time until every target has been scraped once.

    .venv/bin/python bench/fleet.py [--pg-databases 70] [--redis-servers 3] [--mongo-databases 12]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import support  # noqa: E402  (the test suite's private servers)


class Peaks:
    """Peak dbvitals sessions per server, polled every 20 ms from a thread of its own."""

    def __init__(self, pg_urls: list[str], redis_urls: list[str]) -> None:
        self.pg_urls, self.redis_urls = pg_urls, redis_urls
        self.peak: dict[str, int] = {u: 0 for u in [*pg_urls, *redis_urls]}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncpg
        import redis

        async def poll() -> None:
            pg = [await asyncpg.connect(u, server_settings={"application_name": "bench-poll"}) for u in self.pg_urls]
            rd = [redis.Redis.from_url(u) for u in self.redis_urls]
            while not self.stop.is_set():
                for url, conn in zip(self.pg_urls, pg, strict=True):
                    n = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dbvitals%'")
                    self.peak[url] = max(self.peak[url], int(n))
                for url, client in zip(self.redis_urls, rd, strict=True):
                    n = sum(1 for c in client.client_list() if c.get("name") == "dbvitals")
                    self.peak[url] = max(self.peak[url], n)
                await asyncio.sleep(0.02)
            for conn in pg:
                await conn.close()

        asyncio.run(poll())

    def __enter__(self) -> Peaks:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def timed_check(config: Path) -> tuple[float, int, dict]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "console", "check", "--config", str(config), "--format", "json",
                                "--fail-on", "never", "--output", str(config.with_suffix(".json"))], cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    report = json.loads(config.with_suffix(".json").read_text()) if status == 0 else {}
    return elapsed, usage.ru_maxrss // 1024, report


async def seed_pg(url: str, names: list[str]) -> None:
    import asyncpg

    admin = await asyncpg.connect(url)
    for name in names:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(support.with_path(url, name))
        await conn.execute("CREATE TABLE parent (id bigint PRIMARY KEY); "
                           "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent (id)); "
                           "CREATE TABLE events (at timestamptz, payload text)")
        await conn.close()
    await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-databases", type=int, default=70, help="per cluster (two clusters)")
    parser.add_argument("--redis-servers", type=int, default=3, help="16 logical databases each")
    parser.add_argument("--mongo-databases", type=int, default=12)
    parser.add_argument("--no-prometheus", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dbvitals-fleet-"))
    with contextlib.ExitStack() as stack:
        pg_urls = [stack.enter_context(support.private_postgres("max_connections=100")) for _ in range(2)]
        for i, url in enumerate(pg_urls):
            asyncio.run(seed_pg(url, [f"fleet_{i}_{n:03d}" for n in range(args.pg_databases)]))
        redis_urls = []
        for _ in range(args.redis_servers):
            port = support.free_port()
            data = work / f"redis-{port}"
            data.mkdir()
            process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", str(data), "--databases", "16"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(process.terminate)
            support.wait_for_port(port, process=process)
            url = f"redis://127.0.0.1:{port}/0"
            import redis

            for db in range(16):
                client = redis.Redis.from_url(f"redis://127.0.0.1:{port}/{db}")
                client.mset({f"session:{n}": "x" for n in range(50)})
            redis_urls.append(url)
        mongo = support.SecantusServer()
        stack.callback(mongo.stop)
        import pymongo

        client = pymongo.MongoClient(mongo.uri)
        for n in range(args.mongo_databases):
            client[f"fleet_{n:03d}"]["events"].insert_many([{"n": i} for i in range(20)])
        lines = []
        for i, url in enumerate(pg_urls):
            lines += [f"[targets.pg{i}]", 'kind = "postgres"', f'url = "{url}"', f'databases = "fleet_{i}_*"', "timeout = 10",
                      'group = "postgres"']
        for i, url in enumerate(redis_urls):
            lines += [f"[targets.redis{i}]", 'kind = "redis"', f'url = "{url}"', 'databases = "*"', "timeout = 10"]
        mongo_url = mongo.uri.replace("/?", "/admin?")
        lines += ["[targets.mongo]", 'kind = "mongodb"', f'url = "{mongo_url}"', 'databases = "fleet_*"', "timeout = 10"]
        config = work / "fleet.toml"
        config.write_text("\n".join(lines) + "\n")
        with Peaks(pg_urls, redis_urls) as peaks:
            elapsed, rss_mb, report = timed_check(config)
        targets = len(report.get("targets", []))
        print(f"targets              {targets} (PostgreSQL {2 * args.pg_databases}, Redis {16 * args.redis_servers}, "
              f"MongoDB {args.mongo_databases})")
        print(f"dbvitals check       {elapsed:.1f} s wall, {elapsed / max(targets, 1) * 1000:.0f} ms per target, "
              f"{len(report.get('findings', []))} findings, {len(report.get('errors', []))} check errors")
        print(f"client peak RSS      {rss_mb} MB")
        for url, peak in peaks.peak.items():
            print(f"peak sessions        {peak} on {url.rsplit('@', 1)[-1]} (budget 2)")
        if not args.no_prometheus and shutil.which("prometheus"):
            serve_prometheus(config, work, report)
        print(f"load average         {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def serve_prometheus(config: Path, work: Path, report: dict) -> None:
    names = [t["name"] for t in report.get("targets", [])]
    port, prom_port = support.free_port(), support.free_port()
    serve = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(config),
                              "--listen", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.DEVNULL)
    (work / "targets.json").write_text(json.dumps([{"targets": names}]))
    (work / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "15s", "scrape_timeout": "14s"},
        "scrape_configs": [{"job_name": "dbvitals", "metrics_path": "/probe",
                            "file_sd_configs": [{"files": [str(work / "targets.json")]}],
                            "relabel_configs": [
                                {"source_labels": ["__address__"], "target_label": "__param_target"},
                                {"source_labels": ["__param_target"], "target_label": "instance"},
                                {"target_label": "__address__", "replacement": f"127.0.0.1:{port}"}]}]}))
    prometheus = subprocess.Popen(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        support.wait_for_port(port, process=serve)
        support.wait_for_port(prom_port, process=prometheus)
        started = time.monotonic()
        seen = 0
        while time.monotonic() - started < 180:
            query = urllib.parse.urlencode({"query": "count(dbvitals_last_run_timestamp_seconds)"})
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?{query}", timeout=10) as r:
                result = json.loads(r.read())["data"]["result"]
            seen = int(float(result[0]["value"][1])) if result else 0
            if seen >= len(names):
                break
            time.sleep(1)
        print(f"prometheus           {seen} of {len(names)} targets scraped with a result after "
              f"{time.monotonic() - started:.0f} s (scrape interval 15 s)")
    finally:
        prometheus.terminate()
        serve.terminate()
        prometheus.wait(15)
        serve.wait(15)


if __name__ == "__main__":
    raise SystemExit(main())
