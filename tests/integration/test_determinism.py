"""The same answer twice: every check of the PostgreSQL and Redis packs, run twice over data that
did not change in between, gives the same findings (id, severity, title and figures). A
finding that comes and goes with a random sample is noise in snapshots, diffs and alerts."""

from __future__ import annotations

from typing import Any

from tests import support
from tests.integration.test_postgres_pack import problem_db

# Figures that move on their own between two runs of unchanged data: ages, durations and idle
# times (OBJECT IDLETIME counts seconds since a key was last touched).
MOVING = ("age", "seconds", "_s", "duration", "elapsed", "idle", "since", "at", "uptime", "_ms", "latency",
          "access_")


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in sorted(value.items()) if not any(m in k for m in MOVING)}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def answer(settings: Any) -> list[tuple[str, str, str, str, Any]]:
    report = support.run_report(settings)
    assert not [e for e in report.errors if e.kind != "partial"], report.errors
    return sorted(
        (f.check, f.id, str(f.severity), f.title, stable(f.evidence)) for f in report.findings
    )


def test_the_postgres_pack_gives_the_same_findings_twice(pg_db):
    problem_db(pg_db)
    pg_db.execute("ANALYZE")
    settings = support.settings_for(pg={"kind": "postgres", "url": pg_db.url,
                                        "checks": {"postgres.unused-index": {"min_history": "0s"}}})
    first, second = answer(settings), answer(settings)
    assert len(first) >= 10, first  # the schema has problems of many kinds: this compares something
    assert first == second


def test_the_redis_pack_gives_the_same_findings_twice(redis_db):
    pipe = redis_db.client.pipeline(transaction=False)
    for i in range(3000):  # more keys than one sample: what is sampled must be the same twice
        pipe.set(f"session:{i}", "x" * (i % 50))
        pipe.set(f"cache:user:{i}", "y", ex=3600 + i)
        pipe.hset(f"rate:vote:{i % 40}:2026-12-0{1 + i % 7}", str(i), 1)
    pipe.rpush("queue:jobs", *[f"job{i}" for i in range(20_000)])
    pipe.zadd("leaderboard:alltime", {f"u{i}": i for i in range(5000)})
    pipe.execute()
    settings = support.settings_for(cache={"kind": "redis", "url": redis_db.url})
    first, second = answer(settings), answer(settings)
    assert len({check for check, *_ in first}) >= 3, first
    assert first == second
