"""redis.persistence: RDB/AOF settings against the declared role, and failing saves or rewrites.

Read from INFO persistence and CONFIG GET save / appendonly / appendfsync /
stop-writes-on-bgsave-error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from checks.contract import Check, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values

CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it after a restart."


@dataclass(frozen=True)
class PersistenceFacts:
    save: str | None  # "" = no RDB snapshots; None = CONFIG not readable
    appendonly: str | None
    appendfsync: str | None
    stop_writes_on_bgsave_error: str | None
    rdb_last_bgsave_status: str
    rdb_last_save_time: int | None
    rdb_changes_since_last_save: int
    aof_enabled: bool
    aof_last_bgrewrite_status: str
    aof_last_write_status: str
    now: float

    @property
    def rdb_enabled(self) -> bool | None:
        return None if self.save is None else bool(self.save.strip())

    @property
    def aof_on(self) -> bool:
        return self.aof_enabled or self.appendonly == "yes"


class Persistence(Check):
    id: ClassVar[str] = "redis.persistence"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "Persistence fits the role, and snapshots and AOF rewrites succeed"
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = (
        "A data store without RDB or AOF loses every key on restart (and a replica that syncs from it loses them "
        "too); one with RDB only loses the writes since the last snapshot. A failing background save makes Redis "
        "refuse writes (MISCONF) when stop-writes-on-bgsave-error is on. A cache pays fork and fsync costs for data "
        "it can rebuild."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES

    async def gather(self, session: Any, scope: Scope) -> PersistenceFacts:
        info = await session.client.info("persistence")
        config = await config_values(session.client, "save", "appendonly", "appendfsync", "stop-writes-on-bgsave-error")
        last_save = info.get("rdb_last_save_time")
        return PersistenceFacts(
            save=config["save"],
            appendonly=config["appendonly"],
            appendfsync=config["appendfsync"],
            stop_writes_on_bgsave_error=config["stop-writes-on-bgsave-error"],
            rdb_last_bgsave_status=str(info.get("rdb_last_bgsave_status", "ok")),
            rdb_last_save_time=int(last_save) if last_save is not None else None,
            rdb_changes_since_last_save=int(info.get("rdb_changes_since_last_save", 0)),
            aof_enabled=bool(int(info.get("aof_enabled", 0))),
            aof_last_bgrewrite_status=str(info.get("aof_last_bgrewrite_status", "ok")),
            aof_last_write_status=str(info.get("aof_last_write_status", "ok")),
            now=time.time(),
        )

    def evaluate(self, facts: PersistenceFacts, scope: Scope) -> list[Finding]:
        role = getattr(scope.config, "role", None)
        evidence = {
            "role": role,
            "save": facts.save,
            "appendonly": facts.appendonly,
            "appendfsync": facts.appendfsync,
            "rdb_last_bgsave_status": facts.rdb_last_bgsave_status,
            "rdb_changes_since_last_save": facts.rdb_changes_since_last_save,
            "aof_last_bgrewrite_status": facts.aof_last_bgrewrite_status,
            "aof_last_write_status": facts.aof_last_write_status,
        }
        if facts.rdb_last_save_time:
            evidence["seconds_since_last_save"] = max(0, int(facts.now - facts.rdb_last_save_time))
        findings = self._failures(scope, facts, evidence)
        if role == "store":
            findings += self._store(scope, facts, evidence)
        elif role == "cache" and facts.aof_on:
            findings.append(self.finding(
                scope,
                object="appendonly",
                title="AOF on a cache",
                message=(
                    "This target's role is cache, yet the append-only file is on: every write is logged and fsynced "
                    f"(appendfsync {facts.appendfsync}) and the log is rewritten with a fork, for data the application "
                    "can rebuild. RDB snapshots alone give a warm restart at far lower cost."
                ),
                evidence=evidence,
                severity=Severity.LOW,
                fix=_appendonly_fix("no", "Turn the append-only file off", "No lock; the AOF stops being written."),
                key="cache-aof",
            ))
        return findings

    def _failures(self, scope: Scope, facts: PersistenceFacts, evidence: dict[str, Any]) -> list[Finding]:
        findings = []
        if facts.rdb_last_bgsave_status != "ok":
            refusing = facts.stop_writes_on_bgsave_error == "yes" and bool(facts.rdb_enabled)
            findings.append(self.finding(
                scope,
                object="rdb",
                title="Last background save failed",
                message=(
                    f"The last RDB background save failed ({facts.rdb_changes_since_last_save:,} changes not on disk). "
                    + ("With stop-writes-on-bgsave-error yes, Redis now refuses writes (MISCONF) until a save succeeds. "
                       if refusing else "")
                    + "The server log says why: usually a full disk, a directory it cannot write, or a fork "
                    "that failed for lack of memory (vm.overcommit_memory)."
                ),
                evidence=evidence,
                severity=Severity.CRITICAL if refusing else Severity.HIGH,
                key="bgsave",
            ))
        if facts.aof_last_write_status != "ok":
            findings.append(self.finding(
                scope,
                object="aof",
                title="AOF writes are failing",
                message="The last write to the append-only file failed: writes are not durable, and Redis refuses "
                "writes while it cannot append. Check the disk (space, errors) and the server log.",
                evidence=evidence,
                severity=Severity.CRITICAL,
                key="aof-write",
            ))
        if facts.aof_last_bgrewrite_status != "ok":
            findings.append(self.finding(
                scope,
                object="aof",
                title="Last AOF rewrite failed",
                message="The last append-only file rewrite failed: the AOF keeps growing and a restart replays all of "
                "it. The server log says why (disk space, fork memory).",
                evidence=evidence,
                severity=Severity.HIGH,
                key="aof-rewrite",
            ))
        return findings

    def _store(self, scope: Scope, facts: PersistenceFacts, evidence: dict[str, Any]) -> list[Finding]:
        if facts.rdb_enabled is None and facts.appendonly is None:
            return []  # CONFIG not readable: nothing to judge, and nothing to claim
        if not facts.aof_on and not facts.rdb_enabled:
            return [self.finding(
                scope,
                object="persistence",
                title="Data store without persistence",
                message=(
                    "This target's role is store, but neither RDB snapshots (save is empty) nor the append-only file "
                    "are on: a restart or crash loses every key, and a replica that resyncs from the restarted, empty "
                    "master loses them too."
                ),
                evidence=evidence,
                severity=Severity.CRITICAL,
                fix=_appendonly_fix("yes", "Turn the append-only file on (fsync every second)",
                                    "No lock; Redis forks to write the first AOF (disk I/O, copy-on-write memory).",
                                    facts.appendfsync),
                key="none",
            )]
        findings = []
        if not facts.aof_on:
            findings.append(self.finding(
                scope,
                object="appendonly",
                title="Data store with RDB snapshots only",
                message=(
                    f"This target's role is store, and only RDB snapshots are on (save \"{facts.save}\"): a crash loses "
                    "every write since the last snapshot. The append-only file with appendfsync everysec loses at "
                    "most a second."
                ),
                evidence=evidence,
                severity=Severity.MEDIUM,
                fix=_appendonly_fix("yes", "Turn the append-only file on (fsync every second)",
                                    "No lock; Redis forks to write the first AOF (disk I/O, copy-on-write memory).",
                                    facts.appendfsync),
                key="rdb-only",
            ))
        elif facts.appendfsync == "no":
            findings.append(self.finding(
                scope,
                object="appendfsync",
                title="AOF without fsync",
                message="appendfsync is no: the OS decides when the AOF reaches the disk (often 30 s), so a machine "
                "crash loses that much of a data store's writes. everysec bounds it to a second.",
                evidence=evidence,
                severity=Severity.LOW,
                fix=Fix(
                    summary="CONFIG SET appendfsync everysec",
                    steps=(FixStep(language="redis", command=["CONFIG", "SET", "appendfsync", "everysec"]),),
                    safety=FixSafety.UNSAFE,
                    lock="No lock; one fsync per second in a background thread.",
                    inverse=(FixStep(language="redis", command=["CONFIG", "SET", "appendfsync", "no"]),),
                    notes=CONFIG_NOTE,
                ),
                key="fsync",
            ))
        return findings


def _appendonly_fix(value: str, summary: str, impact: str, fsync: str | None = None) -> Fix:
    """appendonly to `value`; turning it on also sets appendfsync everysec (`fsync`: the current
    value, restored by the inverse)."""
    steps = [FixStep(language="redis", command=["CONFIG", "SET", "appendonly", value])]
    inverse = [FixStep(language="redis", command=["CONFIG", "SET", "appendonly", "no" if value == "yes" else "yes"])]
    if value == "yes" and fsync and fsync != "everysec":
        steps.append(FixStep(language="redis", command=["CONFIG", "SET", "appendfsync", "everysec"]))
        inverse.insert(0, FixStep(language="redis", command=["CONFIG", "SET", "appendfsync", fsync]))
    return Fix(
        summary=summary,
        steps=tuple(steps),
        safety=FixSafety.UNSAFE,
        lock=impact,
        inverse=tuple(inverse),
        notes=CONFIG_NOTE,
    )
