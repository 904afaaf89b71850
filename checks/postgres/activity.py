"""PostgreSQL activity: client sessions from pg_stat_activity with the locks each holds and awaits,
who blocks whom, and counts per application; the server's transaction counter and replication
lag for the trends. Two read-only statements per refresh."""

from __future__ import annotations

import time
from typing import Any

from checks.activity import OWN_SECTION, ActivitySample, Section, behind, now_iso, rates, shorten
from checks.model import FixStep
from checks.own_sessions import OWN_SESSIONS

# What a lock is on, in a line: "relation public.accounts AccessExclusiveLock". A virtualxid lock
# is the one every transaction holds on itself: it says nothing. At most LOCKS_SHOWN per session.
LOCKS_SHOWN = 12
SESSIONS_SQL = f"""/* dbvitals */
WITH locks AS (
  SELECT l.pid,
         (array_agg(d.what ORDER BY d.what) FILTER (WHERE l.granted))[1:{LOCKS_SHOWN}] AS locks_held,
         (array_agg(d.what ORDER BY d.what) FILTER (WHERE NOT l.granted))[1:{LOCKS_SHOWN}] AS locks_awaited
  FROM pg_locks l
  -- A relation of another database is named by its oid: this one's catalog would misname it.
  CROSS JOIN LATERAL (SELECT l.locktype || ' ' || coalesce(
      CASE WHEN l.database IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
           THEN l.relation::regclass::text ELSE 'oid ' || l.relation END,
      l.transactionid::text, l.objid::text, '') || ' ' || l.mode AS what) d
  WHERE l.pid IS NOT NULL AND l.locktype <> 'virtualxid'
  GROUP BY l.pid
)
SELECT a.pid, a.datname, a.usename, a.application_name, host(a.client_addr) AS client,
       a.state, a.wait_event_type, a.wait_event,
       EXTRACT(epoch FROM now() - a.xact_start)::float8 AS xact_age_s,
       EXTRACT(epoch FROM now() - a.query_start)::float8 AS query_age_s,
       EXTRACT(epoch FROM now() - a.state_change)::float8 AS state_age_s,
       a.query_start::text AS query_start,
       left(a.query, 4000) AS query,
       pg_blocking_pids(a.pid) AS blocked_by,
       k.locks_held, k.locks_awaited
FROM pg_stat_activity a
LEFT JOIN locks k ON k.pid = a.pid
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
ORDER BY a.xact_start NULLS LAST, a.pid
"""

# The server's figures for the trends: transactions ended so far (a rate between two refreshes),
# and how far replay runs behind: on a standby, since the last replayed transaction; on a
# primary, its slowest standby's replay_lag.
SERVER_SQL = """/* dbvitals */
SELECT (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database)::float8 AS xacts,
       CASE WHEN pg_is_in_recovery()
            THEN EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
            ELSE (SELECT max(EXTRACT(epoch FROM replay_lag))::float8 FROM pg_stat_replication) END AS replication_lag_s
"""

# How the activity view shows each section (checks.activity.Section), in this order.
KILLABLE: str | None = "sessions"  # the section whose rows cancel and terminate act on
KILLABLE_IN = frozenset({"blocking", "idle_in_transaction", "sessions"})  # rows named by pid
AGE_KEYS = {"idle_in_transaction": "xact_age_s", "sessions": "xact_age_s"}
TRENDS = [("active", "active"), ("idle_in_transaction", "idle in tx"), ("blocked", "blocked"),
          ("xacts_per_s", "xact/s"), ("replication_lag_s", "repl lag s")]
DETAIL = [("id", "pid"), ("state", "state"), ("wait", "wait event"),
          ("application", "application"), ("client", "client"), ("user", "user"), ("database", "database"),
          ("xact_age_s", "transaction s"), ("query_age_s", "statement s"), ("state_age_s", "in state s"),
          ("locks_held", "locks held"), ("locks_awaited", "locks awaited"), ("query", "statement")]
