"""What the activity view tells an on-call engineer, against real servers: every session behind a
blocker counted however deep, the locks each session holds and awaits, the root of a chain of
waits, dbvitals's own sessions and commands kept out of the workload, a Redis client blocked in
BLPOP marked and unblocked (cancel) rather than disconnected (terminate), and the trend figures
the sparklines draw."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import asyncpg

from checks.actions.journal import Journal
from checks.actions.kill import plan_kill
from checks.actions.pipeline import perform
from checks.activity import relation, root_blocker
from checks.activity.session import ActivityWatch
from checks.activity.trends import TrendHistory
from checks.mongodb import activity as mongo_activity
from checks.postgres import activity as pg_activity
from checks.redis import activity as redis_activity
from tests import support
from tests.integration.test_redis_replication import wait_linked
from tests.integration.test_redis_server_settings import private_redis


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)
    return value


class LockChain:
    """Three sessions of the test's own in a chain of waits: `holder` keeps table a locked in an
    idle transaction; `middle` locked table b, then waits on a; `tail` waits on b."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connections: list[asyncpg.Connection] = []
        self.waits: list[asyncio.Future] = []

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _connect(self, name: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.url, server_settings={"application_name": support.unique(name)})
        self.connections.append(conn)
        return conn

    async def _start(self) -> tuple[int, int, int]:
        holder, middle, tail = [await self._connect(n) for n in ("holder", "middle", "tail")]
        self.observer = await self._connect("observer")
        await holder.execute("CREATE TABLE a (id int); CREATE TABLE b (id int)")
        await holder.execute("BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        await middle.execute("BEGIN; LOCK TABLE b IN ACCESS EXCLUSIVE MODE")
        self.waits.append(asyncio.ensure_future(middle.fetch("SELECT count(*) FROM a")))
        self.waits.append(asyncio.ensure_future(tail.fetch("SELECT count(*) FROM b")))
        return holder.get_server_pid(), middle.get_server_pid(), tail.get_server_pid()

    def start(self) -> tuple[int, int, int]:
        pids = self.run(self._start())
        wait_for(lambda: self.run(self._waiting(pids[1:])))
        return pids

    async def _waiting(self, pids: tuple[int, ...]) -> bool:
        waiting = await self.observer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[]) "
                                      "AND wait_event_type = 'Lock'", list(pids))
        return waiting == len(pids)

    async def _stop(self) -> None:
        for conn in self.connections:
            conn.terminate()
        for wait in self.waits:
            wait.cancel()

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def samples(settings, count: int) -> list[Any]:
    """`count` refreshes of one ActivityWatch on target app, one after the other."""

    async def go() -> list[Any]:
        watch = ActivityWatch(settings, ["app"])
        taken = []
        try:
            for _ in range(count):
                taken.append((await watch.refresh())["app"])
        finally:
            await watch.close()
        return taken

    return asyncio.run(go())


def test_a_chain_of_waits_counted_whole_with_its_locks_and_root(pg_db):
    chain = LockChain(pg_db.url)
    holder, middle, tail = chain.start()
    try:
        settings = support.settings_for(app={"kind": "postgres", "url": pg_db.url})
        first, second = samples(settings, 2)
        tree = {row["id"]: row for row in second.sections["blocking"]}
        assert (tree[holder]["blocks"], tree[middle]["blocks"], tree[tail]["blocks"]) == (2, 1, 0)
        assert (tree[middle]["depth"], tree[tail]["depth"]) == (1, 2)
        sessions = {row["id"]: row for row in second.sections["sessions"]}
        assert relation(sessions[holder]) == "blocks 2, waits on none"
        assert relation(sessions[tail]) == f"blocks 0, waits on {middle}"
        assert root_blocker(second.sections["sessions"], str(tail)) == str(holder)
        assert root_blocker(second.sections["sessions"], str(holder)) is None
        assert any(lock.startswith("relation a ") and lock.endswith("AccessExclusiveLock")
                   for lock in sessions[holder]["locks_held"]), sessions[holder]["locks_held"]
        assert any(lock.startswith("relation a ") for lock in sessions[middle]["locks_awaited"])
        assert any(lock.startswith("relation b ") for lock in sessions[middle]["locks_held"])
        # The trends: both waiters blocked, the holder idle in its transaction, a rate from the second on.
        assert second.trend["blocked"] >= 2 and second.trend["idle_in_transaction"] >= 1
        assert first.trend["xacts_per_s"] is None and second.trend["xacts_per_s"] is not None
        assert second.trend["replication_lag_s"] is None  # no standby here: no lag to draw
        history = TrendHistory(points=3)
        for sample in (first, second, second, first, second):
            history.add(sample)
        assert len(history.series("blocked")) == 3  # bounded, and one sample counted once in a row
        assert history.series("xacts_per_s") == [second.trend["xacts_per_s"]] * 2
    finally:
        chain.stop()


