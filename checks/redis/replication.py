"""redis.replication: replicas that lag or are offline, a backlog too small for the write rate,
and replicas that accept writes.

Read from INFO replication twice, `sample_seconds` apart: the growth of master_repl_offset is
the replication write rate, and repl_backlog_size / that rate is how long a replica may be
disconnected and still resume with a partial resync instead of a full one (a fork and a copy
of the whole dataset). On a replica: replica-read-only, and its lag behind the master (its
link being down is redis.connection's finding).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values
from checks.units import human_bytes, int_or_none

CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it."


class ReplicationOptions(CheckOptions):
    sample_seconds: float = Field(
        default=1.0, gt=0, le=30, description="Seconds between the two INFO replication reads that give the write rate.",
    )
    max_lag_s: int = Field(default=10, ge=1, description="A replica whose last ack is older than this (seconds) lags.")
    max_lag_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="...or that is this many bytes of the replication stream behind.",
    )
    min_backlog_s: int = Field(
        default=60, ge=1, description="The backlog must hold at least this many seconds of writes (a replica's restart).",
    )


@dataclass(frozen=True)
class ReplicaLink:
    address: str
    state: str
    offset: int
    lag_s: int | None


@dataclass(frozen=True)
class ReplicationFacts:
    role: str  # "master" | "slave"
    replicas: list[ReplicaLink] = field(default_factory=list)
    master_offset: int = 0
    offset_growth: int = 0  # bytes over `interval_s`
    interval_s: float = 1.0
    backlog_size: int | None = None
    backlog_active: bool = False
    read_only: str | None = None  # replica-read-only (on a replica); None: CONFIG refused
    link_status: str | None = None
    last_io_s: int | None = None
    replica_offset: int | None = None


class Replication(Check):
    id: ClassVar[str] = "redis.replication"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "Replicas keep up, can resume after a blip, and refuse writes"
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = (
        "A lagging replica serves stale reads and loses the recent writes on failover. A backlog smaller than a "
        "minute of writes turns every replica restart or network blip into a full resync: a fork, a dataset-sized "
        "copy, and a replica unusable meanwhile. A writable replica takes writes that the next resync silently "
        "discards."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = ReplicationOptions

    async def gather(self, session: Any, scope: Scope) -> ReplicationFacts:
        options: ReplicationOptions = scope.options
        client = session.client
        first = await client.info("replication")
        if first.get("role") != "master":
            read_only = (await config_values(client, "replica-read-only"))["replica-read-only"]
            return ReplicationFacts(
                role="slave",
                read_only=read_only,
                link_status=str(first.get("master_link_status")),
                last_io_s=int_or_none(first.get("master_last_io_seconds_ago")),
                replica_offset=int_or_none(first.get("slave_repl_offset")),
                backlog_size=int_or_none(first.get("repl_backlog_size")),
            )
        if not int(first.get("connected_slaves", 0)):
            return ReplicationFacts(role="master", backlog_size=int_or_none(first.get("repl_backlog_size")))
        await asyncio.sleep(options.sample_seconds)  # only with replicas: the write rate matters to them
        second = await client.info("replication")
        replicas = []
        for name, value in second.items():
            if str(name).startswith("slave") and isinstance(value, dict):
                replicas.append(ReplicaLink(
                    address=f"{value.get('ip')}:{value.get('port')}",
                    state=str(value.get("state")),
                    offset=int(value.get("offset", 0)),
                    lag_s=int_or_none(value.get("lag")),
                ))
        offset = int(second.get("master_repl_offset", 0))
        return ReplicationFacts(
            role="master",
            replicas=sorted(replicas, key=lambda r: r.address),
            master_offset=offset,
            offset_growth=max(0, offset - int(first.get("master_repl_offset", 0))),
            interval_s=options.sample_seconds,
            backlog_size=int_or_none(second.get("repl_backlog_size")),
            backlog_active=bool(int(second.get("repl_backlog_active", 0))),
        )

    def evaluate(self, facts: ReplicationFacts, scope: Scope) -> list[Finding]:
        options: ReplicationOptions = scope.options
        if facts.role != "master":
            return self._replica(facts, scope)
        findings = []
        rate = facts.offset_growth / facts.interval_s
        for replica in facts.replicas:
            behind = facts.master_offset - replica.offset
            evidence = {"replica": replica.address, "state": replica.state, "lag_s": replica.lag_s,
                        "offset": replica.offset, "master_repl_offset": facts.master_offset, "bytes_behind": behind}
            if replica.state != "online":
                findings.append(self.finding(
                    scope, object=f"replica {replica.address}", key="offline", evidence=evidence,
                    title=f"Replica {replica.address} is not streaming ({replica.state})",
                    message=(f"The master lists replica {replica.address} in state {replica.state}, not online: it is "
                             "still syncing (or stuck in a full resync) and does not receive writes as they happen."),
                ))
            elif (replica.lag_s or 0) > options.max_lag_s or behind > options.max_lag_bytes:
                findings.append(self.finding(
                    scope, object=f"replica {replica.address}", key="lag", evidence=evidence,
                    severity=Severity.MEDIUM,
                    title=f"Replica {replica.address} lags",
                    message=(f"Replica {replica.address} last acknowledged {replica.lag_s}s ago and is "
                             f"{human_bytes(behind)} of the replication stream behind: its reads are stale, and a "
                             "failover to it would lose those writes."),
                ))
        if facts.replicas and facts.backlog_size and rate > 0:
            covers = facts.backlog_size / rate
            if covers < options.min_backlog_s:
                suggested = _round_up_mb(rate * options.min_backlog_s * 2)
                findings.append(self.finding(
                    scope,
                    object="repl-backlog-size",
                    title="Replication backlog too small for the write rate",
                    message=(
                        f"The master writes {human_bytes(rate)}/s to its replicas and keeps a backlog of "
                        f"{human_bytes(facts.backlog_size)}: it covers {covers:.0f}s. A replica disconnected for longer "
                        f"(a restart, a network blip) needs a full resync: a fork and a copy of the whole dataset. "
                        f"{options.min_backlog_s}s at twice this rate is {human_bytes(suggested)}."
                    ),
                    evidence={"write_rate_bytes_per_s": round(rate), "repl_backlog_size": facts.backlog_size,
                              "backlog_covers_s": round(covers, 1), "sampled_over_s": facts.interval_s,
                              "suggested_backlog": suggested},
                    severity=Severity.MEDIUM,
                    fix=Fix(
                        summary=f"CONFIG SET repl-backlog-size {suggested}",
                        steps=(FixStep(language="redis", command=["CONFIG", "SET", "repl-backlog-size", str(suggested)]),),
                        safety=FixSafety.SAFE,
                        lock=f"No lock; the master holds {human_bytes(suggested)} more memory for the backlog.",
                        inverse=(FixStep(language="redis",
                                         command=["CONFIG", "SET", "repl-backlog-size", str(facts.backlog_size)]),),
                        notes=f"The rate was measured over {facts.interval_s:g}s: size it for the peak. " + CONFIG_NOTE,
                    ),
                    key="backlog",
                ))
        return findings

    def _replica(self, facts: ReplicationFacts, scope: Scope) -> list[Finding]:
        options: ReplicationOptions = scope.options
        findings = []
        if facts.read_only == "no":
            findings.append(self.finding(
                scope,
                object="replica-read-only",
                title="Writable replica",
                message=(
                    "replica-read-only is no: this replica accepts writes, which never reach the master and vanish at "
                    "the next full resync; a client pointed here by mistake loses data silently."
                ),
                evidence={"replica-read-only": facts.read_only, "master_link_status": facts.link_status},
                fix=Fix(
                    summary="CONFIG SET replica-read-only yes",
                    steps=(FixStep(language="redis", command=["CONFIG", "SET", "replica-read-only", "yes"]),),
                    safety=FixSafety.UNSAFE,
                    lock="No lock; clients writing to this replica then get READONLY errors.",
                    inverse=(FixStep(language="redis", command=["CONFIG", "SET", "replica-read-only", "no"]),),
                    notes=CONFIG_NOTE,
                ),
                key="writable",
            ))
        if facts.link_status == "up" and facts.last_io_s is not None and facts.last_io_s > options.max_lag_s:
            findings.append(self.finding(
                scope,
                object="replication",
                title="This replica has not heard from its master for a while",
                message=(f"The last data from the master arrived {facts.last_io_s}s ago (more than "
                         f"{options.max_lag_s}s): the master pings every 10s, so the link is stalling."),
                evidence={"master_last_io_seconds_ago": facts.last_io_s, "master_link_status": facts.link_status},
                severity=Severity.MEDIUM,
                key="lag",
            ))
        return findings


def _round_up_mb(size: float) -> int:
    mb = 1024 * 1024
    return max(mb, int(-(-size // mb)) * mb)

