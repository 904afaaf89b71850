"""postgres.vacuum: what on-call needs to know about VACUUM, at pganalyze's depth.

- Transaction-ID and multixact age of every database and of this database's tables, against the
  point where the server stops accepting writes (2^31 − 3,000,000 on PostgreSQL 14+) and against
  `autovacuum_freeze_max_age` / `autovacuum_multixact_freeze_max_age`.
- What holds the xmin horizon back, so VACUUM cannot remove dead rows or freeze: the oldest
  transactions and sessions idle in one, replication slots, prepared transactions, standbys with
  hot_standby_feedback — each named with its age.
- Dead rows against each table's own autovacuum threshold (threshold + scale factor × rows,
  per-table settings included), and tables autovacuum never reached or may not touch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import qualified, quote_ident, quote_literal
from checks.postgres._fixes import sql
from checks.postgres.long_transactions import _age
from checks.runway import grade, runway_text

WRAPAROUND_STOP = 2**31 - 3_000_000  # the server refuses new transaction ids beyond this age

SETTINGS_QUERY = """
SELECT current_setting('autovacuum')::bool AS autovacuum,
       current_setting('track_counts')::bool AS track_counts,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS multixact_freeze_max_age,
       current_setting('autovacuum_vacuum_threshold')::bigint AS vacuum_threshold,
       current_setting('autovacuum_vacuum_scale_factor')::float8 AS vacuum_scale_factor,
       current_database() AS database
"""

DATABASES_QUERY = """
SELECT datname AS name, age(datfrozenxid)::bigint AS xid_age, mxid_age(datminmxid)::bigint AS mxid_age
FROM pg_database
"""

# A table's TOAST table is frozen with it: its age counts for the table.
TABLES_QUERY = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0))::bigint AS xid_age,
       greatest(mxid_age(c.relminmxid), coalesce(mxid_age(t.relminmxid), 0))::bigint AS mxid_age,
       c.reltuples::float8 AS rows_estimate, coalesce(s.n_dead_tup, 0) AS dead_rows, coalesce(s.n_live_tup, 0) AS live_rows,
       s.last_autovacuum, s.last_vacuum, coalesce(s.autovacuum_count, 0) AS autovacuum_count,
       coalesce(c.reloptions, '{}')::text[] AS reloptions
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
"""

# Everything that keeps an old transaction id alive, oldest first.
HORIZON_QUERY = """
SELECT 'session' AS kind, a.pid::text AS name,
       concat_ws(' ', a.usename || '@' || coalesce(a.client_addr::text, 'local'), nullif(a.application_name, ''),
                 'database ' || a.datname, a.state) AS detail,
       greatest(age(a.backend_xmin), age(a.backend_xid))::bigint AS xid_age,
       extract(epoch FROM now() - a.xact_start)::float8 AS seconds, left(a.query, 200) AS query
FROM pg_stat_activity a
WHERE (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL) AND a.pid <> pg_backend_pid()
UNION ALL
SELECT 'replication slot', s.slot_name::text,
       concat_ws(' ', s.slot_type, CASE WHEN s.active THEN 'active' ELSE 'inactive' END, 'database ' || s.database),
       greatest(age(s.xmin), age(s.catalog_xmin))::bigint, NULL, NULL
FROM pg_replication_slots s
WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
UNION ALL
SELECT 'prepared transaction', p.gid, concat_ws(' ', 'owner ' || p.owner, 'database ' || p.database),
       age(p.transaction)::bigint, extract(epoch FROM now() - p.prepared)::float8, NULL
FROM pg_prepared_xacts p
UNION ALL
SELECT 'standby', coalesce(nullif(r.application_name, ''), r.pid::text),
       concat_ws(' ', 'hot_standby_feedback from', coalesce(r.client_addr::text, 'local'), r.state),
       age(r.backend_xmin)::bigint, NULL, NULL
FROM pg_stat_replication r
WHERE r.backend_xmin IS NOT NULL
ORDER BY 4 DESC
"""