def test_redis_blocked_client_is_marked_and_cancel_unblocks_it(tmp_path):
    import redis

    with private_redis(tmp_path) as url:
        waiter = redis.Redis.from_url(url, client_name="consumer")
        ident = str(waiter.client_id())
        answers: list[Any] = []
        popping = threading.Thread(target=lambda: answers.append(waiter.blpop(["jobs"], timeout=60)), daemon=True)
        popping.start()
        admin = redis.Redis.from_url(url)
        wait_for(lambda: any(str(c["id"]) == ident and "b" in c["flags"] for c in admin.client_list()))
        settings = support.settings_for(app={"kind": "redis", "url": url, "allow_fixes": True})

        async def stop(client: str, *, terminate: bool) -> Any:
            watch = ActivityWatch(settings, ["app"])
            try:
                sample = (await watch.refresh())["app"]
                action = plan_kill(settings, watch, "app", sample, client, terminate=terminate, allow_unsafe=True)
                return sample, await perform(action, Journal(tmp_path / "journal.jsonl"))
            finally:
                await watch.close()

        sample, outcome = asyncio.run(stop(ident, terminate=False))
        [row] = [r for r in sample.sections["clients"] if r["id"] == ident]
        assert row["blocked"] and row["state"] == "blocked" and sample.trend["blocked"] == 1
        assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
        popping.join(10)
        assert answers == [None]  # BLPOP got its timeout reply: unblocked, not disconnected
        assert any(str(c["id"]) == ident for c in admin.client_list())

        # Nothing blocks it now: a cancel has nothing to end, says so, and offers terminate.
        _, again = asyncio.run(stop(ident, terminate=False))
        assert again.outcome == "not_fixed" and "waits in no blocking command" in again.message
        assert again.next_action == "terminate"
        waiter.close()
        admin.close()


def test_redis_rates_leave_out_dbvitals_own_commands():
    sent = ["client|id", "client|list", "slowlog|get", "info", "info"]  # what each refresh sends

    def stats(refreshes: int, *, before_7: bool = False) -> dict[str, Any]:
        calls: dict[str, int] = {}
        for command in sent:
            name = command.split("|")[0] if before_7 else command
            calls[name] = calls.get(name, 0) + refreshes
        return {f"cmdstat_{c}": {"calls": n, "usec": 10 * n} for c, n in calls.items()} | {
            "cmdstat_get": {"calls": 50 * refreshes, "usec": 1000}}

    for before_7 in (False, True):
        first = redis_activity.sample_from_replies("r", [], [], stats(5, before_7=before_7), None, monotonic=0.0,
                                                   own_calls=sent)
        second = redis_activity.sample_from_replies("r", [], [], stats(6, before_7=before_7), first, monotonic=1.0,
                                                    own_calls=sent)
        assert [row["command"] for row in second.sections["commands"]] == ["get"], before_7
        assert second.trend["ops_per_s"] == 50.0 and first.trend["ops_per_s"] is None


def test_redis_replication_lag_is_a_trend_where_there_is_replication(tmp_path):
    with ExitStack() as stack:
        master_url = stack.enter_context(private_redis(tmp_path))
        port = master_url.rsplit(":", 1)[1].split("/")[0]
        replica_url = stack.enter_context(private_redis(tmp_path, "--replicaof", "127.0.0.1", port))
        wait_linked(replica_url)
        for url in (master_url, replica_url):
            settings = support.settings_for(app={"kind": "redis", "url": url})
            [sample] = samples(settings, 1)
            assert sample.trend["replication_lag_s"] is not None and sample.trend["replication_lag_s"] >= 0, url
    assert redis_activity.replication_lag({"role": "master", "connected_slaves": 0}) is None
    assert redis_activity.replication_lag({"role": "slave", "master_link_status": "down"}) is None