LAYOUT: list[Section] = [
    ("blocking", "Blocking (who waits on whom)",
     [("tree", "pid", "left"), ("query_age_s", "age s", "right"), ("wait", "wait", "left"), ("query", "statement", "left")], 20),
    ("idle_in_transaction", "Idle in transaction",
     [("id", "pid", "right"), ("application", "app", "left"), ("xact_age_s", "xact s", "right"), ("query", "last statement", "left")], 10),
    ("sessions", "Sessions",
     [("id", "pid", "right"), ("state", "state", "left"), ("wait", "wait", "left"), ("xact_age_s", "xact s", "right"),
      ("application", "app", "left"), ("query", "statement", "left")], 20),
    ("applications", "Per application",
     [("application", "application", "left"), ("sessions", "all", "right"), ("active", "active", "right"),
      ("idle_in_transaction", "idle tx", "right"), ("waiting", "waiting", "right")], 10),
]


async def read(session: Any, target: str, previous: ActivitySample | None) -> ActivitySample:
    rows = [dict(r) for r in await session.fetch(SESSIONS_SQL)]
    server = dict(await session.fetchrow(SERVER_SQL) or {})
    return sample_from_rows(target, rows, own=OWN_SESSIONS.of(session.server), server=server, previous=previous)


def sample_from_rows(target: str, rows: list[dict[str, Any]], *, own: frozenset[int] = frozenset(),
                     server: dict[str, Any] | None = None, previous: ActivitySample | None = None,
                     monotonic: float | None = None) -> ActivitySample:
    sessions = []
    for r in rows:
        sessions.append({
            "id": int(r["pid"]),
            "database": r["datname"],
            "user": r["usename"],
            "application": r["application_name"] or "",
            "client": r["client"] or "local",
            "state": r["state"] or "",
            "wait": ":".join(x for x in (r["wait_event_type"], r["wait_event"]) if x),
            "xact_age_s": _round(r["xact_age_s"]),
            "query_age_s": _round(r["query_age_s"]),
            "state_age_s": _round(r["state_age_s"]),
            "query_start": r.get("query_start"),  # with the text, what tells one statement from the next
            # Whole, as far as the server keeps it (track_activity_query_size): the detail shows it.
            "query": shorten(r["query"], 4000),
            "blocked_by": sorted(int(p) for p in (r["blocked_by"] or ())),
            "locks_held": list(r.get("locks_held") or ()),
            "locks_awaited": list(r.get("locks_awaited") or ()),
        })
    waiters = _waiters(sessions)
    for s in sessions:
        # dbvitals's own: the pids this process opened (checks.own_sessions), never judged by
        # application_name, which any client may set. Never offered for cancel or terminate.
        s["own"] = s["id"] in own
        s["blocks"] = behind(waiters, s["id"])
    sample = ActivitySample(target=target, engine="postgres", taken_at=now_iso(),
                            monotonic=time.monotonic() if monotonic is None else monotonic)
    workload = [s for s in sessions if not s["own"]]
    sample.sections["sessions"] = workload
    sample.sections[OWN_SECTION] = [s for s in sessions if s["own"]]
    # The tree keeps an own session that blocks others: hiding the cause of a wait would mislead.
    sample.sections["blocking"] = blocking_tree(sessions)
    sample.sections["idle_in_transaction"] = [
        {k: s[k] for k in ("id", "application", "client", "xact_age_s", "state_age_s", "query")}
        for s in workload if s["state"].startswith("idle in transaction")
    ]
    sample.sections["applications"] = application_counts(workload)
    sample.counters["server"] = {"xacts": float(server["xacts"])} if server and server.get("xacts") is not None else {}
    seconds = sample.monotonic - previous.monotonic if previous else 0.0
    per_second = rates(sample.counters["server"], previous.counters.get("server") if previous else None, seconds)
    lag = (server or {}).get("replication_lag_s")
    sample.trend = {
        "active": sum(s["state"] == "active" for s in workload),
        "idle_in_transaction": sum(s["state"].startswith("idle in transaction") for s in workload),
        "blocked": sum(bool(s["blocked_by"]) for s in workload),
        "xacts_per_s": round(per_second["xacts"], 2) if "xacts" in per_second else None,
        "replication_lag_s": None if lag is None else round(float(lag), 1),
    }
    return sample


