"""The project's seed-shaped fixtures with the problems each one holds, written down: what a
careful auditor expects dbvitals to find (check and object, and the advice: the fix's safety,
or no fix at all), and what the fixture declares healthy. `judge` compares a run's findings with
that list; bench/judgement.py prints the figures and tests/integration/test_judgement_figures.py
keeps them from regressing (issue #25, "Done when").

The fixtures are the ones the integration tests already assert on (tests/integration/
test_postgres_pack.py, test_postgres_fk_type_mismatch.py, test_redis_social_app.py,
tests/data/mongodb_audit.py), plus the issue's named cases no fixture had: a 7-day webhook
deliveries TTL that is right, an invite clean-up TTL whose partial filter matches nothing,
generation jobs whose failed runs never get `completedAt`, `gem_transactions.referenceId`
holding ObjectIds as strings, a TTL that lets a unique poll vote repeat, game rounds with
bet/payout, `user:streak:*` keys, integer members of a composite key, a partitioned table
without a key and its default partition, a reference only a declaration reveals, and (on a
private cluster, in the bench) an inactive replication slot.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from checks.model import Finding, FixSafety
from tests.data import mongodb_audit
from tests.integration import (test_mongodb_determinism, test_postgres_fk_type_mismatch, test_postgres_pack,
                               test_redis_social_app)

NO_FIX = "no fix"
ANY = "any"
NOT_SAFE = "manual or unsafe"  # a fix a person applies on purpose, never by default


@dataclass(frozen=True)
class Expected:
    """A problem the fixture holds: `check` finds it on `object`, with a fix of `advice`
    (a FixSafety, NO_FIX for a finding whose fix has no step, NOT_SAFE, or ANY). A
    finding there whose title holds one of `contradicted_by` gives the advice the audits called
    wrong (a ledger's TTL to drop, where the defect is a missing date)."""

    check: str
    object: str
    advice: FixSafety | str = ANY
    why: str = ""
    contradicted_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Healthy:
    """Objects (shell patterns) the fixture declares healthy for the checks matching `checks`."""

    objects: tuple[str, ...]
    checks: str = "*"
    why: str = ""


@dataclass
class Figures:
    expected: int = 0
    found: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    wrong_advice: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    not_judged: list[str] = field(default_factory=list)
    judges_advice: bool = True  # False: no advice nor healthy object was declared to judge by

    def add(self, other: Figures) -> None:
        self.expected += other.expected
        for name in ("found", "missed", "wrong_advice", "false_positives", "not_judged"):
            getattr(self, name).extend(getattr(other, name))


def advice_of(finding: Finding) -> FixSafety | str:
    if finding.fix is None or not finding.fix.steps:
        return NO_FIX
    return finding.fix.safety


def _advice_matches(expected: FixSafety | str, actual: FixSafety | str) -> bool:
    if expected == ANY:
        return True
    if expected == NOT_SAFE:
        return actual in (FixSafety.MANUAL, FixSafety.UNSAFE)
    if expected == NO_FIX:
        # A manual fix with no step is advice to look, not to act: what "no fix" means.
        return actual == NO_FIX
    return actual == expected


def _label(finding: Finding) -> str:
    advice = advice_of(finding)
    return f"{finding.check} {finding.object} [{finding.severity.value}, {getattr(advice, 'value', advice)}]: {finding.title}"


def judge(findings: Sequence[Finding], expected: Sequence[Expected], healthy: Sequence[Healthy],
          object_of=lambda finding: finding.object) -> Figures:
    """Each expected problem found (with the advice expected) or missed; a finding on an expected
    object with other advice is wrong advice; one on a healthy object a false positive; the rest
    (server-wide settings, objects the fixture says nothing about) is listed, not judged."""
    figures = Figures(expected=len(expected))
    by_key: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        by_key.setdefault((finding.check, object_of(finding)), []).append(finding)
    for problem in expected:
        name = f"{problem.check} {problem.object}"
        matches = by_key.pop((problem.check, problem.object), [])
        # Any check's finding on the object counts: "drop the TTL" may come from another one.
        for finding in findings:
            if object_of(finding) == problem.object and any(part in finding.title for part in problem.contradicted_by):
                figures.wrong_advice.append(f"{_label(finding)} — expected: {problem.why}")
        if not matches:
            figures.missed.append(name + (f" ({problem.why})" if problem.why else ""))
            continue
        figures.found.append(name)
        for finding in matches:
            if not _advice_matches(problem.advice, advice_of(finding)):
                wanted = getattr(problem.advice, "value", problem.advice)
                figures.wrong_advice.append(f"{_label(finding)} — expected {wanted}")
    for (check, obj), matches in by_key.items():
        for finding in matches:
            if any(fnmatch.fnmatchcase(check, rule.checks) and any(fnmatch.fnmatchcase(obj, pattern) for pattern in rule.objects)
                   for rule in healthy):
                figures.false_positives.append(_label(finding))
            else:
                figures.not_judged.append(_label(finding))
    return figures


def judge_seeded(findings: Sequence[Finding], problems: Sequence[tuple[str, str]]) -> Figures:
    """The demo's SEEDED_PROBLEMS (check, a fragment of the object): found or missed. The demo
    declares no advice and no healthy object, so nothing else is judged."""
    figures = Figures(expected=len(problems), judges_advice=False)
    for check, fragment in problems:
        hit = any(f.check == check and fragment in f.object for f in findings)
        (figures.found if hit else figures.missed).append(f"{check} {fragment}")
    return figures


# --- PostgreSQL -----------------------------------------------------------------------------------

POSTGRES_SCHEMA = test_postgres_pack.PROBLEMS + test_postgres_pack.HEALTHY + test_postgres_fk_type_mismatch.SCHEMA + """
-- Issue #25 item 10: integer members of a composite key hold other tables' keys; no integer-key lint.
CREATE TABLE badge_titles (badge_id integer NOT NULL, title_id integer NOT NULL, PRIMARY KEY (badge_id, title_id));
-- A reference no name gives away: only the audit's declaration ties it to transactions.id (uuid).
CREATE TABLE payouts (id bigint PRIMARY KEY, beneficiary integer, amount numeric(12,2));
INSERT INTO payouts SELECT g, g, 10 FROM generate_series(1, 40) g;
-- Issue #25 item 12 (pg-index-health): a partitioned table without a primary key, and its default partition.
CREATE TABLE readings (at date NOT NULL, sensor integer, value numeric) PARTITION BY RANGE (at);
CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
"""
# Run after the schema: it fails on purpose and leaves an INVALID index, as in production.
POSTGRES_INVALID_INDEX = "CREATE UNIQUE INDEX CONCURRENTLY dup_values_v_key ON dup_values (v)"
# The audits' declarations: forum_structure.min_group_id_required points at roles.id, and
# payouts.beneficiary at transactions.id.
POSTGRES_RULES = {"references": [*test_postgres_pack.EXPECT["references"],
                                 {"column": "payouts.beneficiary", "references": "transactions.id"}]}
# An option of the check, not a declared rule: on a fresh database any history is what there is.
POSTGRES_OPTIONS = {"postgres.unused-index": {"min_history": "0s"}}

POSTGRES_EXPECTED = (
    Expected("postgres.fk-type-mismatch", "public.rain_events.transaction_id", FixSafety.MANUAL,
             "integer tied by name to a uuid key: a migration, by hand"),
    Expected("postgres.fk-type-mismatch", "public.order_items.product_id", FixSafety.UNSAFE),
    Expected("postgres.fk-type-mismatch", "public.forum_structure.min_group_id_required", ANY,
             "tied by name to groups.id, by the audit's declaration to roles.id"),
    Expected("postgres.fk-type-mismatch", "public.payouts.beneficiary", ANY, "known only by declaration"),
    Expected("postgres.fk-type-mismatch", "public.challenges.min_group_id_required"),
    Expected("postgres.fk-type-mismatch", "public.challenges.last_post_id"),
    Expected("postgres.fk-type-mismatch", "public.challenges.structure_id"),
    Expected("postgres.fk-missing-index", 'public."Order Lines"("productId")', FixSafety.SAFE),
    Expected("postgres.fk-missing-index", "public.order_items(product_id)", FixSafety.SAFE),
    Expected("postgres.duplicate-index", "public.order_items_qty_copy", FixSafety.SAFE),
    Expected("postgres.redundant-index", "public.order_items_note_idx", FixSafety.SAFE),
    Expected("postgres.invalid-index", "public.dup_values_v_key", FixSafety.MANUAL,
             "unique with duplicates: the cleanup comes first, by hand"),
    Expected("postgres.no-primary-key", "public.audit_log", FixSafety.MANUAL),
    Expected("postgres.no-primary-key", "public.readings", FixSafety.MANUAL, "partitioned, without a primary key"),
    Expected("postgres.no-primary-key", "public.readings_default", NO_FIX,
             "its default partition: the key is added on the parent"),
    Expected("postgres.sequence-exhaustion", "public.counters_id_seq"),
    Expected("postgres.unused-index", "public.order_items_qty_copy", FixSafety.SAFE),
    Expected("postgres.unused-index", "public.rain_events_transaction_id_idx", FixSafety.SAFE),
    Expected("postgres.lint-integer-key", "public.counters.id"),
    Expected("postgres.lint-serial", "public.counters.id"),
)
# On a server of its own (a slot is server-wide: never on the shared one), issue #25 item 12.
POSTGRES_SERVER_SETUP = "SELECT pg_create_physical_replication_slot('old_replica', true)"
POSTGRES_SERVER_EXPECTED = (
    Expected("postgres.replication", "slot old_replica", ANY, "an inactive slot, however little it retains yet"),
)
POSTGRES_HEALTHY_OBJECTS = (
    Healthy(('"Billing Äpp".*', "public.customers*", "public.events*"), "postgres.[!l]*",
            "the healthy schema of test_postgres_pack (quoted names, partitions); style lints aside"),
    Healthy(("public.challenges.external_user_id", "public.challenges.attempts_id_hint"), "*",
            "another system's id, and a name that only looks like a reference"),
    Healthy(("public.badge_titles*",), "*", "a composite key of other tables' keys"),
)


# --- Redis ----------------------------------------------------------------------------------------

def seed_redis(client: Any) -> None:
    test_redis_social_app.seed_social_app(client)
    pipe = client.pipeline(transaction=False)
    for user in range(60):  # issue #25 item 9: a streak lapses after a missed day; no TTL was set
        pipe.incrby(f"user:streak:{user}", user % 9 + 1)
    pipe.execute()


REDIS_TARGET = {"role": "cache"}
REDIS_RULES = {
    "persistent": [{"pattern": "leaderboard:alltime"}],
    # Issue #25 item 8: a declared TTL on counters contradicts the evidence and must stay manual.
    "ttl": [{"pattern": "session:*", "max": "7d"}, {"pattern": "post:votes:*", "max": "1d"},
            {"pattern": "leaderboard:daily", "max": "1d"}],
}
REDIS_EXPECTED = (
    Expected("redis.ttl-coverage", "session:{uuid}", FixSafety.UNSAFE, "12 of 300 sessions written without EX"),
    Expected("redis.ttl-coverage", "rate:vote:{id}:{date}", FixSafety.UNSAFE),
    Expected("redis.ttl-coverage", "feed:{id}", FixSafety.UNSAFE),
    Expected("redis.ttl-coverage", "fraud:ips:{date}", FixSafety.MANUAL, "maybe kept for investigations: by hand"),
    Expected("redis.ttl-coverage", "user:streak:{id}"),
    Expected("redis.ttl-coverage", "post:votes:{id}", NO_FIX, "counters synced to the database: never EXPIRE"),
    Expected("redis.ttl-coverage", "leaderboard:daily", NO_FIX, "a board reset per period: no EXPIRE"),
    Expected("redis.ttl-coverage", "leaderboard:weekly", NO_FIX),
    Expected("redis.big-keys", "leaderboard:alltime", ANY, "kept whole: never trimmed"),
    Expected("redis.big-keys", "leaderboard:weekly"),
    Expected("redis.big-keys", "leaderboard:daily"),
    Expected("redis.memory-policy", "maxmemory", ANY, "a cache without maxmemory"),
)
REDIS_HEALTHY_OBJECTS = (
    Healthy(("user:{id}:profile", "flags:all", "leaderboard:alltime"), "redis.ttl-coverage",
            "entities and a board kept for all time"),
    Healthy(("user:{id}:profile", "flags:all", "session:{uuid}", "feed:{id}", "post:votes:{id}", "rate:vote:*",
             "fraud:*", "user:streak:*"), "redis.big-keys", "small keys"),
)


# --- MongoDB --------------------------------------------------------------------------------------

def seed_mongodb_social(db: Any) -> None:
    """The second MongoDB fixture: the determinism test's social app (a device-heavy tail among
    3,000 users, amounts of mixed types, posts referenced by votes)."""
    test_mongodb_determinism.seed_social_app(db)


def seed_mongodb(db: Any, now: dt.datetime) -> None:
    """The audits' collections (tests/data/mongodb_audit.py) and the issue's named cases."""
    mongodb_audit.seed(db, now)
    # A 7-day TTL on webhook deliveries: the auditors called it right.
    db.webhook_deliveries.insert_many(
        {"endpoint": f"https://hooks.example.test/{i % 5}", "status": ("delivered", "failed")[i % 7 == 0],
         "attempts": 1 + i % 3, "createdAt": now - dt.timedelta(hours=i)} for i in range(160))
    db.webhook_deliveries.create_index([("createdAt", 1)], expireAfterSeconds=7 * 86400)
    # An invite clean-up TTL whose partial filter names a status no document has.
    db.team_invites.insert_many(
        {"email": f"t{i}@example.test", "status": ("pending", "accepted", "lapsed")[i % 3],
         "createdAt": now - dt.timedelta(days=i % 60, hours=12)} for i in range(150))
    db.team_invites.create_index([("createdAt", 1)], expireAfterSeconds=14 * 86400,
                                 partialFilterExpression={"status": "expired"})
    # Generation jobs: failed runs never get completedAt, so the TTL never deletes them.
    db.generation_jobs.insert_many(
        {"status": "failed" if i % 4 == 0 else "done", "computeCostUsd": 0.02 * (1 + i % 5),
         "createdAt": now - dt.timedelta(days=i % 40, hours=12),
         **({} if i % 4 == 0 else {"completedAt": now - dt.timedelta(days=i % 40)})} for i in range(300))
    db.generation_jobs.create_index([("completedAt", 1)], expireAfterSeconds=7 * 86400)
    # Poll votes: one per user and poll (a unique key), expired after 30 days: the vote may repeat.
    db.poll_votes.insert_many({"userId": ObjectId(), "pollId": i % 12, "choice": i % 3,
                               "createdAt": now - dt.timedelta(days=i % 20, hours=12)} for i in range(240))
    db.poll_votes.create_index([("userId", 1), ("pollId", 1)], unique=True)
    db.poll_votes.create_index([("createdAt", 1)], expireAfterSeconds=30 * 86400)
    # Casino rounds carry money (bet, payout), yet a finished round is settled in the wallet's
    # ledger: the auditors advised a TTL on finished rounds; dbvitals never did.
    db.casino_rounds.insert_many(
        {"userId": ObjectId(), "game": "dice", "bet": 5 + i % 20, "payout": (5 + i % 20) * (i % 3),
         "status": "running" if i < 20 else "finished", "createdAt": now - dt.timedelta(days=i / 8, hours=12),
         **({} if i < 20 else {"finishedAt": now - dt.timedelta(days=i / 8, hours=11)})} for i in range(3200))
    # Purchases referenced from gem_transactions by ObjectIds written as strings.
    purchases = [ObjectId() for _ in range(150)]
    db.gem_purchases.insert_many({"_id": pid, "gems": 100} for pid in purchases)
    db.gem_transactions.update_many({}, [{"$set": {"referenceType": "purchase"}}])
    for n, doc in enumerate(db.gem_transactions.find({}, {"_id": 1})):
        db.gem_transactions.update_one({"_id": doc["_id"]}, {"$set": {"referenceId": str(purchases[n % 150])}})


MONGODB_RULES = {"ttl": [{"collection": "team_invites", "field": "createdAt", "after": "14d"},
                         {"collection": "casino_rounds", "field": "finishedAt", "after": "365d"}]}
MONGODB_EXPECTED = (
    *(Expected("mongodb.ttl-coverage", name, FixSafety.MANUAL, "documents may go: a partial TTL, by hand")
      for name in mongodb_audit.NEEDS_TTL),
    Expected("mongodb.ttl-coverage", "casino_rounds", NOT_SAFE,
             "finished rounds, settled in the ledger: a TTL by choice (unsafe once declared)"),
    Expected("mongodb.ttl-misconfigured", "team_invites", ANY, "the partial filter selects no document"),
    Expected("mongodb.ttl-misconfigured", "generation_jobs", ANY, "failed jobs never get completedAt",
             contradicted_by=(", judged ",)),
    Expected("mongodb.ttl-misconfigured", "poll_votes", ANY, "the TTL lets a user vote twice"),
    Expected("mongodb.reference-type-mismatch", "gem_transactions.referenceId", ANY, "ObjectIds stored as strings"),
)
MONGODB_SOCIAL_EXPECTED = (
    Expected("mongodb.unbounded-array", "users.devices", ANY, "20 device-heavy users among 3,000"),
    Expected("mongodb.field-type-drift", "transactions.amount", ANY, "one amount in 25 a string"),
    Expected("mongodb.field-type-drift", "payments.amount", ANY, "4 string amounts among 3,000, clustered"),
)
MONGODB_SOCIAL_HEALTHY_OBJECTS = (
    Healthy(("users", "posts", "votes", "transactions", "payments"), "mongodb.ttl-*",
            "entities and ledgers; posts are referenced by votes"),
)
MONGODB_HEALTHY_OBJECTS = (
    Healthy(tuple(mongodb_audit.PERMANENT) + ("webhook_deliveries", "gem_purchases"), "mongodb.ttl-*",
            "entities, ledgers, and a TTL the auditors called right"),
)


def mongodb_object(finding: Finding) -> str:
    """A MongoDB finding's object without its database name (each run has a database of its own)."""
    return finding.object.split(".", 1)[1] if "." in finding.object else finding.object