class Options(CheckOptions):
    wraparound_warn: float = Field(
        default=0.5, gt=0, lt=1, description="Share of the age at which writes stop (2^31 − 3M) reported high.")
    wraparound_critical: float = Field(default=0.75, gt=0, lt=1, description="... and critical.")
    horizon_xid_age: int = Field(
        default=50_000_000, ge=0, description="A session, slot, prepared transaction or standby holding back the xmin "
                                              "horizon by more transaction ids than this is reported.")
    dead_factor: float = Field(
        default=2.0, ge=1, description="Dead rows above this multiple of the table's autovacuum threshold: behind.")
    min_dead_rows: int = Field(default=100_000, ge=0, description="Ignore tables with fewer dead rows than this.")
    sample_seconds: float = Field(
        default=1.0, ge=0, le=60,
        description="Seconds between two readings of a database's age past wraparound_warn, for the rate at which it "
                    "ages and so the days before writes stop (0: no rate, the share used decides).")

    @model_validator(mode="after")
    def _ordered(self) -> Options:
        if self.wraparound_critical < self.wraparound_warn:
            raise ValueError("wraparound_critical must be at least wraparound_warn")
        return self


@dataclass(frozen=True)
class VacuumSettings:
    autovacuum: bool
    track_counts: bool
    freeze_max_age: int
    multixact_freeze_max_age: int
    vacuum_threshold: int
    vacuum_scale_factor: float
    database: str


@dataclass(frozen=True)
class DatabaseAge:
    name: str
    xid_age: int
    mxid_age: int


@dataclass(frozen=True)
class TableVacuum:
    schema: str
    name: str
    kind: str
    xid_age: int
    mxid_age: int
    rows_estimate: float
    dead_rows: int
    live_rows: int
    last_autovacuum: dt.datetime | None
    last_vacuum: dt.datetime | None
    autovacuum_count: int
    reloptions: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    def option(self, name: str) -> str | None:
        for item in self.reloptions:
            key, _, value = item.partition("=")
            if key == name:
                return value
        return None

    def vacuum_threshold(self, settings: VacuumSettings) -> float:
        """Dead rows that trigger autovacuum here: per-table settings over the server's."""
        base = int(self.option("autovacuum_vacuum_threshold") or settings.vacuum_threshold)
        scale = float(self.option("autovacuum_vacuum_scale_factor") or settings.vacuum_scale_factor)
        return base + scale * max(self.rows_estimate, 0)

    @property
    def autovacuum_disabled(self) -> bool:
        return (self.option("autovacuum_enabled") or "true").lower() in ("false", "off", "0", "no")

    @property
    def user_table(self) -> bool:
        return self.schema not in ("pg_catalog", "information_schema") and not self.schema.startswith("pg_toast")


@dataclass(frozen=True)
class Holder:
    kind: str  # session, replication slot, prepared transaction, standby
    name: str
    detail: str
    xid_age: int | None
    seconds: float | None
    query: str | None


@dataclass(frozen=True)
class Aging:
    """A database's ages at a second reading, and the seconds since the first one."""

    later: DatabaseAge
    seconds: float


@dataclass(frozen=True)
class Facts:
    settings: VacuumSettings
    databases: tuple[DatabaseAge, ...]
    tables: tuple[TableVacuum, ...]
    holders: tuple[Holder, ...]
    aging: dict[str, Aging] = field(default_factory=dict)  # database name → second reading


def _share(age: int) -> float:
    return age / WRAPAROUND_STOP


def _worst(db: DatabaseAge) -> float:
    return max(_share(db.xid_age), _share(db.mxid_age))


def ids_per_second(db: DatabaseAge, aging: Aging | None) -> tuple[float | None, str]:
    """How fast the database's older age grows between two readings, and how that was measured; None
    without a second reading, or when a VACUUM froze it in between (the age went down)."""
    if aging is None or aging.seconds <= 0:
        return None, "no second reading"
    use_xid = db.xid_age >= db.mxid_age
    before, after = (db.xid_age, aging.later.xid_age) if use_xid else (db.mxid_age, aging.later.mxid_age)
    if after < before:
        return None, f"the age went down over {aging.seconds:.1f} s (frozen in between)"
    if after == before:  # an idle second says nothing of the next day
        return None, f"no id taken over {aging.seconds:.1f} s"
    return (after - before) / aging.seconds, f"{after - before:,} ids taken over {aging.seconds:.1f} s between two readings"


