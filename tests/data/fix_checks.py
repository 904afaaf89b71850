"""Small checks with fixes, one per kind of step, for the fix engine's tests.

The real packs are tested on their own; these exercise the engine on every step shape
(CREATE/DROP INDEX CONCURRENTLY, a transactional ALTER, MongoDB commands, Redis commands and
the expire-missing-ttl batch operation) with a check that re-finds exactly what it fixes.
"""

from __future__ import annotations

from typing import Any

from checks.contract import Check, Scope
from checks.registry import Registry
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity


class PgMissingIndex(Check):
    """orders.customer_id has no valid index."""

    id = "test.pg-missing-index"
    engine = "postgres"
    title = "Foreign key column without an index"
    severity = Severity.MEDIUM
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS
    index = "orders_customer_id_idx"

    async def gather(self, session: Any, scope: Scope) -> bool:
        return bool(await session.fetchval(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = $1 AND i.indisvalid", self.index))

    def evaluate(self, facts: bool, scope: Scope) -> list[Finding]:
        if facts:
            return []
        fix = Fix(
            summary=f"create index {self.index}",
            steps=(FixStep("sql", f"CREATE INDEX CONCURRENTLY {self.index} ON public.orders (customer_id)",
                           transactional=False),),
            safety=FixSafety.SAFE,
            lock="SHARE UPDATE EXCLUSIVE on orders (reads and writes go on)",
            inverse=(FixStep("sql", f"DROP INDEX CONCURRENTLY IF EXISTS public.{self.index}", transactional=False),),
        )
        return [self.finding(scope, object="public.orders.customer_id", title="No index on orders.customer_id",
                             message="orders.customer_id has no index", fix=fix)]


class PgNarrowColumn(Check):
    """orders.note is varchar(10); the fix widens it to text (an ACCESS EXCLUSIVE ALTER)."""

    id = "test.pg-narrow-column"
    engine = "postgres"
    title = "Narrow varchar column"
    severity = Severity.LOW
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS

    async def gather(self, session: Any, scope: Scope) -> str | None:
        return await session.fetchval(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'")

    def evaluate(self, facts: str | None, scope: Scope) -> list[Finding]:
        if facts != "character varying":
            return []
        fix = Fix(
            summary="widen orders.note to text",
            steps=(FixStep("sql", "ALTER TABLE public.orders ALTER COLUMN note TYPE text"),
                   FixStep("sql", "COMMENT ON COLUMN public.orders.note IS 'widened by dbvitals'")),
            safety=FixSafety.UNSAFE,
            lock="ACCESS EXCLUSIVE on orders while the column is rewritten",
            inverse=(FixStep("sql", "ALTER TABLE public.orders ALTER COLUMN note TYPE varchar(10)"),
                     FixStep("sql", "COMMENT ON COLUMN public.orders.note IS NULL")),
        )
        return [self.finding(scope, object="public.orders.note", title="orders.note is varchar(10)",
                             message="narrow column", fix=fix)]


class PgManual(Check):
    id = "test.pg-manual"
    engine = "postgres"
    title = "Needs a human"
    severity = Severity.HIGH
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS

    async def gather(self, session: Any, scope: Scope) -> bool:
        return bool(await session.fetchval("SELECT to_regclass('public.orders') IS NOT NULL"))

    def evaluate(self, facts: bool, scope: Scope) -> list[Finding]:
        fix = Fix(summary="split the table", steps=(FixStep("sql", "DROP TABLE public.orders"),),
                  safety=FixSafety.MANUAL, lock="ACCESS EXCLUSIVE")
        return [self.finding(scope, object="public.orders", title="Manual", message="manual", fix=fix)] if facts else []


class MongoMissingIndex(Check):
    """orders has no index on {customerId: 1}; the fix creates it."""

    id = "test.mongo-missing-index"
    engine = "mongodb"
    title = "Missing index"
    severity = Severity.MEDIUM
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS

    async def gather(self, session: Any, scope: Scope) -> list[str]:
        db = session.client[session.default_database]
        return [ix["name"] async for ix in await db["orders"].list_indexes()]

    def evaluate(self, facts: list[str], scope: Scope) -> list[Finding]:
        if "customerId_1" in facts:
            return []
        database = scope.config.url.rsplit("/", 1)[1].split("?")[0]
        fix = Fix(
            summary="create index customerId_1 on orders",
            steps=(FixStep("mongodb", {"createIndexes": "orders",
                                       "indexes": [{"key": {"customerId": 1}, "name": "customerId_1"}]},
                           database=database),),
            safety=FixSafety.SAFE,
            lock="an index build: brief exclusive locks at its start and end",
            inverse=(FixStep("mongodb", {"dropIndexes": "orders", "index": "customerId_1"}, database=database),),
        )
        return [self.finding(scope, object="orders", title="No index on customerId", message="missing", fix=fix)]


class MongoTtlTooLong(Check):
    """sessions' TTL index expires after more than an hour; the fix collMods it to 3600 s."""

    id = "test.mongo-ttl"
    engine = "mongodb"
    title = "TTL too long"
    severity = Severity.LOW
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS

    async def gather(self, session: Any, scope: Scope) -> int | None:
        db = session.client[session.default_database]
        for ix in [ix async for ix in await db["sessions"].list_indexes()]:
            if ix["name"] == "createdAt_1":
                return ix.get("expireAfterSeconds")
        return None

    def evaluate(self, facts: int | None, scope: Scope) -> list[Finding]:
        if facts is None or facts <= 3600:
            return []
        database = scope.config.url.rsplit("/", 1)[1].split("?")[0]
        fix = Fix(
            summary="expire sessions after 3600 s",
            steps=(FixStep("mongodb", {"collMod": "sessions", "index": {"name": "createdAt_1", "expireAfterSeconds": 3600}},
                           database=database),),
            safety=FixSafety.UNSAFE,
            lock="the TTL monitor then deletes every session older than an hour",
            inverse=(FixStep("mongodb", {"collMod": "sessions", "index": {"name": "createdAt_1", "expireAfterSeconds": facts}},
                             database=database),),
        )
        return [self.finding(scope, object="sessions.createdAt_1", title="TTL too long", message="ttl", fix=fix)]


class RedisMissingTtl(Check):
    """session:<id> keys without a TTL; the fix is the expire-missing-ttl batch operation."""

    id = "test.redis-missing-ttl"
    engine = "redis"
    title = "Keys without a TTL"
    severity = Severity.MEDIUM
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS
    ttl_seconds = 86400

    async def gather(self, session: Any, scope: Scope) -> int:
        missing = 0
        async for key in session.client.scan_iter(match="session:*", count=1000):
            if key.count(b":") == 1 and await session.client.ttl(key) == -1:
                missing += 1
        return missing

    def evaluate(self, facts: int, scope: Scope) -> list[Finding]:
        if not facts:
            return []
        fix = Fix(
            summary=f"give session:* keys without a TTL a TTL of {self.ttl_seconds}s",
            steps=(FixStep("redis", {"op": "expire-missing-ttl", "db": _db(scope),
                                     "match": "session:*", "pattern": "session:<id>", "regex": r"session:[^:]+",
                                     "ttl_seconds": self.ttl_seconds, "batch": 50}),),
            safety=FixSafety.SAFE,
            lock="EXPIRE in batches of 50; keys start expiring after a day",
            inverse=(FixStep("redis", {"op": "persist-keys", "db": _db(scope)}),),
        )
        return [self.finding(scope, object="session:<id>", title=f"{facts} keys without a TTL", message="ttl",
                             evidence={"keys": facts}, fix=fix)]


class RedisTimeoutSetting(Check):
    """`timeout 0` keeps idle clients forever; the fix sets it to 300 (CONFIG SET, private servers only)."""

    id = "test.redis-timeout"
    engine = "redis"
    title = "Idle clients never closed"
    severity = Severity.LOW
    rationale = "Test check."
    fix_availability = FixAvailability.ALWAYS

    async def gather(self, session: Any, scope: Scope) -> str:
        value = (await session.client.config_get("timeout")).get("timeout")
        return value.decode() if isinstance(value, bytes) else str(value)

    def evaluate(self, facts: str, scope: Scope) -> list[Finding]:
        if facts != "0":
            return []
        fix = Fix(summary="close clients idle for 300 s", steps=(FixStep("redis", ["CONFIG", "SET", "timeout", "300"]),),
                  safety=FixSafety.UNSAFE, lock="idle clients are disconnected after 300 s",
                  inverse=(FixStep("redis", ["CONFIG", "SET", "timeout", facts]),))
        return [self.finding(scope, object="config timeout", title="timeout is 0", message="timeout", fix=fix)]


def _db(scope: Scope) -> int:
    return int(scope.config.url.rsplit("/", 1)[1] or 0)


ALL = [PgMissingIndex, PgNarrowColumn, PgManual, MongoMissingIndex, MongoTtlTooLong, RedisMissingTtl, RedisTimeoutSetting]


def registry(*checks: type[Check]) -> Registry:
    """A registry of the given test checks (all of them by default) plus the built-in ones."""
    from checks.registry import load_registry

    reg = load_registry()
    for check in checks or ALL:
        reg.add(check, "tests.data.fix_checks")
    return reg
