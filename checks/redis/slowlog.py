"""redis.slowlog: the slowest commands the server recorded, grouped by command and key pattern,
and whether the slow log records anything at all.

Read from SLOWLOG GET (the newest `entries` entries) and CONFIG GET slowlog-log-slower-than /
slowlog-max-len. dbvitals' own commands (client name "dbvitals", e.g. the keyspace pass's page
script) are left out: they are not the application's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values
from checks.redis._patterns import display_key, infer_pattern
from checks.units import int_or_none

OWN_CLIENT = "dbvitals"
# Commands whose first argument is not a key: grouped by command alone.
KEYLESS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "script", "function", "debug", "keys",
           "scan", "flushall", "flushdb", "info", "config", "client", "cluster", "memory", "object", "latency",
           "slowlog", "select", "ping", "multi", "exec", "publish", "subscribe", "psubscribe", "bgsave", "save",
           "bgrewriteaof", "dbsize", "randomkey", "wait", "command", "acl", "module", "shutdown", "migrate"}
CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it."


class SlowlogOptions(CheckOptions):
    entries: int = Field(default=128, ge=1, le=10000, description="SLOWLOG GET this many of the newest entries.")
    slow_ms: float = Field(default=10.0, ge=0, description="Entries at least this slow (milliseconds) are reported.")
    high_ms: float = Field(default=100.0, ge=0, description="A group whose slowest entry reaches this is medium, else low.")
    max_threshold_us: int = Field(
        default=100_000, ge=1,
        description="slowlog-log-slower-than above this (microseconds) records too little: a finding.",
    )
    recommended_threshold_us: int = Field(default=10_000, ge=0, description="What the fix sets slowlog-log-slower-than to.")
    groups_listed: int = Field(default=10, ge=1, le=100, description="Command/pattern groups listed, slowest total first.")


@dataclass(frozen=True)
class SlowEntry:
    id: int
    timestamp: int
    duration_us: int
    command: list[str]
    client_name: str


@dataclass(frozen=True)
class SlowlogFacts:
    threshold_us: int | None  # slowlog-log-slower-than; None: CONFIG refused
    max_len: int | None
    length: int | None  # SLOWLOG LEN
    entries: list[SlowEntry]


class Slowlog(Check):
    id: ClassVar[str] = "redis.slowlog"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "No command blocks Redis for long, and the slow log would say so"
    severity: ClassVar[Severity] = Severity.MEDIUM
    rationale: ClassVar[str] = (
        "Redis runs one command at a time: a 200 ms KEYS, HGETALL of a huge hash or Lua script delays every "
        "other client by as much. The slow log names them; grouped by command and key pattern it shows which "
        "code path to fix. With the slow log off or its threshold high, nothing is recorded."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = SlowlogOptions

    async def gather(self, session: Any, scope: Scope) -> SlowlogFacts:
        options: SlowlogOptions = scope.options
        client = session.client
        config = await config_values(client, "slowlog-log-slower-than", "slowlog-max-len")
        raw = await client.execute_command("SLOWLOG", "GET", options.entries)
        length = await client.execute_command("SLOWLOG", "LEN")
        return SlowlogFacts(
            threshold_us=int_or_none(config["slowlog-log-slower-than"]),
            max_len=int_or_none(config["slowlog-max-len"]),
            length=length if isinstance(length, int) else None,
            entries=[entry for entry in map(_entry, raw or []) if entry is not None],
        )

    def evaluate(self, facts: SlowlogFacts, scope: Scope) -> list[Finding]:
        options: SlowlogOptions = scope.options
        findings = []
        settings = {"slowlog-log-slower-than": facts.threshold_us, "slowlog-max-len": facts.max_len,
                    "slowlog_len": facts.length}
        if facts.threshold_us is not None and (facts.threshold_us < 0 or facts.threshold_us > options.max_threshold_us):
            off = facts.threshold_us < 0
            findings.append(self.finding(
                scope,
                object="slowlog-log-slower-than",
                title="Slow log disabled" if off else "Slow log threshold too high",
                message=(
                    ("slowlog-log-slower-than is negative: the slow log records nothing, so a command that blocks "
                     "the server leaves no trace." if off else
                     f"slowlog-log-slower-than is {facts.threshold_us / 1000:g} ms: commands faster than that, which "
                     f"still block every other client, are never recorded (above {options.max_threshold_us / 1000:g} ms).")
                ),
                evidence=settings,
                severity=Severity.MEDIUM if off else Severity.LOW,
                fix=Fix(
                    summary=f"CONFIG SET slowlog-log-slower-than {options.recommended_threshold_us}",
                    steps=(FixStep(language="redis", command=[
                        "CONFIG", "SET", "slowlog-log-slower-than", str(options.recommended_threshold_us)]),),
                    safety=FixSafety.SAFE,
                    lock="No lock; the slow log keeps at most slowlog-max-len entries in memory.",
                    inverse=(FixStep(language="redis", command=[
                        "CONFIG", "SET", "slowlog-log-slower-than", str(facts.threshold_us)]),),
                    notes=CONFIG_NOTE,
                ),
                key="threshold",
            ))
        groups = group_entries(facts.entries, options.slow_ms * 1000)
        if groups:
            listed = groups[: options.groups_listed]
            worst = max(g["max_us"] for g in groups)
            lead = "; ".join(
                f"{g['command']} {g['pattern'] or ''}".rstrip() + f" ×{g['count']} (max {g['max_us'] / 1000:.0f} ms)"
                for g in listed[:3])
            findings.append(self.finding(
                scope,
                object="slowlog",
                title=f"Slow commands: {len(groups)} command/pattern groups, slowest {worst / 1000:.0f} ms",
                message=(
                    f"The slow log holds {sum(g['count'] for g in groups):,} entries of at least {options.slow_ms:g} ms "
                    f"from the application (of the newest {len(facts.entries):,} read): {lead}. Each blocked every "
                    "other client for as long."
                ),
                evidence={"groups": listed, "groups_total": len(groups), **settings},
                severity=Severity.MEDIUM if worst >= options.high_ms * 1000 else Severity.LOW,
                key="entries",
            ))
        return findings


def group_entries(entries: list[SlowEntry], slow_us: float) -> list[dict[str, Any]]:
    """Entries of the application at least `slow_us` slow, grouped by command and key pattern,
    slowest total first."""
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for entry in entries:
        if entry.client_name == OWN_CLIENT or entry.duration_us < slow_us or not entry.command:
            continue
        base = name = entry.command[0].lower()
        if base in ("config", "client", "debug", "object", "memory", "cluster") and len(entry.command) > 1:
            name = f"{base} {entry.command[1].lower()}"
        pattern = infer_pattern(entry.command[1]) if len(entry.command) > 1 and base not in KEYLESS else None
        group = groups.setdefault((name, pattern), {
            "command": name.upper(), "pattern": pattern, "count": 0, "total_us": 0, "max_us": 0,
            "last_timestamp": 0, "example": " ".join(entry.command[:4])[:200]})
        group["count"] += 1
        group["total_us"] += entry.duration_us
        group["max_us"] = max(group["max_us"], entry.duration_us)
        group["last_timestamp"] = max(group["last_timestamp"], entry.timestamp)
    return sorted(groups.values(), key=lambda g: (-g["total_us"], g["command"]))


def _entry(raw: Any) -> SlowEntry | None:
    """A SLOWLOG GET entry, as redis-py parses it (a dict) or raw (a list)."""
    if isinstance(raw, dict):
        command = raw.get("command", b"")
        args = command.split() if isinstance(command, (bytes, str)) else list(command)
        return SlowEntry(int(raw.get("id", 0)), int(raw.get("start_time", 0)), int(raw.get("duration", 0)),
                         [display_key(a) for a in args], display_key(raw.get("client_name", b"") or b""))
    if isinstance(raw, (list, tuple)) and len(raw) >= 4:
        name = raw[5] if len(raw) > 5 else b""
        return SlowEntry(int(raw[0]), int(raw[1]), int(raw[2]), [display_key(a) for a in raw[3]], display_key(name or b""))
    return None

