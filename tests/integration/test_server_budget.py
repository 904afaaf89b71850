"""The server budget and the free-slot guard, on servers of the test's own with few slots.

Fifty targets on one server hold at most max_sessions_per_server sessions there at once
(measured from the server's side while the run goes on), and a server a few slots from full
gets one session, its connection and pool checks, and a finding saying the rest was skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from checks.registry import load_registry
from checks.runner import Runner
from checks.model import Report, Severity, TargetState
from tests import support

TARGETS = 50
# Enough to cover the catalog snapshot, the pool and the connection checks, quickly.
PG_CHECKS = ["postgres.connection", "postgres.pool", "postgres.fk-missing-index", "postgres.duplicate-index",
             "postgres.no-primary-key"]
REDIS_CHECKS = ["redis.connection", "redis.pool", "redis.ttl-coverage", "redis.big-keys", "redis.persistence"]


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        pytest.fail("initdb not found under /usr/lib/postgresql: run scripts/setup.sh", pytrace=False)
    return found[-1].parent


@pytest.fixture(scope="module")
def small_postgres() -> Iterator[str]:
    """A throwaway cluster with max_connections = 20 (17 usable: 3 are reserved for superusers)."""
    bindir = _bindir()
    data = Path(tempfile.mkdtemp(prefix="dbvitals-budget-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    port = support.free_port()
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db")]
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} "
               "-c max_connections=20 -c superuser_reserved_connections=3 -c fsync=off -c log_connections=on")
    subprocess.run([*pg_ctl, "-l", str(data / "log"), "-w", "-o", options, "start"], check=True, capture_output=True)
    global PG_LOG
    PG_LOG = data / "log"
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


PG_LOG: Path | None = None


def dbvitals_sessions_opened() -> int:
    """Sessions dbvitals has opened on the private cluster so far (log_connections)."""
    assert PG_LOG is not None
    return PG_LOG.read_text(errors="replace").count("application_name=dbvitals")


class Peak:
    """Counts dbvitals' sessions on the server from a thread of its own (its own connection,
    opened before the run starts) while the run goes on, and keeps the highest count."""

    def __init__(self, open_reader: Callable[[], tuple[Callable[[], int], Callable[[], None]]]) -> None:
        self.open_reader = open_reader
        self.highest = 0
        self.samples = 0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        read, close = self.open_reader()
        try:
            self._ready.set()
            while not self._stop.is_set():
                self.highest = max(self.highest, read())
                self.samples += 1
                time.sleep(0.005)
        finally:
            close()

    def __enter__(self) -> Peak:
        self._thread.start()
        assert self._ready.wait(30), "the poller could not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _run(settings, checks: list[str]) -> Report:
    return asyncio.run(Runner(settings, load_registry(), checks=checks).run())


def _pg_reader(url: str) -> Callable[[], tuple[Callable[[], int], Callable[[], None]]]:
    def open_reader() -> tuple[Callable[[], int], Callable[[], None]]:
        import asyncpg

        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(asyncpg.connect(url))

        def read() -> int:
            return loop.run_until_complete(
                conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbvitals'"))

        def close() -> None:
            loop.run_until_complete(conn.close())
            loop.close()

        return read, close

    return open_reader


def _pg_targets(base: str, databases: list[str], **extra) -> object:
    targets = {f"t{i:02d}": {"kind": "postgres", "url": f"{base}/{databases[i % len(databases)]}", "timeout": 10,
                             "check_timeout": 120} for i in range(TARGETS)}
    return support.config_from_dict({"targets": targets, **extra})


@pytest.fixture(scope="module")
def pg_databases(small_postgres) -> list[str]:
    """Ten databases, each with a table whose foreign key has no index (so checks have work)."""
    import asyncpg

    names = [f"budget_{i}" for i in range(10)]

    async def create() -> None:
        admin = await asyncpg.connect(f"{small_postgres}/postgres")
        try:
            for name in names:
                await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        for name in names:
            conn = await asyncpg.connect(f"{small_postgres}/{name}")
            try:
                await conn.execute("CREATE TABLE parent (id int PRIMARY KEY);"
                                   "CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent)")
            finally:
                await conn.close()

    asyncio.run(create())
    return names


def test_fifty_postgres_targets_stay_within_the_server_budget(small_postgres, pg_databases):
    settings = _pg_targets(small_postgres, pg_databases)
    opened = dbvitals_sessions_opened()
    with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
        report = _run(settings, PG_CHECKS)
    assert report.errors == []
    assert dbvitals_sessions_opened() - opened == TARGETS  # one session per target, all its checks on it
    assert [t.state for t in report.targets] == [TargetState.CONNECTED] * TARGETS
    assert len(support.by_check(report.findings, "postgres.fk-missing-index")) == TARGETS
    assert peak.samples > 10 and 1 <= peak.highest <= 2  # max_sessions_per_server = 2 by default


def test_a_lower_budget_is_kept_too(small_postgres, pg_databases):
    settings = _pg_targets(small_postgres, pg_databases[:2], max_sessions_per_server=1)
    with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
        report = _run(settings, ["postgres.connection", "postgres.no-primary-key"])
    assert report.errors == [] and len(report.targets) == TARGETS
    assert peak.samples > 10 and peak.highest == 1


def _hold_pg(base: str, count: int):
    """`count` idle sessions of someone else's, held open until closed."""
    import asyncpg

    async def connect_all() -> list:
        return [await asyncpg.connect(f"{base}/postgres") for _ in range(count)]

    async def close_all() -> None:
        for conn in conns:
            await conn.close()

    loop = asyncio.new_event_loop()
    conns = loop.run_until_complete(connect_all())

    def release() -> None:
        loop.run_until_complete(close_all())
        loop.close()

    return release


