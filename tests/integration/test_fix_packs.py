"""The fix engine on the built-in packs' own fixes, against real servers: PostgreSQL's
postgres.fk-missing-index (CREATE INDEX CONCURRENTLY, undone with DROP INDEX CONCURRENTLY) and
Redis's redis.ttl-coverage (the expire-missing-ttl batch operation, undone key for key)."""

from __future__ import annotations

import asyncio

from checks.config import config_from_dict
from checks.registry import load_registry
from checks.runner import Runner
from checks.fixes import Journal, apply_fix, plan_fix, undo_fix


def settings_for(tmp_path, **target):
    return config_from_dict({"targets": {"t": {"allow_fixes": True, **target}},
                             "journal": str(tmp_path / "journal.jsonl")})


def only_finding(settings, registry, check):
    report = asyncio.run(Runner(settings, registry, checks=[check]).run())
    assert not report.errors, report.errors
    [finding] = [f for f in report.findings if f.check == check]
    return finding


def test_postgres_fk_missing_index_fix_applies_and_undoes(pg_db, tmp_path):
    pg_db.execute("CREATE TABLE customers (id bigint PRIMARY KEY)")
    pg_db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers (id))")
    pg_db.execute("INSERT INTO customers SELECT g FROM generate_series(1, 100) g")
    pg_db.execute("INSERT INTO orders SELECT g, g % 100 + 1 FROM generate_series(1, 2000) g")
    settings = settings_for(tmp_path, kind="postgres", url=pg_db.url)
    registry = load_registry()
    finding = only_finding(settings, registry, "postgres.fk-missing-index")
    plan = asyncio.run(plan_fix(settings, registry, finding))
    assert plan.applicable and not plan.steps[0].transactional
    assert "CREATE INDEX CONCURRENTLY" in plan.steps[0].command
    outcome = asyncio.run(apply_fix(settings, registry, plan))
    assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
    valid = pg_db.fetch("SELECT i.indisvalid FROM pg_index i WHERE i.indrelid = 'orders'::regclass AND NOT i.indisprimary")
    assert [r["indisvalid"] for r in valid] == [True]
    undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert (undone.outcome, undone.verified) == ("fixed", True), undone.message
    assert pg_db.fetch("SELECT count(*) AS n FROM pg_index WHERE indrelid = 'orders'::regclass AND NOT indisprimary")[0]["n"] == 0


def test_redis_ttl_coverage_fix_expires_and_undo_persists_exactly_those_keys(redis_db, tmp_path):
    client = redis_db.client
    for i in range(300):
        client.set(f"session:{i:05d}", "x")
    for i in range(300, 320):
        client.set(f"session:{i:05d}", "x", ex=3000)
    settings = settings_for(tmp_path, kind="redis", url=redis_db.url,
                            expect={"ttl": [{"pattern": "session:*", "max": "1h"}]})
    registry = load_registry()
    finding = only_finding(settings, registry, "redis.ttl-coverage")
    plan = asyncio.run(plan_fix(settings, registry, finding, allow_unsafe=True))
    assert plan.applicable, plan.refusals
    outcome = asyncio.run(apply_fix(settings, registry, plan, allow_unsafe=True))
    assert (outcome.outcome, outcome.verified) == ("fixed", True), outcome.message
    ttls = {k.decode(): client.ttl(k) for k in client.scan_iter(count=1000)}
    assert all(0 < t <= 3600 for t in ttls.values())
    entry = Journal(tmp_path / "journal.jsonl").get(outcome.entry_id)
    assert entry.inverse[0]["command"]["keys_file"]
    undone = asyncio.run(undo_fix(settings, registry, outcome.entry_id, allow_unsafe=True))
    assert undone.outcome == "fixed", undone.message
    ttls = {k.decode(): client.ttl(k) for k in client.scan_iter(count=1000)}
    assert sum(t == -1 for t in ttls.values()) == 300
    assert all(0 < ttls[f"session:{i:05d}"] <= 3000 for i in range(300, 320))
