"""Redis activity: clients (CLIENT LIST), the latest slow commands (SLOWLOG GET) and calls and
time per command per second (INFO commandstats deltas), and the replication lag for the trends
(INFO replication). A few read-only commands per refresh, which the rates leave out: they are
dbvitals's, not the workload."""

from __future__ import annotations

import time
from typing import Any

from checks.activity import OWN_SECTION, ActivitySample, Section, now_iso, rates, shorten
from checks.model import FixStep
from checks.own_sessions import OWN_SESSIONS
from checks.units import counted, int_or_none

SLOWLOG_ENTRIES = 20
# CLIENT LIST flags worth a word: b waits in a blocking command (BLPOP, XREAD BLOCK, WAIT, ...).
STATE_FLAGS = (("b", "blocked"), ("x", "in MULTI"), ("P", "subscriber"), ("S", "replica"), ("M", "master"))

# How the activity view shows each section (checks.activity.Section), in this order.
KILLABLE: str | None = "clients"  # the section whose rows cancel and terminate act on
AGE_KEYS = {"clients": "idle_s"}
TRENDS = [("clients", "clients"), ("blocked", "blocked"), ("ops_per_s", "cmd/s"), ("replication_lag_s", "repl lag s")]
DETAIL = [("id", "client id"), ("name", "name"), ("state", "state"), ("address", "address"), ("db", "db"),
          ("age_s", "connected s"), ("idle_s", "idle s"), ("last_command", "last command"), ("flags", "flags")]
LAYOUT: list[Section] = [
    ("slowlog", "Slow log (latest)",
     [("id", "#", "right"), ("duration_ms", "ms", "right"), ("command", "command", "left"), ("client", "client", "left")], 10),
    ("commands", "Commands per second",
     [("command", "command", "left"), ("calls_per_s", "calls/s", "right"), ("usec_per_s", "µs/s", "right")], 15),
    ("client_names", "Clients by name", [("name", "name", "left"), ("clients", "clients", "right")], 10),
    ("clients", "Clients (most idle first)",
     [("id", "id", "right"), ("name", "name", "left"), ("address", "address", "left"), ("state", "state", "left"),
      ("age_s", "age s", "right"), ("idle_s", "idle s", "right"), ("last_command", "last", "left")], 15),
]


async def read(session: Any, target: str, previous: ActivitySample | None) -> ActivitySample:
    client = session.client
    notes: list[str] = []
    # Each command this refresh sends, as commandstats names it: the rates leave them out (the
    # INFO counted in a reading is the previous refresh's: a command is counted once it has run).
    sent = ["client|list"]
    clients = await client.client_list()
    try:
        slowlog = await client.execute_command("SLOWLOG", "GET", SLOWLOG_ENTRIES)
        sent.append("slowlog|get")
    except Exception as exc:  # renamed or ACL-denied
        slowlog = []
        notes.append(f"SLOWLOG not answered: {shorten(exc, 160)}")
    stats = await client.info("commandstats")
    sent.append("info")
    try:
        replication = await client.info("replication")
        sent.append("info")
    except Exception as exc:  # renamed or ACL-denied: no lag to draw
        replication = {}
        notes.append(f"INFO replication not answered: {shorten(exc, 160)}")
    return sample_from_replies(target, clients, slowlog, stats, previous, own=OWN_SESSIONS.of(session.server), notes=notes,
                               replication=replication, own_calls=sent)


