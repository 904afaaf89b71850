"""MongoDB activity: operations running now (currentOp) with their plan, and time per namespace
from `top` as rates between two refreshes; for the trends, operations per second (serverStatus
opcounters) and, in a replica set, how far the secondaries' optimes trail the primary's
(replSetGetStatus, not asked again once a server said it is no replica set). Up to four
read-only admin commands per refresh, which the operations per second leave out."""

from __future__ import annotations

import time
from typing import Any

from checks.activity import OWN_SECTION, ActivitySample, Section, now_iso, rates, shorten
from checks.units import int_or_none
from checks.model import FixStep
from checks.own_sessions import OWN_SESSIONS

# serverStatus without the sections the trends do not read (the largest ones).
SERVER_STATUS = {"serverStatus": 1, "metrics": 0, "wiredTiger": 0, "locks": 0, "tcmalloc": 0}
# replSetGetStatus on a server started without --replSet.
NO_REPLICATION = 76

# How the activity view shows each section (checks.activity.Section), in this order.
KILLABLE: str | None = "operations"  # the section whose rows cancel and terminate act on
AGE_KEYS = {"operations": "running_s"}
TRENDS = [("operations", "ops running"), ("waiting", "lock waits"), ("ops_per_s", "ops/s"),
          ("replication_lag_s", "repl lag s")]
DETAIL = [("id", "opid"), ("op", "op"), ("namespace", "namespace"), ("running_s", "running s"),
          ("waiting_for_lock", "waits for a lock"), ("plan", "plan"), ("application", "application"),
          ("client", "client"), ("description", "connection"), ("command", "command")]
LAYOUT: list[Section] = [
    ("operations", "Operations running",
     [("id", "opid", "right"), ("op", "op", "left"), ("namespace", "namespace", "left"), ("running_s", "secs", "right"),
      ("plan", "plan", "left"), ("command", "command", "left")], 20),
    ("namespaces", "Time per namespace (from top, per second)",
     [("namespace", "namespace", "left"), ("total_ms_per_s", "ms/s", "right"), ("ops_per_s", "ops/s", "right"),
      ("read_ms_per_s", "read", "right"), ("write_ms_per_s", "write", "right")], 15),
]


async def read(session: Any, target: str, previous: ActivitySample | None) -> ActivitySample:
    admin = session.client.admin
    notes: list[str] = []
    commands = 0
    try:
        commands += 1
        current = await admin.command({"currentOp": 1, "active": True})
    except Exception as exc:  # a role without inprog: say so, keep the rest
        current = {"inprog": []}
        notes.append(f"currentOp not answered: {shorten(exc, 160)}")
    try:
        commands += 1
        top = await admin.command("top")
    except Exception as exc:
        top = {}
        notes.append(f"top not answered (mongos and some roles lack it): {shorten(exc, 160)}")
    try:
        commands += 1
        status = await admin.command(SERVER_STATUS)
    except Exception as exc:  # a role without serverStatus: no operations per second
        status = {}
        notes.append(f"serverStatus not answered: {shorten(exc, 160)}")
    replica_set: dict[str, Any] | None = None
    if previous is None or previous.counters.get("replica_set") != {"none": 1.0}:
        try:
            commands += 1
            replica_set = await admin.command({"replSetGetStatus": 1})
        except Exception as exc:
            if getattr(exc, "code", None) != NO_REPLICATION:
                notes.append(f"replSetGetStatus not answered: {shorten(exc, 160)}")
    return sample_from_replies(target, current, top, previous, notes=notes, server_status=status,
                               replica_set=replica_set, own_commands=commands,
                               own=OWN_SESSIONS.of(session.server))


