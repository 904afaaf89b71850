"""Deterministic data and small waits for the console's Pilot and snapshot tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from checks.config import Settings
from checks.contract import Check, Scope
from checks.registry import Registry
from checks.model import (
    Finding,
    Fix,
    FixAvailability,
    FixSafety,
    FixStep,
    Severity,
    TargetState,
    TargetStatus,
    finding_id,
)
from console.app import DbVitalsApp
from tests.support import settings_for

SEVERITIES = list(Severity)


def synthetic_settings() -> Settings:
    # Nothing is ever connected to: the apps built on these do not run checks.
    return settings_for(
        orders={"kind": "postgres", "url": "postgresql://app@orders.internal:5432/orders", "environment": "production",
                "allow_fixes": True},
        sessions={"kind": "redis", "url": "redis://cache.internal:6379/0", "environment": "staging"},
        events={"kind": "mongodb", "url": "mongodb://events.internal:27017/events"},
    )


def synthetic_statuses() -> list[TargetStatus]:
    return [
        TargetStatus("orders", "postgres", TargetState.CONNECTED, None, "16.4", environment="production",
                     url="postgresql://app@orders.internal:5432/orders", role="primary"),
        TargetStatus("sessions", "redis", TargetState.CONNECTED, None, "7.2.5", environment="staging",
                     url="redis://cache.internal:6379/0"),
        TargetStatus("events", "mongodb", TargetState.REFUSED, None, None,
                     error="[Errno 111] Connection refused", url="mongodb://events.internal:27017/events"),
    ]


def index_fix(table: str, column: str) -> Fix:
    name = f"{table}_{column}_idx"
    return Fix(
        summary=f"Index {table}.{column}",
        steps=(FixStep("sql", f"CREATE INDEX CONCURRENTLY {name} ON public.{table} ({column})",
                       description="build without blocking writes", transactional=False),),
        safety=FixSafety.SAFE,
        lock="SHARE UPDATE EXCLUSIVE (reads and writes continue)",
        inverse=(FixStep("sql", f"DROP INDEX CONCURRENTLY public.{name}", transactional=False),),
    )


def synthetic_findings(count: int = 12) -> list[Finding]:
    """`count` findings spread over the three targets, every severity, and a few checks."""
    findings = []
    for i in range(count):
        target = ("orders", "sessions", "events")[i % 3]
        check = {"orders": "postgres.fk-missing-index", "sessions": "redis.ttl-coverage",
                 "events": "mongodb.connection"}[target]
        severity = SEVERITIES[i % 5]
        obj = f"public.table_{i:05d}" if target == "orders" else f"pattern:{i:05d}:*"
        fix = index_fix(f"table_{i:05d}", "customer_id") if target == "orders" else None
        if target == "sessions":
            fix = Fix(summary="Expire the keys", steps=(FixStep("redis", ["EXPIRE", f"session:{i}", "86400"]),),
                      safety=FixSafety.UNSAFE, lock="none; keys expire after 86400 s")
        findings.append(Finding(
            id=finding_id(check, target, obj), check=check, severity=severity, target=target, object=obj,
            title=f"Finding number {i:05d} on {target}",
            message=f"Synthetic finding {i} for the console tests.",
            evidence={"rows": 10_000 + i, "scans": {"seq": 120, "index": 0}, "columns": ["customer_id"]},
            fix=fix,
        ))
    return findings


class SyntheticCheck(Check):
    id = "postgres.fk-missing-index"
    engine = "postgres"
    title = "Foreign keys without an index"
    severity = Severity.HIGH
    rationale = "Deleting a parent row scans the whole child table when the referencing column has no index."


def synthetic_registry() -> Registry:
    registry = Registry()
    registry.add(SyntheticCheck, "tests")
    return registry


# A fixed wall clock: every age on screen reads 0s, whatever the machine's speed.
FROZEN_CLOCK = 1_790_000_000.0


def synthetic_app(count: int = 12, **kwargs: Any) -> DbVitalsApp:
    kwargs.setdefault("clock", lambda: FROZEN_CLOCK)
    app = DbVitalsApp(synthetic_settings(), registry=synthetic_registry(), run_on_start=False, probe_interval=None,
                      **kwargs)
    app.call_after_refresh(app.ingest, synthetic_statuses(), synthetic_findings(count))
    return app


async def wait_until(pilot: Any, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(0.05)


async def settle(pilot: Any) -> None:
    """Past the findings table's debounce."""
    await pilot.pause(0.15)
    await pilot.pause()


class MissingIndexCheck(Check):
    """A test check with a real, safe fix: `public.orders.customer_id` needs an index."""

    id = "postgres.test-missing-index"
    engine = "postgres"
    title = "orders.customer_id has no index"
    severity = Severity.HIGH
    rationale = "Lookups of a customer's orders scan the whole table."
    fix_availability: ClassVar[FixAvailability] = FixAvailability.ALWAYS

    async def gather(self, session: Any, scope: Scope) -> bool:
        return bool(await session.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders' "
            "AND indexdef LIKE '%(customer_id)%'"
        ))

    def evaluate(self, indexed: bool, scope: Scope) -> list[Finding]:
        if indexed:
            return []
        return [self.finding(scope, object="public.orders.customer_id", title="orders.customer_id has no index",
                             message="Every lookup by customer scans public.orders.",
                             evidence={"table": "public.orders", "column": "customer_id"},
                             fix=index_fix("orders", "customer_id"))]


def fix_registry() -> Registry:
    from checks.postgres.connection import PostgresConnection

    registry = Registry()
    registry.add(PostgresConnection, "builtin")
    registry.add(MissingIndexCheck, "tests")
    return registry