def sample_from_replies(
    target: str,
    clients: list[dict[str, Any]],
    slowlog: list[Any],
    commandstats: dict[str, Any],
    previous: ActivitySample | None,
    *,
    own: frozenset[int] = frozenset(),
    notes: list[str] | None = None,
    monotonic: float | None = None,
    replication: dict[str, Any] | None = None,
    own_calls: list[str] | None = None,
) -> ActivitySample:
    sample = ActivitySample(target=target, engine="redis", taken_at=now_iso(),
                            monotonic=time.monotonic() if monotonic is None else monotonic,
                            notes=list(notes or ()))
    rows = []
    for c in clients:
        row: dict[str, Any] = {
            "id": str(c.get("id", "")),
            "name": _text(c.get("name")),
            "address": _text(c.get("addr")),
            "age_s": int_or_none(c.get("age")),
            "idle_s": int_or_none(c.get("idle")),
            "db": int_or_none(c.get("db")),
            "last_command": _text(c.get("cmd")),
            "flags": _text(c.get("flags")),
        }
        row["state"] = ", ".join(word for flag, word in STATE_FLAGS if flag in row["flags"])
        row["blocked"] = "b" in row["flags"]
        # redis-cli's rule: a connection whose idle time equals its age never sent a command.
        row["never_active"] = row["age_s"] is not None and row["age_s"] > 0 and row["age_s"] == row["idle_s"]
        # dbvitals's own: the connections this process opened (checks.own_sessions), never
        # judged by the client name, which any client may set.
        row["own"] = int_or_none(c.get("id")) in own
        rows.append(row)
    workload = [r for r in rows if not r["own"]]
    sample.sections["clients"] = sorted(workload, key=lambda r: (-(r["idle_s"] or 0), int_or_none(r["id"]) or 0))
    sample.sections[OWN_SECTION] = [r for r in rows if r["own"]]
    names: dict[str, int] = {}
    for r in workload:
        names[r["name"] or "(unnamed)"] = names.get(r["name"] or "(unnamed)", 0) + 1
    sample.sections["client_names"] = [{"name": n, "clients": k} for n, k in
                                       sorted(names.items(), key=lambda item: (-item[1], item[0]))]
    sample.sections["slowlog"] = [_slow_entry(e) for e in slowlog or ()]
    counters: dict[str, float] = {}
    for key, value in (commandstats or {}).items():
        if isinstance(value, dict) and str(key).startswith("cmdstat_"):
            command = str(key).removeprefix("cmdstat_")
            counters[f"{command}\0calls"] = float(value.get("calls", 0))
            counters[f"{command}\0usec"] = float(value.get("usec", 0))
    sample.counters["commandstats"] = counters
    seconds = sample.monotonic - previous.monotonic if previous else 0.0
    per_second = rates(counters, previous.counters.get("commandstats") if previous else None, seconds)
    # Redis before 7 counts a subcommand under its command (CLIENT LIST as client).
    subcommands = any("|" in key for key in counters)
    for command in own_calls or ():
        key = f"{command if subcommands else command.split('|')[0]}\0calls"
        if key in per_second:
            per_second[key] = max(0.0, per_second[key] - 1 / seconds)
    if previous is None:
        sample.notes.append("calls per second need two refreshes: shown from the next one")
    commands: dict[str, dict[str, Any]] = {}
    for key, value in per_second.items():
        command, measure = key.split("\0")
        row = commands.setdefault(command, {"command": command, "calls_per_s": 0.0, "usec_per_s": 0.0})
        row["calls_per_s" if measure == "calls" else "usec_per_s"] = round(value, 2)
    sample.sections["commands"] = sorted(
        (r for r in commands.values() if r["calls_per_s"]), key=lambda r: (-r["usec_per_s"], r["command"])
    )
    sample.trend = {
        "clients": len(workload),
        "blocked": sum(r["blocked"] for r in workload),
        "ops_per_s": round(sum(r["calls_per_s"] for r in sample.sections["commands"]), 2) if previous else None,
        "replication_lag_s": replication_lag(replication or {}),
    }
    return sample


def replication_lag(info: dict[str, Any]) -> float | None:
    """Seconds behind, as INFO replication tells it: on a replica, since the master last spoke
    (unknown while the link is down); on a master, its slowest replica's last acknowledgement.
    None with no replication at all."""
    if info.get("role") == "slave":
        if info.get("master_link_status") != "up":
            return None
        return float(int_or_none(info.get("master_last_io_seconds_ago")) or 0)
    lags = [int_or_none(v.get("lag")) for k, v in info.items() if str(k).startswith("slave") and isinstance(v, dict)]
    known = [lag for lag in lags if lag is not None]
    return float(max(known)) if known else None


def _slow_entry(entry: Any) -> dict[str, Any]:
    # redis-py parses SLOWLOG GET into dicts; a raw reply is [id, time, micros, args, addr, name].
    if isinstance(entry, dict):
        ident, when, micros = entry.get("id"), entry.get("start_time"), entry.get("duration")
        args = entry.get("command", b"")
        address, name = entry.get("client_address", ""), entry.get("client_name", "")
    else:
        ident, when, micros, args = entry[0], entry[1], entry[2], entry[3]
        address = entry[4] if len(entry) > 4 else ""
        name = entry[5] if len(entry) > 5 else ""
    if isinstance(args, (list, tuple)):
        text = " ".join(_text(a) for a in args)
    else:
        text = _text(args)
    return {"id": int_or_none(ident), "started_at": int_or_none(when), "duration_ms": round((int_or_none(micros) or 0) / 1000, 2),
            "command": shorten(text, 200), "client": _text(address), "name": _text(name)}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return "" if value is None else str(value)



def kill_step(ident: str, *, terminate: bool) -> FixStep:
    """Cancel: CLIENT UNBLOCK, which ends the blocking command a client waits in (BLPOP and the
    like; it gets a timeout reply and stays connected). Terminate: CLIENT KILL ID, which closes
    the connection. A command that runs cannot be cancelled: Redis runs one at a time."""
    try:
        int(ident)
    except ValueError:
        raise LookupError(f"{ident!r} is not a Redis client id (a whole number)") from None
    if not terminate:
        return FixStep("redis", ["CLIENT", "UNBLOCK", ident],
                       description="ends the blocking command it waits in; the client stays connected")
    return FixStep("redis", ["CLIENT", "KILL", "ID", ident],
                   description="closes the client's connection; it must reconnect")


async def apply(session: Any, step: FixStep) -> str:
    answer = await session.client.execute_command(*step.command)
    if step.command[1] == "UNBLOCK":
        return "unblocked" if answer else "it was not blocked"
    return f"{counted(answer, 'client')} closed" if isinstance(answer, int) else "client closed"


def changed(preview: dict[str, Any], now: dict[str, Any]) -> str | None:
    return None  # an id names one client for its whole life


def idle(row: dict[str, Any]) -> str | None:
    """Why an unblock has nothing to end: the client waits in no blocking command."""
    if row.get("blocked"):
        return None
    return "it waits in no blocking command; terminate closes its connection"


def still_running(preview: dict[str, Any], now: dict[str, Any]) -> bool:
    """After an unblock: the client still waits in a blocking command."""
    return bool(now.get("blocked"))