def _pg_free(base: str) -> int:
    async def read() -> int:
        import asyncpg

        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            return await conn.fetchval(
                "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')")
        finally:
            await conn.close()

    return asyncio.run(read()) + 1  # free once the reading session itself is gone


def test_a_postgres_server_three_slots_from_full_gets_one_session_and_the_skip_reported(small_postgres, pg_databases):
    release = _hold_pg(small_postgres, _pg_free(small_postgres) - 3 - 1)  # the poller takes one more
    try:
        with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
            assert _pg_free(small_postgres) == 3
            opened = dbvitals_sessions_opened()
            report = _run(_pg_targets(small_postgres, pg_databases), PG_CHECKS)
            opened = dbvitals_sessions_opened() - opened
    finally:
        release()
    assert opened == 1 and peak.highest <= 1  # the run is short: the server's log counts the sessions
    assert report.errors == []
    states = [t.state for t in report.targets]
    assert states.count(TargetState.CONNECTED) == 1 and states.count(TargetState.SKIPPED) == TARGETS - 1
    ran = {(c["target"], c["check"]) for c in report.checks}
    first = next(t.name for t in report.targets if t.state is TargetState.CONNECTED)
    assert {check for target, check in ran if target == first} == {"postgres.connection", "postgres.pool"}
    assert {check for target, check in ran if target != first} == {"postgres.connection"}
    skips = [f for f in report.findings if f.title.startswith("Checks skipped")]
    assert len(skips) == TARGETS and {f.check for f in skips} == {"postgres.connection"}
    mine = next(f for f in skips if f.target == first)
    assert mine.severity is Severity.HIGH
    assert mine.evidence["free"] == 2 and mine.evidence["usable"] == 17 and mine.evidence["floor"] == 5
    assert set(mine.evidence["skipped_checks"]) == set(PG_CHECKS) - {"postgres.connection", "postgres.pool"}
    assert "ran only the connection and pool checks" in mine.message
    other = next(f for f in skips if f.target != first)
    assert "did not connect to this target" in other.message
    # The pool check still judged the server on the one session: it is nearly full.
    assert any(f.check == "postgres.pool" and f.target == first for f in report.findings)


# --- Redis -------------------------------------------------------------------------------------------

