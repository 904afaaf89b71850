"""postgres.replication: replication slots that retain WAL (an inactive slot is the classic cause
of a full disk: every one is reported, more severe the more it retains), slots whose WAL is lost or about to be (`wal_status`), and standbys lagging behind.
The lag of the server itself, when it is a replica, is postgres.connection's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from checks.config import Duration, duration
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import quote_literal
from checks.postgres._fixes import sql
from checks.postgres._window import earlier_reading
from checks.runway import grade, runway_text
from checks.units import human_bytes

# On a replica the WAL position is the last one received; pg_current_wal_lsn() fails there.
SLOTS_QUERY = """
SELECT s.slot_name AS name, s.slot_type AS type, s.database, s.active, s.wal_status,
       s.safe_wal_size::bigint AS safe_wal_size,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
                       s.restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots s
ORDER BY s.slot_name
"""

STANDBYS_QUERY = """
SELECT coalesce(nullif(r.application_name, ''), r.pid::text) AS name, r.client_addr::text AS client_addr, r.state,
       r.sync_state, extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s,
       CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint END AS replay_bytes
FROM pg_stat_replication r
ORDER BY 1
"""


class Options(CheckOptions):
    min_retained_bytes: int = Field(
        default=1024**3, ge=0, description="An inactive slot retaining at least this much WAL is high severity.")
    medium_retained_bytes: int = Field(
        default=64 * 1024**2, ge=0,
        description="An inactive slot retaining at least this much WAL is medium severity; any smaller one is low.")
    max_standby_lag: Duration = Field(default=duration("5m"), description="A standby replaying further behind is reported.")
    growth_window: Duration = Field(
        default=duration("10m"),
        description="An inactive slot's growth is read against the newest snapshot at least this old (dbvitals snapshot "
                    "save); the days before it reaches min_retained_bytes at that rate grade it (runway: under 30 "
                    "days high, within a year medium, beyond low).")


@dataclass(frozen=True)
class Slot:
    name: str
    type: str
    database: str | None
    active: bool
    wal_status: str | None  # reserved, extended, unreserved, lost
    safe_wal_size: int | None
    retained_bytes: int | None


@dataclass(frozen=True)
class Standby:
    name: str
    client_addr: str | None
    state: str | None
    sync_state: str | None
    replay_lag_s: float | None
    replay_bytes: int | None


@dataclass(frozen=True)
class Earlier:
    """The inactive slots' retained WAL in an earlier snapshot."""

    taken_at: str
    age_s: float
    retained: dict[str, int]  # slot name -> bytes


@dataclass(frozen=True)
class Facts:
    slots: tuple[Slot, ...]
    standbys: tuple[Standby, ...]
    earlier: Earlier | None = None


