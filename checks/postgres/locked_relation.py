"""postgres.locked-relation: a table (or index) someone holds, or waits for, an ACCESS EXCLUSIVE
lock on. Every query on it waits meanwhile, dbvitals included: the catalog snapshot leaves the
table out rather than queue behind the lock, so the schema checks could not judge it this run."""

from __future__ import annotations

from dataclasses import dataclass

from checks.contract import Check, Scope
from checks.model import Finding, FixAvailability, Severity
from checks.postgres._catalog import Catalog, CatalogSnapshot, RelationLock
from checks.postgres.long_transactions import INSUFFICIENT, _age
from checks.units import listed


@dataclass(frozen=True)
class Facts:
    catalog: Catalog


class LockedRelation(Check):
    id = "postgres.locked-relation"
    needs = (CatalogSnapshot,)
    engine = "postgres"
    title = "Table locked ACCESS EXCLUSIVE"
    severity = Severity.HIGH
    fix_availability = FixAvailability.NEVER
    rationale = (
        "An ACCESS EXCLUSIVE lock (ALTER TABLE, LOCK TABLE, DROP, VACUUM FULL, REINDEX) makes every query on the "
        "table wait, reads included, for as long as the holder's transaction lasts; a session merely waiting for "
        "it already makes every later query queue behind it. dbvitals skips such a table instead of waiting, so "
        "its schema checks say nothing about it until the lock is gone."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(await self.fact(CatalogSnapshot, session, scope))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = []
        # One finding per relation: its holder if held, else its first waiter.
        seen: set[int] = set()
        for lock in facts.catalog.locked:
            if lock.oid in seen:
                continue
            seen.add(lock.oid)
            findings.append(self.finding(
                scope, object=lock.relation,
                title=f"{lock.relation} {'locked' if lock.granted else 'waited for'} ACCESS EXCLUSIVE",
                message=_message(lock),
                evidence={
                    "relation": lock.relation,
                    "relation_kind": "index" if lock.kind in ("i", "I") else "table",
                    "lock_mode": "AccessExclusiveLock",
                    "granted": lock.granted,
                    "pid": lock.pid,
                    "application_name": lock.application,
                    "user": lock.user,
                    "state": lock.state,
                    "query": None if lock.query == INSUFFICIENT else lock.query,
                    "age_s": None if lock.age_s is None else round(lock.age_s, 1),
                    "blocked_by": list(lock.blocked_by),
                    "skipped_by_schema_checks": True,
                },
            ))
        return findings


def _message(lock: RelationLock) -> str:
    if lock.pid is None:
        who = "a prepared transaction (see pg_prepared_xacts)"
    else:
        who = f"pid {lock.pid} ({lock.user or '?'}, {lock.application or 'no application_name'}, {lock.state or 'unknown state'}"
        who += f", transaction open {_age(lock.age_s)})" if lock.age_s is not None else ")"
    if lock.granted:
        text = f"{lock.relation} is locked ACCESS EXCLUSIVE by {who}: every query on it waits."
    else:
        blockers = listed("pid", [str(p) for p in lock.blocked_by]) if lock.blocked_by else "unknown sessions"
        text = (f"{who} waits for an ACCESS EXCLUSIVE lock on {lock.relation} behind {blockers}: "
                "every later query on it queues behind that request.")
    if lock.query == INSUFFICIENT:
        text += " Its query is hidden: this role needs pg_read_all_stats (part of pg_monitor) to see it."
    elif lock.query:
        text += f" Its query: {' '.join(lock.query.split())}"
    return text + " The schema checks skipped this table this run rather than wait for the lock."