class Vacuum(Check):
    id = "postgres.vacuum"
    engine = "postgres"
    title = "VACUUM: wraparound, xmin horizon, dead rows"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    Options = Options
    rationale = (
        "When VACUUM cannot keep up, dead rows bloat tables and, worse, transaction ids run out: at about 2.1 "
        "billion the server stops accepting writes until a VACUUM in single-user mode. An old transaction, an "
        "idle session inside one, a forgotten replication slot or prepared transaction stops VACUUM everywhere."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        settings = VacuumSettings(**dict(await session.fetchrow(SETTINGS_QUERY)))
        databases = tuple(DatabaseAge(**dict(r)) for r in await session.fetch(DATABASES_QUERY))
        read_at = asyncio.get_running_loop().time()
        tables = tuple(TableVacuum(**{**dict(r), "reloptions": tuple(r["reloptions"])})
                       for r in await session.fetch(TABLES_QUERY))
        holders = tuple(Holder(**dict(r)) for r in await session.fetch(HORIZON_QUERY))
        aging: dict[str, Aging] = {}
        old = {db.name for db in databases if _worst(db) >= scope.options.wraparound_warn}
        if old and scope.options.sample_seconds > 0:
            # age() reads the next id without taking one: two readings are the rate, nothing written.
            await asyncio.sleep(max(0.0, read_at + scope.options.sample_seconds - asyncio.get_running_loop().time()))
            again = await session.fetch(DATABASES_QUERY)
            seconds = asyncio.get_running_loop().time() - read_at
            aging = {r["name"]: Aging(DatabaseAge(**dict(r)), seconds) for r in again if r["name"] in old}
        return Facts(settings, databases, tables, holders, aging)

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = [*self._wraparound(facts, scope), *self._horizon(facts, scope), *self._dead_rows(facts, scope)]
        if not facts.settings.autovacuum or not facts.settings.track_counts:
            off = "autovacuum" if not facts.settings.autovacuum else "track_counts (autovacuum needs it)"
            findings.append(self.finding(
                scope, object="autovacuum", key="off", severity=Severity.HIGH,
                title=f"{off} is off on this server",
                message=(f"{off} is off: dead rows are never removed automatically and only the anti-wraparound "
                         "autovacuum still runs. Turn it back on in postgresql.conf."),
                evidence={"autovacuum": facts.settings.autovacuum, "track_counts": facts.settings.track_counts},
            ))
        for table in facts.tables:
            if table.autovacuum_disabled and table.user_table:
                findings.append(self.finding(
                    scope, object=table.qualified, key="autovacuum disabled", severity=Severity.MEDIUM,
                    title=f"autovacuum is disabled on {table.name}",
                    message=(f"{table.qualified} has autovacuum_enabled = false: its dead rows pile up and only an "
                             f"anti-wraparound vacuum will ever visit it ({table.dead_rows:,} dead rows now)."),
                    evidence={"reloptions": list(table.reloptions), "dead_rows": table.dead_rows,
                              "last_vacuum": _when(table.last_vacuum)},
                    fix=Fix(summary=f"Let autovacuum process {table.name}",
                            steps=(sql(f"ALTER TABLE {table.qualified} RESET (autovacuum_enabled);"),),
                            safety=FixSafety.SAFE, lock=f"SHARE UPDATE EXCLUSIVE on {table.qualified}, briefly",
                            inverse=(sql(f"ALTER TABLE {table.qualified} SET (autovacuum_enabled = false);"),)),
                ))
        return findings

    def _wraparound(self, facts: Facts, scope: Scope) -> list[Finding]:
        options, settings = scope.options, facts.settings
        findings = []
        here = [t for t in facts.tables if max(_share(t.xid_age), _share(t.mxid_age)) >= options.wraparound_warn]
        here.sort(key=lambda t: -max(t.xid_age, t.mxid_age))
        for db in facts.databases:
            worst = _worst(db)
            if worst < options.wraparound_warn:
                continue
            which = "transaction id" if db.xid_age >= db.mxid_age else "multixact id"
            age = max(db.xid_age, db.mxid_age)
            current = db.name == settings.database
            evidence: dict[str, Any] = {
                "xid_age": db.xid_age, "mxid_age": db.mxid_age,
                "autovacuum_freeze_max_age": settings.freeze_max_age,
                "autovacuum_multixact_freeze_max_age": settings.multixact_freeze_max_age,
                "writes_stop_at_age": WRAPAROUND_STOP, "ids_left_before_writes_stop": WRAPAROUND_STOP - age,
                "share_used": round(worst, 4),
            }
            per_second, measured_by = ids_per_second(db, facts.aging.get(db.name))
            days_left = None if per_second is None else (WRAPAROUND_STOP - age) / per_second / 86400
            evidence["rate_per_second"] = None if per_second is None else round(per_second, 3)
            evidence["rate_from"] = measured_by
            if days_left is not None:
                evidence["days_before_writes_stop"] = round(days_left, 1)
                if age < settings.freeze_max_age:  # the anti-wraparound autovacuum comes first, on its own
                    evidence["days_before_forced_autovacuum"] = round(
                        (settings.freeze_max_age - age) / (per_second or 1) / 86400, 1)
            evidence["runway"] = runway_text(days_left)
            fix = None
            if current:
                evidence["oldest_tables"] = [{"table": t.qualified, "xid_age": t.xid_age, "mxid_age": t.mxid_age}
                                             for t in here[:10]]
                if here:
                    fix = Fix(
                        summary="VACUUM (FREEZE) the " + ("oldest table" if len(here) == 1 else f"{min(len(here), 5)} oldest tables"),
                        steps=tuple(sql(f"VACUUM (FREEZE, VERBOSE) {t.qualified};", transactional=False)
                                    for t in here[:5]),
                        safety=FixSafety.SAFE,
                        lock="SHARE UPDATE EXCLUSIVE on each table: reads and writes go on; heavy reads and writes "
                             "of the whole table",
                        notes="First end what holds the xmin horizon back (see the evidence), or the freeze cannot advance.",
                    )
            holders = [h for h in facts.holders if h.xid_age is not None]
            if holders:
                evidence["horizon_held_by"] = [_holder(h) for h in holders[:3]]
            findings.append(self.finding(
                scope, object=f"database {quote_ident(db.name)}", key="wraparound",
                severity=grade(days_left, Severity.CRITICAL if worst >= options.wraparound_critical else Severity.HIGH),
                title=f"{db.name}: {which} age {age:,} ({worst:.0%} of the way to a write stop)",
                message=(f"Database {quote_ident(db.name)} has a {which} age of {age:,}: {WRAPAROUND_STOP - age:,} ids left "
                         "before the server refuses writes to prevent wraparound; autovacuum should have frozen it at "
                         f"{settings.freeze_max_age:,}. Runway: {evidence['runway']}"
                         + ("" if per_second is None else f" at {per_second:,.1f} ids/s") + "."
                         + ("" if current else
                         " Point a target at that database to see its oldest tables.")),
                evidence=evidence, fix=fix,
            ))
        return findings

    def _horizon(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = []
        for holder in facts.holders:
            if holder.xid_age is None or holder.xid_age < scope.options.horizon_xid_age:
                continue
            evidence = _holder(holder)
            fix = _release(holder)
            findings.append(self.finding(
                scope, object=f"{holder.kind} {holder.name}", key="horizon", severity=Severity.MEDIUM,
                title=f"{holder.kind} {holder.name} holds back VACUUM by {holder.xid_age:,} transactions",
                message=(f"The {holder.kind} {holder.name} ({holder.detail}) keeps a snapshot {holder.xid_age:,} "
                         "transaction ids old: VACUUM cannot remove rows that died since, nor freeze past it, in any "
                         "table of the cluster" + (f"; open for {_age(holder.seconds)}" if holder.seconds else "")
                         + "."),
                evidence=evidence, fix=fix,
            ))
        return findings

    def _dead_rows(self, facts: Facts, scope: Scope) -> list[Finding]:
        options, settings = scope.options, facts.settings
        findings = []
        for table in facts.tables:
            if not table.user_table or table.dead_rows < options.min_dead_rows:
                continue
            threshold = table.vacuum_threshold(settings)
            if table.dead_rows < threshold * options.dead_factor:
                continue
            never = table.last_autovacuum is None and table.last_vacuum is None
            holders = [h for h in facts.holders if h.xid_age]
            why = ("autovacuum has never processed it" if never else
                   f"autovacuum last ran {_when(table.last_autovacuum) or 'never'} ({table.autovacuum_count} times in all)")
            evidence = {
                "dead_rows": table.dead_rows, "live_rows": table.live_rows,
                "autovacuum_threshold": round(threshold), "threshold_formula":
                    "autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor × reltuples (per-table settings first)",
                "last_autovacuum": _when(table.last_autovacuum), "last_vacuum": _when(table.last_vacuum),
                "autovacuum_count": table.autovacuum_count, "autovacuum_disabled": table.autovacuum_disabled,
            }
            if holders:
                evidence["horizon_held_by"] = [_holder(h) for h in holders[:3]]
            findings.append(self.finding(
                scope, object=table.qualified, key="dead rows", severity=Severity.MEDIUM,
                title=f"{table.name}: {table.dead_rows:,} dead rows, {table.dead_rows / max(threshold, 1):.1f}× its autovacuum threshold",
                message=(f"{table.qualified} has {table.dead_rows:,} dead rows against an autovacuum threshold of "
                         f"{threshold:,.0f}; {why}. Autovacuum is behind"
                         + (", or blocked by what holds the xmin horizon (see the evidence)" if holders else "") + "."),
                evidence=evidence,
                fix=Fix(summary=f"VACUUM (ANALYZE) {table.name}",
                        steps=(sql(f"VACUUM (ANALYZE, VERBOSE) {table.qualified};", transactional=False),),
                        safety=FixSafety.SAFE,
                        lock=f"SHARE UPDATE EXCLUSIVE on {table.qualified}: reads and writes go on; I/O for the table"),
            ))
        return findings


def _holder(h: Holder) -> dict[str, object]:
    return {"kind": h.kind, "name": h.name, "detail": h.detail, "xid_age": h.xid_age,
            "open_for": _age(h.seconds) if h.seconds is not None else None, "query": h.query}


def _release(h: Holder) -> Fix | None:
    """How to let the horizon advance: unsafe in every case, the holder's work is lost."""
    if h.kind == "session":
        return Fix(summary=f"Terminate pid {h.name}", steps=(sql(f"SELECT pg_terminate_backend({int(h.name)});"),),
                   safety=FixSafety.UNSAFE, lock="no lock; the session's transaction is rolled back and its connection closed")
    if h.kind == "replication slot":
        return Fix(summary=f"Drop the replication slot {h.name}",
                   steps=(sql(f"SELECT pg_drop_replication_slot({quote_literal(h.name)});"),), safety=FixSafety.UNSAFE,
                   lock="no lock; its consumer can no longer resume and must be re-synchronised")
    if h.kind == "prepared transaction":
        return Fix(summary=f"Roll back the prepared transaction {h.name}",
                   steps=(sql(f"ROLLBACK PREPARED {quote_literal(h.name)};", transactional=False),),
                   safety=FixSafety.UNSAFE, lock="releases the locks it holds; its changes are lost",
                   notes="Run it in the prepared transaction's own database; ask its transaction manager first.")
    return Fix(summary=f"Reconsider hot_standby_feedback on {h.name}", steps=(), safety=FixSafety.MANUAL,
               notes="A long query on the standby holds this back; end it there, or set hot_standby_feedback = off "
                     "and accept query cancellations on the standby.")


def _when(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")

