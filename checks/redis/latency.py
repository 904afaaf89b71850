"""redis.latency: the server's own latency events (fork, expire cycle, eviction, slow commands,
AOF fsync), and whether the latency monitor records them.

Read from CONFIG GET latency-monitor-threshold, LATENCY LATEST and LATENCY DOCTOR (its text is
kept as evidence: it is Redis's own advice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from checks.contract import Check, CheckOptions, Scope
from checks.model import Engine, Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.redis._config import config_values
from checks.redis._patterns import display_key

CONFIG_NOTE = "CONFIG SET changes the running server only: run CONFIG REWRITE (or edit redis.conf) to keep it."
# What each event family means, for the message (LATENCY DOCTOR says more, and is in the evidence).
CAUSES = {
    "fork": "fork() for an RDB save or AOF rewrite copies the page tables of the whole dataset: a large "
            "dataset, transparent huge pages, or a virtualised host make it slow",
    "expire-cycle": "the active expire cycle deleted many keys at once: keys written with the same TTL expire "
                    "together; add jitter to their TTLs",
    "eviction-cycle": "evicting keys to stay under maxmemory took long: memory is full and writes keep coming",
    "eviction-del": "deleting evicted keys took long: big keys are being evicted (lazyfree-lazy-eviction helps)",
    "eviction-lazyfree": "waiting for lazy-free to release evicted memory",
    "command": "slow commands (see redis.slowlog)",
    "fast-command": "O(1) commands were slow: the host is overloaded, or swapping",
    "aof": "AOF writes or fsyncs were slow: the disk is slow or busy",
    "rdb-unlink-temp-file": "removing a temporary RDB file was slow",
    "active-defrag-cycle": "active defragmentation used its time slice",
}


class LatencyOptions(CheckOptions):
    event_ms: int = Field(default=100, ge=1, description="An event whose worst latency reaches this (ms) is a finding.")
    high_ms: int = Field(default=1000, ge=1, description="...and high severity from this (ms).")
    recommended_threshold_ms: int = Field(
        default=100, ge=1, description="What the fix sets latency-monitor-threshold to when the monitor is off.",
    )


@dataclass(frozen=True)
class LatencyEvent:
    name: str
    timestamp: int
    latest_ms: int
    max_ms: int


@dataclass(frozen=True)
class LatencyFacts:
    threshold_ms: int | None  # latency-monitor-threshold; 0: off; None: CONFIG refused
    events: list[LatencyEvent]
    doctor: str | None


class Latency(Check):
    id: ClassVar[str] = "redis.latency"
    engine: ClassVar[Engine] = "redis"
    title: ClassVar[str] = "The server records its latency spikes, and has none worth a look"
    severity: ClassVar[Severity] = Severity.MEDIUM
    rationale: ClassVar[str] = (
        "Latency spikes in Redis mostly come from the server itself, not from one command: a fork for a "
        "snapshot, thousands of keys expiring in the same second, eviction under memory pressure, a slow "
        "disk under AOF. The latency monitor records them per cause, but only when it is on (it is off by "
        "default)."
    )
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    Options = LatencyOptions

    async def gather(self, session: Any, scope: Scope) -> LatencyFacts:
        client = session.client
        threshold = (await config_values(client, "latency-monitor-threshold"))["latency-monitor-threshold"]
        events: list[LatencyEvent] = []
        doctor = None
        try:
            for row in await client.execute_command("LATENCY", "LATEST") or []:
                name, timestamp, latest, worst = row[:4]
                events.append(LatencyEvent(display_key(name), int(timestamp), int(latest), int(worst)))
            report = await client.execute_command("LATENCY", "DOCTOR")
            doctor = display_key(report) if report is not None else None
        except Exception:  # LATENCY denied (ACL, managed Redis): the threshold alone is still judged
            doctor = None
        return LatencyFacts(threshold_ms=int(threshold) if threshold and threshold.lstrip("-").isdigit() else None,
                            events=events, doctor=doctor)

    def evaluate(self, facts: LatencyFacts, scope: Scope) -> list[Finding]:
        options: LatencyOptions = scope.options
        findings = []
        if facts.threshold_ms == 0:
            findings.append(self.finding(
                scope,
                object="latency-monitor-threshold",
                title="Latency monitor off",
                message=(
                    "latency-monitor-threshold is 0: Redis does not record its latency spikes (fork, expire cycle, "
                    "eviction, AOF fsync), so LATENCY LATEST and LATENCY DOCTOR have nothing to say when one hurts."
                ),
                evidence={"latency-monitor-threshold": 0},
                severity=Severity.LOW,
                fix=Fix(
                    summary=f"CONFIG SET latency-monitor-threshold {options.recommended_threshold_ms}",
                    steps=(FixStep(language="redis", command=[
                        "CONFIG", "SET", "latency-monitor-threshold", str(options.recommended_threshold_ms)]),),
                    safety=FixSafety.SAFE,
                    lock="No lock; the monitor keeps 160 samples per event in memory.",
                    inverse=(FixStep(language="redis", command=["CONFIG", "SET", "latency-monitor-threshold", "0"]),),
                    notes=CONFIG_NOTE,
                ),
                key="monitor",
            ))
        for event in sorted(facts.events, key=lambda e: -e.max_ms):
            if event.max_ms < options.event_ms:
                continue
            family = next((name for name in CAUSES if event.name == name or event.name.startswith(name + "-")),
                          "aof" if event.name.startswith("aof") else None)
            cause = CAUSES.get(family or "", "see LATENCY DOCTOR")
            findings.append(self.finding(
                scope,
                object=f"latency:{event.name}",
                title=f"Latency spikes: {event.name} up to {event.max_ms:,} ms",
                message=(f"The latency monitor recorded {event.name} events of up to {event.max_ms:,} ms (latest "
                         f"{event.latest_ms:,} ms): {cause}."),
                evidence={
                    "event": event.name, "max_ms": event.max_ms, "latest_ms": event.latest_ms,
                    "latest_timestamp": event.timestamp, "latency-monitor-threshold": facts.threshold_ms,
                    **({"doctor": facts.doctor[:2000]} if facts.doctor else {}),
                },
                severity=Severity.HIGH if event.max_ms >= options.high_ms else Severity.MEDIUM,
                key=event.name,
            ))
        return findings
