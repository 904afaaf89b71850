"""Redis activity: clients (CLIENT LIST), the latest slow commands (SLOWLOG GET) and calls and
time per command per second (INFO commandstats deltas). Three read-only commands per refresh."""

from __future__ import annotations

import time
from typing import Any

from checks.activity import ActivitySample, Section, now_iso, rates, shorten
from checks.model import FixStep
from checks.units import counted, int_or_none

OWN_NAME = "dbvitals"
SLOWLOG_ENTRIES = 20

# How the activity view shows each section (checks.activity.Section), in this order.
KILLABLE: str | None = "clients"  # the section whose rows cancel and terminate act on
LAYOUT: list[Section] = [
    ("slowlog", "Slow log (latest)",
     [("id", "#", "right"), ("duration_ms", "ms", "right"), ("command", "command", "left"), ("client", "client", "left")], 10),
    ("commands", "Commands per second",
     [("command", "command", "left"), ("calls_per_s", "calls/s", "right"), ("usec_per_s", "µs/s", "right")], 15),
    ("client_names", "Clients by name", [("name", "name", "left"), ("clients", "clients", "right")], 10),
    ("clients", "Clients (most idle first)",
     [("id", "id", "right"), ("name", "name", "left"), ("address", "address", "left"), ("age_s", "age s", "right"),
      ("idle_s", "idle s", "right"), ("last_command", "last", "left")], 15),
]


def is_own(row: dict[str, Any]) -> bool:
    return str(row.get("name") or "").startswith(OWN_NAME) or bool(row.get("current"))


async def read(session: Any, target: str, previous: ActivitySample | None) -> ActivitySample:
    client = session.client
    notes: list[str] = []
    own_id = await client.client_id()
    clients = await client.client_list()
    try:
        slowlog = await client.execute_command("SLOWLOG", "GET", SLOWLOG_ENTRIES)
    except Exception as exc:  # renamed or ACL-denied
        slowlog = []
        notes.append(f"SLOWLOG not answered: {shorten(exc, 160)}")
    stats = await client.info("commandstats")
    return sample_from_replies(target, clients, slowlog, stats, previous, own_id=own_id, notes=notes)


def sample_from_replies(
    target: str,
    clients: list[dict[str, Any]],
    slowlog: list[Any],
    commandstats: dict[str, Any],
    previous: ActivitySample | None,
    *,
    own_id: int | None = None,
    notes: list[str] | None = None,
    monotonic: float | None = None,
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
            "current": own_id is not None and str(c.get("id")) == str(own_id),
        }
        # redis-cli's rule: a connection whose idle time equals its age never sent a command.
        row["never_active"] = row["age_s"] is not None and row["age_s"] > 0 and row["age_s"] == row["idle_s"]
        row["own"] = is_own(row)
        del row["current"]
        rows.append(row)
    sample.sections["clients"] = sorted(rows, key=lambda r: -(r["idle_s"] or 0))
    names: dict[str, int] = {}
    for r in rows:
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
    return sample


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
    """CLIENT KILL ID for both: Redis cannot cancel a running command, only close its client."""
    try:
        int(ident)
    except ValueError:
        raise LookupError(f"{ident!r} is not a Redis client id (a whole number)") from None
    return FixStep("redis", ["CLIENT", "KILL", "ID", ident],
                   description="closes the client's connection; it must reconnect")


async def apply(session: Any, step: FixStep) -> str:
    closed = await session.client.execute_command(*step.command)
    return f"{counted(closed, 'client')} closed" if isinstance(closed, int) else "client closed"


def changed(preview: dict[str, Any], now: dict[str, Any]) -> str | None:
    return None  # an id names one client for its whole life


def idle(row: dict[str, Any]) -> str | None:
    return None  # a client listed is one that can be stopped


def still_running(preview: dict[str, Any], now: dict[str, Any]) -> bool:
    return True  # stopping removes the row: still there means it did not work yet