def sample_from_replies(
    target: str,
    current: dict[str, Any],
    top: dict[str, Any],
    previous: ActivitySample | None,
    *,
    notes: list[str] | None = None,
    monotonic: float | None = None,
    server_status: dict[str, Any] | None = None,
    replica_set: dict[str, Any] | None = None,
    own_commands: int = 0,
    own: frozenset[int] = frozenset(),
) -> ActivitySample:
    sample = ActivitySample(target=target, engine="mongodb", taken_at=now_iso(),
                            monotonic=time.monotonic() if monotonic is None else monotonic,
                            notes=list(notes or ()))
    operations = sorted((_operation(op, own) for op in current.get("inprog") or () if isinstance(op, dict)),
                        key=lambda o: (-(o["running_s"] or 0), o["id"]))
    workload = [o for o in operations if not o["own"]]
    sample.sections["operations"] = workload
    sample.sections[OWN_SECTION] = [o for o in operations if o["own"]]
    totals = top.get("totals") if isinstance(top, dict) else None
    counters: dict[str, float] = {}
    for ns, figures in (totals or {}).items():
        if not isinstance(figures, dict) or "total" not in figures:
            continue  # the "note" entry, and anything else that is not a namespace
        for kind in ("total", "readLock", "writeLock"):
            part = figures.get(kind) or {}
            counters[f"{ns}\0{kind}\0time"] = float(part.get("time", 0))
            counters[f"{ns}\0{kind}\0count"] = float(part.get("count", 0))
    sample.counters["top"] = counters
    seconds = sample.monotonic - previous.monotonic if previous else 0.0
    per_second = rates(counters, previous.counters.get("top") if previous else None, seconds)
    if previous is None and totals:
        sample.notes.append("time per namespace needs two refreshes: shown from the next one")
    elif totals is None and not any(n.startswith("top") for n in sample.notes):
        sample.notes.append("top: no totals in the reply")
    namespaces: dict[str, dict[str, Any]] = {}
    for key, value in per_second.items():
        ns, kind, measure = key.split("\0")
        row = namespaces.setdefault(ns, {"namespace": ns, "total_ms_per_s": 0.0, "ops_per_s": 0.0,
                                         "read_ms_per_s": 0.0, "write_ms_per_s": 0.0})
        if kind == "total" and measure == "time":
            row["total_ms_per_s"] = round(value / 1000, 2)  # top reports microseconds
        elif kind == "total" and measure == "count":
            row["ops_per_s"] = round(value, 2)
        elif kind == "readLock" and measure == "time":
            row["read_ms_per_s"] = round(value / 1000, 2)
        elif kind == "writeLock" and measure == "time":
            row["write_ms_per_s"] = round(value / 1000, 2)
    sample.sections["namespaces"] = sorted(
        (r for r in namespaces.values() if r["ops_per_s"] or r["total_ms_per_s"]),
        key=lambda r: (-r["total_ms_per_s"], r["namespace"]),
    )
    if previous is not None and totals and not sample.sections["namespaces"]:
        sample.notes.append("time per namespace: no collection was read or written since the last refresh")
    opcounters = (server_status or {}).get("opcounters") or {}
    sample.counters["server"] = {"ops": float(sum(int_or_none(v) or 0 for v in opcounters.values()))} if opcounters else {}
    # Without a reply the next refresh asks again; a server with no replica set is not asked again.
    sample.counters["replica_set"] = {"none": 1.0} if replica_set is None and not any(
        n.startswith("replSetGetStatus") for n in sample.notes) else {}
    ops = rates(sample.counters["server"], previous.counters.get("server") if previous else None, seconds)
    sample.trend = {
        "operations": len(workload),
        "waiting": sum(o["waiting_for_lock"] for o in workload),
        # The commands this refresh sent are not the workload.
        "ops_per_s": round(max(0.0, ops["ops"] - own_commands / seconds), 2) if "ops" in ops else None,
        "replication_lag_s": replication_lag(replica_set or {}),
    }
    return sample


def replication_lag(status: dict[str, Any]) -> float | None:
    """How far behind the primary's optime, in seconds, from replSetGetStatus: this member's own
    lag on a secondary; on the primary, its slowest secondary's. None outside a replica set, or
    with no secondary (nothing replicates)."""
    members = [m for m in status.get("members") or () if isinstance(m, dict) and m.get("optimeDate")]
    primary = next((m for m in members if m.get("state") == 1), None)
    secondaries = [m for m in members if m.get("state") == 2]
    if primary is None or not secondaries:
        return None
    me = next((m for m in members if m.get("self")), None)
    behind = [me] if me is not None and me.get("state") == 2 else secondaries
    return max(max(0.0, (primary["optimeDate"] - m["optimeDate"]).total_seconds()) for m in behind)


def _operation(op: dict[str, Any], own: frozenset[int]) -> dict[str, Any]:
    micros = op.get("microsecs_running")
    running = micros / 1e6 if isinstance(micros, (int, float)) else op.get("secs_running")
    plan = str(op.get("planSummary") or "")
    command = op.get("command") or op.get("query") or {}
    row = {
        "id": str(op.get("opid", "")),
        "op": str(op.get("op", "")),
        "namespace": str(op.get("ns", "")),
        "running_s": None if running is None else round(float(running), 2),
        "plan": plan,
        "collection_scan": plan.startswith("COLLSCAN"),
        "application": str(op.get("appName") or ""),
        "client": str(op.get("client") or op.get("client_s") or ""),
        "connection_id": op.get("connectionId"),
        "description": str(op.get("desc") or ""),
        "waiting_for_lock": bool(op.get("waitingForLock")),
        "command": shorten(_command_text(command), 300),
    }
    # dbvitals's own: the connections this process opened (checks.own_sessions), never judged
    # by appName, which any client may send. Never offered for cancel or terminate.
    row["own"] = op.get("connectionId") in own
    return row


def _command_text(command: Any) -> str:
    if isinstance(command, dict):
        # `$db`, `lsid` and the like say nothing about what runs.
        return ", ".join(f"{k}: {v!r}" for k, v in command.items() if not str(k).startswith(("$", "lsid")))
    return str(command)


def kill_step(ident: str, *, terminate: bool) -> FixStep:
    """killOp for both: MongoDB has no gentler cancel; the operation stops at its next yield."""
    try:
        opid: Any = int(ident)
    except ValueError:
        opid = ident  # a sharded cluster's "shard:opid"
    return FixStep("mongodb", {"killOp": 1, "op": opid}, database="admin",
                   description="stops the operation at its next yield point; a write already made stays")


async def apply(session: Any, step: FixStep) -> str:
    reply = await session.client[step.database or "admin"].command(step.command)
    return str(reply.get("info") or "killOp sent")


def changed(preview: dict[str, Any], now: dict[str, Any]) -> str | None:
    return None  # an id names one operation for its whole life


def idle(row: dict[str, Any]) -> str | None:
    return None  # a operation listed is one that can be stopped


def still_running(preview: dict[str, Any], now: dict[str, Any]) -> bool:
    return True  # stopping removes the row: still there means it did not work yet