class SmallRedis:
    def __init__(self, maxclients: int) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = support.free_port()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxclients", str(maxclients)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        support.wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def small_redis() -> Iterator[SmallRedis]:
    server = SmallRedis(maxclients=30)
    try:
        yield server
    finally:
        server.stop()


def _redis_reader(port: int) -> Callable[[], tuple[Callable[[], int], Callable[[], None]]]:
    def open_reader() -> tuple[Callable[[], int], Callable[[], None]]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        client.ping()
        return (lambda: sum(1 for c in client.client_list() if c.get("name") == "dbvitals")), client.close

    return open_reader


def _redis_targets(port: int) -> object:
    targets = {f"t{i:02d}": {"kind": "redis", "url": f"redis://127.0.0.1:{port}/{i % 16}", "timeout": 10,
                             "check_timeout": 120} for i in range(TARGETS)}
    return support.config_from_dict({"targets": targets})


def test_fifty_redis_targets_stay_within_the_server_budget(small_redis):
    import redis

    seed = redis.Redis(host="127.0.0.1", port=small_redis.port, db=3)
    seed.mset({f"session:{n}": "x" for n in range(50)})
    seed.close()
    with Peak(_redis_reader(small_redis.port)) as peak:
        report = _run(_redis_targets(small_redis.port), REDIS_CHECKS)
    assert report.errors == []
    assert [t.state for t in report.targets] == [TargetState.CONNECTED] * TARGETS
    assert peak.samples > 10 and 1 <= peak.highest <= 2


def test_a_redis_server_three_slots_from_full_gets_one_session_and_the_skip_reported(small_redis):
    import redis

    # 30 maxclients: the poller and 26 idle clients leave 3 free.
    held = [redis.Redis(host="127.0.0.1", port=small_redis.port) for _ in range(26)]
    try:
        for client in held:
            client.ping()
        with Peak(_redis_reader(small_redis.port)) as peak:
            accepted = held[0].info("stats")["total_connections_received"]
            report = _run(_redis_targets(small_redis.port), REDIS_CHECKS)
            accepted = held[0].info("stats")["total_connections_received"] - accepted
    finally:
        for client in held:
            client.close()
    # The run is short: the server's own count of accepted connections says there was one.
    assert accepted == 1 and peak.highest <= 1
    assert report.errors == []
    states = [t.state for t in report.targets]
    assert states.count(TargetState.CONNECTED) == 1 and states.count(TargetState.SKIPPED) == TARGETS - 1
    first = next(t.name for t in report.targets if t.state is TargetState.CONNECTED)
    assert {c["check"] for c in report.checks if c["target"] == first} == {"redis.connection", "redis.pool"}
    skips = [f for f in report.findings if f.title.startswith("Checks skipped")]
    assert len(skips) == TARGETS and {f.check for f in skips} == {"redis.connection"}
    mine = next(f for f in skips if f.target == first)
    assert mine.evidence["usable"] == 30 and mine.evidence["free"] == 2 and mine.evidence["floor"] == 5


def test_targets_on_fifty_targets_of_one_server_keeps_the_budget(small_postgres, pg_databases, tmp_path, capsys):
    from console.cli import main

    targets = {f"t{i:02d}": {"kind": "postgres", "url": f"{small_postgres}/{pg_databases[i % len(pg_databases)]}",
                             "timeout": 10} for i in range(TARGETS)}
    config = support.write_targets_toml(tmp_path, targets)
    with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
        code = main(["targets", "--format", "json", "--config", str(config)])
    states = [t["state"] for t in json.loads(capsys.readouterr().out)["targets"]]
    assert code == 0 and states == ["connected"] * TARGETS
    assert peak.samples > 10 and 1 <= peak.highest <= 2