def _waiters(sessions: list[dict[str, Any]]) -> dict[int, list[int]]:
    waiters: dict[int, list[int]] = {}
    for s in sessions:
        for blocker in s["blocked_by"]:
            waiters.setdefault(blocker, []).append(s["id"])
    return waiters


def blocking_tree(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who waits on whom, flattened depth-first from each root blocker (a session that blocks
    others and waits on no one): one row per session with its depth, so a text view indents it,
    and `blocks`, every session behind it however deep."""
    by_id = {s["id"]: s for s in sessions}
    waiters = _waiters(sessions)
    roots = [pid for pid in waiters if not by_id.get(pid, {}).get("blocked_by")]
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()

    def visit(pid: int, depth: int, waits_on: int | None) -> None:
        if pid in seen:  # a lock cycle (a deadlock about to be broken): show each session once
            return
        seen.add(pid)
        s = by_id.get(pid, {})
        rows.append({
            "id": pid, "depth": depth, "waits_on": waits_on,
            "application": s.get("application", "?"), "state": s.get("state", "?"),
            "wait": s.get("wait", ""), "query_age_s": s.get("query_age_s"),
            "xact_age_s": s.get("xact_age_s"), "query": s.get("query", "(not visible)"),
            "blocks": behind(waiters, pid), "own": s.get("own", False),
        })
        for child in sorted(waiters.get(pid, ())):
            visit(child, depth + 1, pid)

    for root in sorted(roots, key=lambda p: (-behind(waiters, p), p)):
        visit(root, 0, None)
    return rows


def application_counts(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    for s in sessions:
        row = counts.setdefault(s["application"] or "(none)", {"application": s["application"] or "(none)",
                                                                "sessions": 0, "active": 0, "idle": 0,
                                                                "idle_in_transaction": 0, "waiting": 0})
        row["sessions"] += 1
        state = s["state"]
        if state == "active":
            row["active"] += 1
        elif state.startswith("idle in transaction"):
            row["idle_in_transaction"] += 1
        elif state == "idle":
            row["idle"] += 1
        if s["blocked_by"]:
            row["waiting"] += 1
    return sorted(counts.values(), key=lambda r: (-r["sessions"], r["application"]))


def kill_step(ident: str, *, terminate: bool) -> FixStep:
    pid = _pid(ident)
    function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    what = "ends the session; its open transaction rolls back" if terminate else "cancels the running statement"
    return FixStep("sql", f"SELECT {function}({pid})", description=what)


def _pid(ident: str) -> int:
    try:
        pid = int(ident)
    except ValueError:
        raise LookupError(f"{ident!r} is not a PostgreSQL backend pid (a whole number)") from None
    if pid <= 0:
        raise LookupError(f"{ident!r} is not a PostgreSQL backend pid")
    return pid


def _round(value: Any) -> float | None:
    return None if value is None else max(0.0, round(float(value), 1))


async def apply(session: Any, step: FixStep) -> str:
    done = await session.fetchval(f"/* dbvitals */ {step.command}")
    return "signal sent" if done else "no such backend (it ended already)"


def changed(preview: dict[str, Any], now: dict[str, Any]) -> str | None:
    """Why the session no longer runs what the preview showed, or None when it still does."""
    if (now.get("query_start"), now.get("query")) != (preview.get("query_start"), preview.get("query")):
        return (f"session {preview['id']} runs another statement than the preview showed "
                f"(now {now.get('state') or 'no state'} since {now.get('query_start')}: {shorten(now.get('query'), 80)})")
    if (now.get("state") == "active") != (preview.get("state") == "active"):
        return f"session {preview['id']} was {preview.get('state')} in the preview and is {now.get('state')} now"
    return None


def idle(row: dict[str, Any]) -> str | None:
    """Why a cancel has nothing to stop in this session (no statement runs), or None."""
    if row.get("state") == "active":
        return None
    if str(row.get("state") or "").startswith("idle in transaction"):
        return "nothing is running; terminate ends the session and rolls back its transaction"
    return "nothing is running; terminate ends the session"


def still_running(preview: dict[str, Any], now: dict[str, Any]) -> bool:
    """The statement the preview showed still runs: same start, still active."""
    return now.get("state") == "active" and now.get("query_start") == preview.get("query_start")
