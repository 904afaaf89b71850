"""The activity view against real servers: a blocked session, an idle transaction, a slow Redis
command, MongoDB operations; cancel and terminate refused without allow_fixes, journalled with it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import asyncpg
import pymongo
import pytest

from checks.actions.journal import Journal
from checks.actions.kill import plan_kill
from checks.actions.pipeline import ActionRefused, perform
from checks.activity.session import ActivityWatch
from checks.budget import server_key
from checks.mongodb import activity as mongo_activity
from checks.own_sessions import OWN_SESSIONS
from checks.postgres import activity as pg_activity
from checks.postgres.connector import open_pool
from checks.redis import activity as redis_activity
from tests import support
from tests.integration.test_cli import dbvitals
from tests.integration.test_redis_server_settings import private_redis



def config(tmp_path: Path, url: str, kind: str, **extra: object) -> Path:
    lines = [f'journal = "{tmp_path / "journal.jsonl"}"', "[targets.app]", f'kind = "{kind}"', f"url = {json.dumps(url)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path = tmp_path / "dbvitals.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Blocker:
    """Two sessions of the test's own: one holds a lock in an open transaction, one waits on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Names of this test's own: the per-application counts are server-wide.
        self.holder_name, self.waiter_name = support.unique("holder"), support.unique("waiter")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> tuple[int, int]:
        self.holder = await asyncpg.connect(self.url, server_settings={"application_name": self.holder_name})
        self.waiter = await asyncpg.connect(self.url, server_settings={"application_name": self.waiter_name})
        await self.holder.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
        await self.holder.execute("BEGIN")
        await self.holder.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        self.waiting = asyncio.ensure_future(self.waiter.fetch("SELECT count(*) FROM accounts"))
        return self.holder.get_server_pid(), self.waiter.get_server_pid()

    def start(self) -> tuple[int, int]:
        pids = self.run(self._start())
        # On the helper's own loop: a console test calls this from inside its running loop.
        self.run(support.pg_until(self.url, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                                  pids[1]))
        return pids

    async def _stop(self) -> None:
        for conn in (self.holder, self.waiter):
            conn.terminate()
        self.waiting.cancel()

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class Sleeper:
    """A session of the test's own running `SELECT pg_sleep(30)`, until cancelled or stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Names of this test's own: the per-application counts are server-wide.
        self.holder_name, self.waiter_name = support.unique("holder"), support.unique("waiter")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> int:
        self.conn = await asyncpg.connect(self.url, server_settings={"application_name": "sleeper"})
        self.sleeping = asyncio.ensure_future(self.conn.fetchval("SELECT pg_sleep(30)"))
        return self.conn.get_server_pid()

    def start(self) -> int:
        pid = self.run(self._start())
        self.run(support.pg_until(self.url, "SELECT state = 'active' AND query LIKE 'SELECT pg_sleep%' "
                                  "FROM pg_stat_activity WHERE pid = $1", pid))
        return pid

    async def _outcome(self) -> BaseException | None:
        try:
            await asyncio.wait_for(asyncio.shield(self.sleeping), 10)
        except Exception as exc:
            return exc
        return None

    def outcome(self) -> BaseException | None:
        return self.run(self._outcome())

    async def _stop(self) -> None:
        self.conn.terminate()
        self.sleeping.cancel()

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture
def blocked(pg_db):
    blocker = Blocker(pg_db.url)
    holder, waiter = blocker.start()
    try:
        yield holder, waiter
    finally:
        blocker.stop()


def test_postgres_blocking_tree_and_idle_transaction(tmp_path, pg_db, blocked):
    holder, waiter = blocked
    result = dbvitals("activity", "--config", str(config(tmp_path, pg_db.url, "postgres")), "--format", "json")
    assert result.returncode == 0, result.stderr
    [target] = json.loads(result.stdout)["targets"]
    sections = target["activity"]["sections"]
    tree = {row["id"]: row for row in sections["blocking"]}
    assert tree[holder]["depth"] == 0 and tree[holder]["blocks"] == 1
    assert tree[waiter]["waits_on"] == holder and tree[waiter]["depth"] == 1
    assert tree[waiter]["wait"].startswith("Lock:")
    idle = [row["id"] for row in sections["idle_in_transaction"]]
    assert holder in idle  # it holds the lock and does nothing
    apps = {row["application"]: row for row in sections["applications"]}
    named = {row["id"]: row["application"] for row in sections["sessions"]}
    assert apps[named[waiter]]["waiting"] == 1 and apps[named[holder]]["idle_in_transaction"] == 1

    text = dbvitals("activity", "--config", str(config(tmp_path, pg_db.url, "postgres")), env={"COLUMNS": "80"})
    assert text.returncode == 0, text.stderr
    assert all(len(line) <= 80 for line in text.stdout.splitlines()), text.stdout
    assert "Blocking" in text.stdout and f"{holder} blocks 1" in text.stdout


def test_terminate_refused_without_allow_fixes_and_journalled_with_it(tmp_path, pg_db, blocked):
    holder, _ = blocked
    path = config(tmp_path, pg_db.url, "postgres")
    refused = dbvitals("activity", "--config", str(path), "--target", "app", "--terminate", str(holder),
                       "--yes", "--allow-unsafe")
    assert refused.returncode == 3 and "does not allow fixes" in refused.stderr
    assert not (tmp_path / "journal.jsonl").exists()

    path = config(tmp_path, pg_db.url, "postgres", allow_fixes=True)
    no_unsafe = dbvitals("activity", "--config", str(path), "--target", "app", "--terminate", str(holder), "--yes")
    assert no_unsafe.returncode == 3 and "--allow-unsafe" in no_unsafe.stderr

    done = dbvitals("activity", "--config", str(path), "--target", "app", "--terminate", str(holder),
                    "--yes", "--allow-unsafe")
    assert done.returncode == 0, done.stderr
    assert f"pg_terminate_backend({holder})" in done.stderr
    entries = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert entries[-1]["outcome"] == "fixed" and entries[-1]["safety"] == "unsafe"
    assert entries[-1]["kind"] == "terminate" and entries[-1]["verified"] is True and len(entries[-1]["id"]) == 8
    assert entries[-1]["steps"][0]["command"] == f"SELECT pg_terminate_backend({holder})"
    assert f"session {holder} is gone" in done.stderr
    still = pg_db.fetch("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", holder)
    assert still[0][0] == 0


def test_cancel_of_an_idle_transaction_is_not_fixed_and_offers_terminate(tmp_path, pg_db, blocked):
    """pg_cancel_backend answers true for a session idle in transaction, and nothing changes:
    its locks stay held. Reading the session again tells the truth."""
    holder, waiter = blocked
    path = config(tmp_path, pg_db.url, "postgres", allow_fixes=True)
    done = dbvitals("activity", "--config", str(path), "--target", "app", "--cancel", str(holder),
                    "--yes", "--allow-unsafe")
    assert done.returncode == 1, done.stderr
    assert ("not fixed: not stopped: nothing is running; terminate ends the session and rolls back its "
            "transaction") in done.stderr
    assert f"--terminate {holder}" in done.stderr
    [entry] = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()][-1:]
    assert (entry["kind"], entry["outcome"], entry["verified"], entry["steps_done"]) == ("cancel", "not_fixed", False, 1)
    state = pg_db.fetch("SELECT state FROM pg_stat_activity WHERE pid = $1", holder)
    assert state[0][0] == "idle in transaction"  # still holding the lock the waiter waits on
    waiting = pg_db.fetch("SELECT pg_blocking_pids($1)", waiter)
    assert waiting[0][0] == [holder]


def test_cancel_of_a_running_statement_is_verified(tmp_path, pg_db):
    sleeper = Sleeper(pg_db.url)
    try:
        pid = sleeper.start()
        path = config(tmp_path, pg_db.url, "postgres", allow_fixes=True)
        done = dbvitals("activity", "--config", str(path), "--target", "app", "--cancel", str(pid),
                        "--yes", "--allow-unsafe")
        assert done.returncode == 0, done.stderr
        assert f"cancelled: session {pid} no longer runs the statement" in done.stderr
        entry = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])
        assert (entry["kind"], entry["outcome"], entry["verified"]) == ("cancel", "fixed", True)
        assert isinstance(sleeper.outcome(), asyncpg.QueryCanceledError)
        assert pg_db.fetch("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)[0][0] == 1  # session lives on
    finally:
        sleeper.stop()


def test_a_session_that_moved_on_since_the_preview_is_not_signalled(tmp_path, pg_db, blocked):
    holder, _ = blocked
    settings = support.settings_for(app={"kind": "postgres", "url": pg_db.url, "allow_fixes": True})

    async def go():
        watch = ActivityWatch(settings, ["app"])
        try:
            samples = await watch.refresh()
            action = plan_kill(settings, watch, "app", samples["app"], str(holder), terminate=True, allow_unsafe=True)
            # What the user saw is no longer what runs: as if the holder had run another statement since.
            action.row = {**action.row, "query_start": "2000-01-01 00:00:00+00"}
            return await perform(action, Journal(tmp_path / "journal.jsonl"))
        finally:
            await watch.close()

    outcome = asyncio.run(go())
    assert outcome.outcome == "refused" and "runs another statement than the preview showed" in outcome.message
    assert pg_db.fetch("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", holder)[0][0] == 1


def test_never_kills_its_own_sessions(tmp_path, pg_db):
    row = {"datname": "d", "usename": "u", "client": None, "state": "active", "wait_event_type": None,
           "wait_event": None, "xact_age_s": 1.0, "query_age_s": 1.0, "state_age_s": 1.0,
           "query": "CREATE INDEX CONCURRENTLY ...", "blocked_by": []}
    sample = pg_activity.sample_from_rows("app", [
        {**row, "pid": 7, "application_name": "dbvitals fix 1a2b"},
        {**row, "pid": 9, "application_name": "dbvitals-impostor"},
    ], own=frozenset({7}))
    settings = support.settings_for(app={"kind": "postgres", "url": pg_db.url, "allow_fixes": True})
    watch = ActivityWatch(settings, ["app"])
    with pytest.raises(ActionRefused, match="dbvitals's own"):
        plan_kill(settings, watch, "app", sample, "7", terminate=True, allow_unsafe=True)
    with pytest.raises(ActionRefused, match="no session 8"):
        plan_kill(settings, watch, "app", sample, "8", terminate=True, allow_unsafe=True)
    # A name is no proof: a client calling itself dbvitals is not ours, and may be stopped.
    assert plan_kill(settings, watch, "app", sample, "9", terminate=True, allow_unsafe=True).refusals == []


def test_own_sessions_are_the_pids_this_process_opened_not_a_name(tmp_path, pg_db):
    settings = support.settings_for(app={"kind": "postgres", "url": pg_db.url, "allow_fixes": True})
    target = settings.targets["app"]

    async def go() -> tuple[int, str]:
        impostor = await asyncpg.connect(pg_db.url, server_settings={"application_name": "dbvitals-sneaky"})
        pool = await open_pool(target)
        watch = ActivityWatch(settings, ["app"])
        try:
            ours = await pool.fetchval("SELECT pg_backend_pid()")
            sample = (await watch.refresh())["app"]
            rows = {r["id"]: r for r in sample.sections["sessions"]}
            # Ours are not the workload: kept aside, never listed; the impostor is listed.
            assert ours not in rows and [r["own"] for r in sample.sections["own"] if r["id"] == ours] == [True]
            assert not rows[impostor.get_server_pid()]["own"]
            with pytest.raises(ActionRefused, match="dbvitals's own"):
                plan_kill(settings, watch, "app", sample, str(ours), terminate=True, allow_unsafe=True)
            action = plan_kill(settings, watch, "app", sample, str(impostor.get_server_pid()), terminate=True,
                               allow_unsafe=True)
            outcome = await perform(action, Journal(tmp_path / "journal.jsonl"))
        finally:
            await watch.close()
            await pool.close()
            impostor.terminate()
        await asyncio.sleep(0)  # the pool's termination listeners run on the next turn of the loop
        assert ours not in OWN_SESSIONS.of(server_key(target))
        return ours, outcome.outcome

    _, outcome = asyncio.run(go())
    assert outcome == "fixed"


def test_redis_slow_command_clients_and_rates(tmp_path):
    with private_redis(tmp_path, "--slowlog-log-slower-than", "1000") as url:
        import redis

        client = redis.Redis.from_url(url, client_name="worker")
        impostor = redis.Redis.from_url(url, client_name="dbvitals")  # a name proves nothing
        impostor.ping()
        # A Lua busy loop of ~30 ms: a slow command provoked on purpose, on this test's own server.
        client.eval("local t = redis.call('TIME'); local s = t[1]*1e6+t[2]; "
                    "repeat local n = redis.call('TIME') until (n[1]*1e6+n[2]) - s > 30000; return 1", 0)
        path = config(tmp_path, url, "redis")
        result = dbvitals("activity", "--config", str(path), "--format", "json", "--every", "0.5s", "--count", "2")
        assert result.returncode == 0, result.stderr
        samples = [json.loads(line)["targets"][0]["activity"] for line in result.stdout.splitlines()]
        slow = samples[-1]["sections"]["slowlog"]
        assert any(entry["command"].lower().startswith("eval") and entry["duration_ms"] >= 30 for entry in slow), slow
        names = {row["name"]: row["clients"] for row in samples[-1]["sections"]["client_names"]}
        assert names.get("worker") == 1
        # dbvitals's own connection and its own commands are not the workload: neither is listed.
        clients = samples[-1]["sections"]["clients"]
        assert not any(row["own"] for row in clients)
        assert [row["name"] for row in samples[-1]["sections"]["own"]] == ["dbvitals"]
        assert str(impostor.client_id()) in {row["id"] for row in clients}  # a name proves nothing
        impostor.close()
        own_commands = {"client|list", "info", "slowlog|get"}
        assert not own_commands & {row["command"] for row in samples[-1]["sections"]["commands"]}
        client.close()


def test_redis_client_kill_journalled(tmp_path):
    with private_redis(tmp_path) as url:
        import redis

        victim = redis.Redis.from_url(url, client_name="stuck")
        victim.ping()
        ident = str(victim.client_id())
        path = config(tmp_path, url, "redis", allow_fixes=True)
        done = dbvitals("activity", "--config", str(path), "--target", "app", "--terminate", ident, "--yes",
                        "--allow-unsafe")
        assert done.returncode == 0, done.stderr
        admin = redis.Redis.from_url(url)
        assert all(str(c["id"]) != ident for c in admin.client_list())
        entry = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])
        assert entry["steps"][0]["command"] == ["CLIENT", "KILL", "ID", ident] and entry["outcome"] == "fixed"


def test_mongodb_current_op_and_top_live(tmp_path, mongo_db):
    mongo_db.db["events"].insert_many([{"n": i} for i in range(100)])
    path = config(tmp_path, mongo_db.url, "mongodb")
    result = dbvitals("activity", "--config", str(path), "--format", "json", "--every", "0.5s", "--count", "2")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.splitlines()[-1])["targets"][0]["activity"]
    assert "operations" in last["sections"] and "namespaces" in last["sections"]
    assert not any("currentOp not answered" in n for n in last["notes"]), last["notes"]


def test_mongodb_own_operations_are_the_connections_this_process_opened_not_an_app_name(tmp_path, mongo_db):
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "allow_fixes": True})
    impostor = pymongo.MongoClient(mongo_db.url, appname="dbvitals")
    impostor_id = impostor.admin.command("hello")["connectionId"]

    async def go() -> tuple[dict[int, dict], dict[int, dict]]:
        watch = ActivityWatch(settings, ["app"])
        try:
            sample = (await watch.refresh())["app"]
            [ours] = [op for op in sample.sections["own"] if op["command"].startswith("currentOp")]
            with pytest.raises(ActionRefused, match="dbvitals's own"):
                plan_kill(settings, watch, "app", sample, ours["id"], terminate=True, allow_unsafe=True)
            theirs = [op for op in sample.sections["operations"] if op["connection_id"] == impostor_id]
            return ours, theirs
        finally:
            await watch.close()

    try:
        ours, theirs = asyncio.run(go())
    finally:
        impostor.close()
    assert ours["own"]
    assert theirs and not any(op["own"] for op in theirs)


# --- documented mongod replies (the MongoDB manual's examples) for what SecantusDB does not show ---

CURRENT_OP = {"inprog": [
    {"type": "op", "host": "db0:27017", "desc": "conn31", "connectionId": 31, "client": "10.0.0.7:53822",
     "appName": "orders-api", "active": True, "currentOpTime": "2026-12-01T10:00:00.000+00:00", "opid": 5481,
     "secs_running": 42, "microsecs_running": 42105377, "op": "query", "ns": "shop.orders",
     "command": {"find": "orders", "filter": {"status": "open"}, "$db": "shop"},
     "planSummary": "COLLSCAN", "numYields": 3200, "waitingForLock": False},
    {"type": "op", "desc": "conn40", "connectionId": 40, "appName": "dbvitals", "opid": 5490,
     "microsecs_running": 120, "op": "command", "ns": "admin.$cmd", "command": {"currentOp": 1}, "active": True},
    {"type": "op", "desc": "conn41", "connectionId": 41, "appName": "dbvitals", "opid": 5491,
     "microsecs_running": 90, "op": "command", "ns": "admin.$cmd", "command": {"ping": 1}, "active": True},
], "ok": 1}


def _top(time_us: int, count: int) -> dict:
    return {"totals": {"note": "all times in microseconds",
                       "shop.orders": {"total": {"time": time_us, "count": count},
                                       "readLock": {"time": time_us - 1000, "count": count - 1},
                                       "writeLock": {"time": 1000, "count": 1}}}, "ok": 1}


def test_mongod_current_op_marks_collection_scans_and_own_operations():
    first = mongo_activity.sample_from_replies("m", CURRENT_OP, _top(1_000_000, 100), None, monotonic=10.0,
                                               own=frozenset({40}))
    ops = {op["id"]: op for op in first.sections["operations"]}
    assert ops["5481"]["collection_scan"] and ops["5481"]["running_s"] == 42.11
    assert "filter" in ops["5481"]["command"] and "$db" not in ops["5481"]["command"]
    assert not ops["5481"]["own"] and [op["id"] for op in first.sections["own"]] == ["5490"]  # not the workload
    assert not ops["5491"]["own"]  # appName "dbvitals" on a connection this process did not open
    assert first.sections["namespaces"] == []  # rates need a second sample
    second = mongo_activity.sample_from_replies("m", CURRENT_OP, _top(3_000_000, 300), first, monotonic=12.0)
    [ns] = second.sections["namespaces"]
    assert ns["namespace"] == "shop.orders" and ns["total_ms_per_s"] == 1000.0 and ns["ops_per_s"] == 100.0


def test_counter_reset_gives_no_negative_rate():
    stats = {"cmdstat_get": {"calls": 100, "usec": 1000}}
    first = redis_activity.sample_from_replies("r", [], [], stats, None, monotonic=0.0)
    reset = redis_activity.sample_from_replies("r", [], [], {"cmdstat_get": {"calls": 5, "usec": 10}}, first, monotonic=1.0)
    assert reset.sections["commands"] == []


def test_statements_with_control_bytes_are_shown_escaped():
    from console.formats.activity_text import render_activity
    from checks.model import TargetState, TargetStatus

    sample = pg_activity.sample_from_rows("app", [
        {"pid": 9, "datname": "d", "usename": "u", "application_name": "app\x1b]0;owned\x07", "client": None,
         "state": "active", "wait_event_type": None, "wait_event": None, "xact_age_s": 1.0, "query_age_s": 1.0,
         "state_age_s": 1.0, "query": "SELECT 1 -- \x1b[2J\nDROP TABLE x", "blocked_by": []},
    ])
    status = TargetStatus("app", "postgres", TargetState.CONNECTED)
    text = render_activity({"app": sample}, {"app": status}, width=80)
    assert "\x1b" not in text and "\x07" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