def test_fix_after_a_check_of_fifty_targets_keeps_the_budget(small_postgres, pg_databases, tmp_path, capsys):
    """`dbvitals check` on fifty targets of one server, then `dbvitals fix ID`: the fix runs its
    one check on its one target, and its connections, kept for the verification, stay within
    the server budget (#22 item 5). An id no report knows is refused before any connection (#23)."""
    from console.cli import main

    targets = {f"t{i:02d}": {"kind": "postgres", "url": f"{small_postgres}/{pg_databases[i % len(pg_databases)]}",
                             "timeout": 10, "check_timeout": 120, "allow_fixes": True} for i in range(TARGETS)}
    config = support.write_targets_toml(tmp_path, targets, f'journal = "{tmp_path / "journal.jsonl"}"')
    assert main(["check", "--check", "postgres.fk-missing-index", "--format", "json", "--fail-on", "never",
                 "--config", str(config)]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    wanted = next(f for f in findings if f["target"] == "t07" and f["check"] == "postgres.fk-missing-index")
    with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
        code = main(["fix", wanted["id"], "--dry-run", "--config", str(config)])
    out = capsys.readouterr()
    assert code == 0, out
    assert "dry run: nothing applied." in out.out
    # A fix that runs one check on one target is over in a few polls: seeing its session once
    # (highest >= 1) is what proves the poller watched it.
    assert 1 <= peak.highest <= 2, (peak.highest, peak.samples)


def _pg_templates(base: str) -> object:
    """Fifty targets of one server, each standing for its databases (databases = "budget_*")."""
    targets = {f"t{i:02d}": {"kind": "postgres", "url": f"{base}/postgres", "databases": "budget_*", "timeout": 10}
               for i in range(TARGETS)}
    return support.config_from_dict({"targets": targets})


def test_discovery_on_fifty_targets_of_one_server_keeps_the_budget(small_postgres, pg_databases):
    from checks.fleet import discover

    with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
        found = asyncio.run(discover(_pg_templates(small_postgres)))
    assert len(found.targets) == TARGETS * len(pg_databases)
    assert peak.samples > 10 and 1 <= peak.highest <= 2, peak.highest


def test_discovery_on_a_server_three_slots_from_full_lists_once(small_postgres, pg_databases):
    from checks.fleet import discover

    release = _hold_pg(small_postgres, _pg_free(small_postgres) - 3)
    try:
        assert _pg_free(small_postgres) == 3
        opened = dbvitals_sessions_opened()
        found = asyncio.run(discover(_pg_templates(small_postgres)))
        opened = dbvitals_sessions_opened() - opened
    finally:
        release()
    assert opened == 1  # the session that read the free slots; the rest stay as configured
    discovered = [name for name in found.targets if "/" in name]
    assert len(discovered) == len(pg_databases)
    assert len(found.targets) == len(pg_databases) + TARGETS - 1


def test_serve_scraped_for_fifty_targets_at_once_keeps_the_budget(small_postgres, pg_databases, tmp_path):
    """Fifty concurrent /probe scrapes, on a serve whose targets include fifty
    discovered at start-up: never more than max_sessions_per_server sessions on the server."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.test_serve import get, serving, write_config

    targets = {f"t{i:02d}": {"kind": "postgres", "url": f"{small_postgres}/{pg_databases[i % len(pg_databases)]}",
                             "timeout": 10, "check_timeout": 120} for i in range(TARGETS)}
    targets["all"] = {"kind": "postgres", "url": f"{small_postgres}/postgres", "databases": "budget_*", "timeout": 10}
    config = write_config(tmp_path, targets, serve={"min_interval": 0.0})
    with Peak(_pg_reader(f"{small_postgres}/postgres")) as peak:
        with serving(config) as port:
            base = f"http://127.0.0.1:{port}"
            with ThreadPoolExecutor(max_workers=TARGETS) as pool:
                # The scraper's own timeout, as Prometheus sends it: fifty targets queued behind a
                # budget of two sessions outlast the 10 s default on a loaded machine.
                wait = {"X-Prometheus-Scrape-Timeout-Seconds": "110"}
                answers = list(pool.map(lambda name: get(f"{base}/probe?target={name}", headers=wait, timeout=120),
                                        [*targets][:TARGETS]))
    assert all(status == 200 for status, _, _ in answers), [a[:1] + (a[2][:200],) for a in answers if a[0] != 200]
    assert all('state="connected"' in body for _, _, body in answers)
    assert peak.samples > 10 and 1 <= peak.highest <= 2, peak.highest