class Replication(Check):
    id = "postgres.replication"
    engine = "postgres"
    title = "Replication slot or standby in trouble"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "A replication slot keeps every WAL segment its consumer has not confirmed: when the consumer is gone "
        "(a decommissioned replica, a stopped CDC job) WAL piles up until the disk is full and the server stops. "
        "A lost slot can no longer be resumed; a lagging standby serves stale reads and fails over with data loss."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        slots = tuple(Slot(**dict(r)) for r in await session.fetch(SLOTS_QUERY))
        standbys = tuple(Standby(**dict(r)) for r in await session.fetch(STANDBYS_QUERY))
        reading = await earlier_reading(scope.journal, scope.target, "pg.slot", scope.options.growth_window)
        earlier = None if reading is None else Earlier(
            reading[0], reading[1], {name: int(m["retained_bytes"]) for name, m in reading[2].items()
                                     if isinstance(m.get("retained_bytes"), int)})
        return Facts(slots, standbys, earlier)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        options = scope.options
        findings = []
        for slot in facts.slots:
            retained = slot.retained_bytes or 0
            evidence: dict[str, Any] = {"slot": slot.name, "type": slot.type, "database": slot.database, "active": slot.active,
                        "wal_status": slot.wal_status, "retained_bytes": slot.retained_bytes,
                        "retained": human_bytes(retained), "safe_wal_size": slot.safe_wal_size}
            drop = Fix(summary=f"Drop the replication slot {slot.name}",
                       steps=(sql(f"SELECT pg_drop_replication_slot({quote_literal(slot.name)});"),),
                       safety=FixSafety.UNSAFE,
                       lock="no lock; the retained WAL is freed at the next checkpoint and the consumer can never "
                            "resume from this slot (it must be re-synchronised)")
            if slot.wal_status in ("lost", "unreserved"):
                lost = slot.wal_status == "lost"
                findings.append(self.finding(
                    scope, object=f"slot {slot.name}", key=slot.wal_status,
                    severity=Severity.HIGH,
                    title=f"replication slot {slot.name} {'has lost' if lost else 'is about to lose'} its WAL",
                    message=(f"The {slot.type} slot {slot.name} is {slot.wal_status}: "
                             + ("the WAL it needs was removed (max_slot_wal_keep_size); its consumer cannot resume "
                                "and must be rebuilt." if lost else
                                "it retains more than max_slot_wal_keep_size and will lose its WAL at the next "
                                "checkpoint unless its consumer catches up.")),
                    evidence=evidence, fix=drop if lost else None,
                ))
            elif not slot.active:
                # Any inactive slot: a tiny one today grows with every write until its consumer is back.
                if retained >= options.min_retained_bytes:
                    severity = Severity.HIGH
                elif retained >= options.medium_retained_bytes:
                    severity = Severity.MEDIUM
                else:
                    severity = Severity.LOW
                growth = _growth(facts.earlier, slot.name, retained)
                if growth is not None:
                    evidence["growth"] = growth
                    if retained < options.min_retained_bytes and growth["bytes_per_hour"] > 0:
                        days_left = (options.min_retained_bytes - retained) / growth["bytes_per_hour"] / 24
                        evidence["days_to_min_retained"] = round(days_left, 1)
                        evidence["runway"] = runway_text(
                            days_left, event=f"reaches {human_bytes(options.min_retained_bytes)}")
                        # Reaching the line is a warning, not the disk's end: the runway grades up to high only.
                        by_runway = grade(days_left, severity)
                        severity = Severity.HIGH if by_runway.at_least(Severity.HIGH) else by_runway
                findings.append(self.finding(
                    scope, object=f"slot {slot.name}", key="inactive", severity=severity,
                    title=f"inactive replication slot {slot.name} retains {human_bytes(retained)} of WAL",
                    message=(f"No consumer is connected to the {slot.type} slot {slot.name}, which keeps "
                             f"{human_bytes(retained)} of WAL on disk and grows with every write"
                             + (f" ({human_bytes(growth['bytes_per_hour'])} an hour since {growth['since']})"
                                if growth is not None else "")
                             + ("" if slot.wal_status != "extended" else ", already beyond max_wal_size")
                             + ". Reconnect its consumer, or drop the slot if it is gone for good."),
                    evidence=evidence, fix=drop,
                ))
        for standby in facts.standbys:
            lag = standby.replay_lag_s
            if lag is None or lag < options.max_standby_lag.total_seconds():
                continue
            findings.append(self.finding(
                scope, object=f"standby {standby.name}", key="lag", severity=Severity.MEDIUM,
                title=f"standby {standby.name} replays {lag:,.0f} s behind",
                message=(f"The standby {standby.name} ({standby.client_addr or 'local'}, {standby.sync_state}) replays "
                         f"{lag:,.0f} s behind this server"
                         + (f" ({human_bytes(standby.replay_bytes)} of WAL)" if standby.replay_bytes else "")
                         + ": reads there are stale, and a failover to it would lose or wait for that much."),
                evidence={"standby": standby.name, "client_addr": standby.client_addr, "state": standby.state,
                          "sync_state": standby.sync_state, "replay_lag_s": round(lag, 1),
                          "replay_bytes": standby.replay_bytes},
            ))
        return findings


def _growth(earlier: Earlier | None, name: str, retained: int) -> dict[str, Any] | None:
    """The slot's growth since the earlier snapshot, per hour; None without a reading of it there."""
    if earlier is None or name not in earlier.retained or earlier.age_s <= 0:
        return None
    grown = retained - earlier.retained[name]
    return {"since": earlier.taken_at, "bytes": grown, "bytes_per_hour": int(max(grown, 0) * 3600 / earlier.age_s)}