def test_mongodb_empty_time_per_namespace_says_why_and_own_operations_are_aside():
    top = {"totals": {"note": "all times in microseconds",
                      "shop.orders": {"total": {"time": 5, "count": 1}, "readLock": {"time": 5, "count": 1},
                                      "writeLock": {"time": 0, "count": 0}}}, "ok": 1}
    current = {"inprog": [{"opid": 7, "op": "command", "appName": "dbvitals", "connectionId": 12,
                           "microsecs_running": 5, "command": {"currentOp": 1}}]}
    first = mongo_activity.sample_from_replies("m", current, top, None, monotonic=0.0, own=frozenset({12}))
    assert any("needs two refreshes" in note for note in first.notes)
    quiet = mongo_activity.sample_from_replies("m", current, top, first, monotonic=2.0, own=frozenset({12}))
    assert quiet.sections["namespaces"] == []
    assert any("no collection was read or written" in note for note in quiet.notes), quiet.notes
    assert quiet.sections["operations"] == [] and [op["id"] for op in quiet.sections["own"]] == ["7"]
    unanswered = mongo_activity.sample_from_replies("m", current, {}, first, notes=["top not answered: denied"])
    assert unanswered.sections["namespaces"] == [] and "top not answered: denied" in unanswered.notes


def test_mongodb_operations_per_second_from_opcounters_less_its_own_commands(mongo_db):
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url})
    first, second = samples(settings, 2)
    assert first.trend["ops_per_s"] is None and second.trend["ops_per_s"] is not None
    assert not any(note.startswith(("serverStatus", "replSetGetStatus")) for note in second.notes), second.notes
    assert second.trend["replication_lag_s"] is None  # a set of one member: nothing replicates

    def status(commands: int) -> dict[str, Any]:
        return {"opcounters": {"insert": 10, "query": 20, "update": 0, "delete": 0, "getmore": 0, "command": commands}}

    quiet = mongo_activity.sample_from_replies("m", {}, {}, None, server_status=status(100), monotonic=0.0)
    busy = mongo_activity.sample_from_replies("m", {}, {}, quiet, server_status=status(124), monotonic=2.0,
                                              own_commands=4)
    assert busy.trend["ops_per_s"] == 10.0  # (24 - its own 4) / 2 s


def test_mongodb_replication_lag_from_the_members_optimes():
    import datetime as dt

    now = dt.datetime(2026, 12, 1, 10, 0, 0)
    members = [{"name": "a", "state": 1, "optimeDate": now, "self": True},
               {"name": "b", "state": 2, "optimeDate": now - dt.timedelta(seconds=3)},
               {"name": "c", "state": 2, "optimeDate": now - dt.timedelta(seconds=12)}]
    assert mongo_activity.replication_lag({"members": members}) == 12.0  # the slowest secondary
    as_b = [{**m, "self": m["name"] == "b"} for m in members]
    assert mongo_activity.replication_lag({"members": as_b}) == 3.0  # a secondary: its own
    assert mongo_activity.replication_lag({"members": members[:1]}) is None
    assert mongo_activity.replication_lag({}) is None


def test_an_own_session_that_blocks_stays_in_the_tree_marked_and_out_of_the_workload():
    from console.formats.activity_text import cell_text

    row = {"datname": "d", "usename": "u", "application_name": "x", "client": None, "wait_event_type": None,
           "wait_event": None, "xact_age_s": 1.0, "query_age_s": 1.0, "state_age_s": 1.0, "query": "q"}
    sample = pg_activity.sample_from_rows("app", [
        {**row, "pid": 7, "state": "idle in transaction", "blocked_by": []},
        {**row, "pid": 9, "state": "active", "blocked_by": [7]},
    ], own=frozenset({7}))
    assert [s["id"] for s in sample.sections["sessions"]] == [9]
    assert [s["id"] for s in sample.sections["idle_in_transaction"]] == []
    [root, waiter] = sample.sections["blocking"]
    assert cell_text(root, "tree") == "7 (dbvitals) blocks 1" and cell_text(waiter, "tree") == "└ 9"
