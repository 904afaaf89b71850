"""`dbvitals migration` rules beyond the lock per statement (squawk's rule of the same idea in
brackets), each fired and not fired on a real server: timeouts set before, re-run robustness,
renames and drops tracked within the migration, breaking changes as pg_stat_statements shows
them, and the declared-type rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import pytest

from tests import support
from tests.integration.test_migration import _sql, by_line, migrate, rules, run_async

SCHEMA_SQL = """
CREATE TABLE orders (id int PRIMARY KEY, qty int, note text, other text);
INSERT INTO orders SELECT g, g, 'n', 'o' FROM generate_series(1, 500) g;
CREATE INDEX orders_qty ON orders (qty);
CREATE TABLE gone (id int PRIMARY KEY);
ANALYZE;
"""

# (migration, {line: (rules that must fire, rules that must not)})
CASES = [
    # require-statement-timeout / require-lock-timeout: set before, tracked.
    ("CREATE INDEX orders_note ON orders (note);\n"
     "SET statement_timeout = '10min';\n"
     "SET lock_timeout = '2s';\n"
     "CREATE INDEX orders_other ON orders (other);\n",
     {1: ({"migration.missing-statement-timeout", "migration.missing-lock-timeout"}, set()),
      4: (set(), {"migration.missing-statement-timeout", "migration.missing-lock-timeout"})}),
    # prefer-robust-stmts: outside a transaction block only, and only where IF is possible.
    ("CREATE TABLE t1 (id bigint PRIMARY KEY);\n"
     "CREATE TABLE IF NOT EXISTS t2 (id bigint PRIMARY KEY);\n"
     "ALTER TABLE orders ADD COLUMN a int;\n"
     "ALTER TABLE orders ADD COLUMN IF NOT EXISTS b int;\n"
     "DROP INDEX IF EXISTS orders_qty;\n"
     "BEGIN;\n"
     "CREATE TABLE t3 (id bigint PRIMARY KEY);\n"
     "DROP TABLE gone;\n"
     "COMMIT;\n",
     {1: ({"migration.not-robust"}, set()), 2: (set(), {"migration.not-robust"}),
      3: ({"migration.not-robust"}, set()), 4: (set(), {"migration.not-robust"}),
      5: ({"migration.drop-index-blocking"}, {"migration.not-robust"}), 7: (set(), {"migration.not-robust"}),
      8: ({"migration.drop-table"}, {"migration.not-robust"})}),
    # transaction-nesting, ban-drop-database, ban-concurrent-index-creation-in-transaction.
    ("BEGIN;\nBEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS c ON orders (qty);\nCOMMIT;\n"
     "DROP DATABASE IF EXISTS elsewhere;\n",
     {1: (set(), {"migration.transaction-nesting"}), 2: ({"migration.transaction-nesting"}, set()),
      3: ({"migration.concurrently-in-transaction"}, set()), 5: ({"migration.drop-database"}, set())}),
    # adding-serial-primary-key-field, changing-column-type, require-concurrent-index-deletion,
    # disallowed-unique-constraint.
    ("ALTER TABLE orders ADD COLUMN seq bigserial PRIMARY KEY;\n"
     "ALTER TABLE orders ALTER COLUMN note TYPE varchar(10);\n"
     "ALTER TABLE orders ALTER COLUMN other TYPE text;\n"
     "DROP INDEX orders_qty;\n"
     "ALTER TABLE orders ADD CONSTRAINT u UNIQUE (note);\n",
     {1: ({"migration.serial-primary-key", "migration.volatile-default-rewrite"}, set()),
      2: ({"migration.column-type-rewrite"}, {"migration.column-type-change"}),
      3: ({"migration.column-type-change"}, {"migration.column-type-rewrite"}),
      4: ({"migration.drop-index-blocking"}, set()), 5: ({"migration.constraint-builds-index"}, set())}),
    # ban-char-field, prefer-text-field, prefer-timestamptz, prefer-bigint-over-int, prefer-identity.
    ("CREATE TABLE IF NOT EXISTS typed (id serial PRIMARY KEY, code char(3), name varchar(40), at timestamp, "
     "owner_id int, qty int, body text, seen timestamptz, big_id bigint);\n"
     "ALTER TABLE orders ADD COLUMN IF NOT EXISTS parent_id integer;\n",
     {1: ({"migration.char-column", "migration.varchar-column", "migration.timestamp-without-time-zone",
           "migration.prefer-bigint", "migration.prefer-identity"}, set()),
      2: ({"migration.prefer-bigint"}, {"migration.prefer-identity", "migration.varchar-column"})}),
]


@pytest.mark.parametrize("sql, expected", CASES, ids=["timeouts", "robust", "transactions", "locks", "types"])
def test_each_rule_fires_and_does_not(pg_db, tmp_path, sql, expected):
    run_async(_sql(pg_db.url, SCHEMA_SQL))
    result, _ = migrate(tmp_path, pg_db.url, sql, "--format", "json", "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    s = by_line(json.loads(result.stdout))
    for line, (fired, quiet) in expected.items():
        assert fired <= rules(s[line]), (line, s[line]["findings"])
        assert not quiet & rules(s[line]), (line, s[line]["findings"])


def test_type_rules_name_the_column(pg_db, tmp_path):
    result, _ = migrate(tmp_path, pg_db.url, "CREATE TABLE IF NOT EXISTS typed (code char(3), qty int);\n",
                        "--format", "json", "--fail-on", "never")
    findings = json.loads(result.stdout)["statements"][0]["findings"]
    char = next(f for f in findings if f["rule"] == "migration.char-column")
    assert "typed.code" in char["message"] and char["severity"] == "low"
    assert "migration.prefer-bigint" not in {f["rule"] for f in findings}  # qty is no key or reference


def test_renames_and_drops_are_tracked_within_the_migration(pg_db, tmp_path):
    run_async(_sql(pg_db.url, SCHEMA_SQL))
    result, _ = migrate(tmp_path, pg_db.url, (
        "SET lock_timeout = '2s';\n"
        "ALTER TABLE orders RENAME TO purchases;\n"
        "ALTER TABLE purchases RENAME COLUMN qty TO quantity;\n"
        "ALTER TABLE purchases ALTER COLUMN quantity TYPE bigint;\n"
        "ALTER TABLE purchases ALTER COLUMN note SET NOT NULL;\n"
        "DROP TABLE gone;\n"
        "ALTER TABLE gone ADD COLUMN x int;\n"
        "CREATE TABLE gone (id bigint);\n"
        "CREATE INDEX ON gone (id);\n"
        "CREATE INDEX purchases_note ON purchases (note);\n"
        "DROP INDEX purchases_note;\n"
    ), "--format", "json", "--fail-on", "never")
    s = by_line(json.loads(result.stdout))
    # purchases is orders on the target: its live size and rows, and qty's type (integer → bigint rewrites).
    assert s[4]["rewrites"] and "orders" in s[4]["tables"] and "~500 rows" in s[4]["estimate_basis"]
    assert not any("not found" in n for n in s[4]["notes"] + s[5]["notes"])
    assert "migration.set-not-null-scan" in rules(s[5])
    assert any("dropped earlier in this migration" in n for n in s[7]["notes"])
    # Created again after the drop: new and empty, nobody waits.
    assert {f["severity"] for f in s[9]["findings"] if f["rule"] != "migration.not-robust"} <= {"info"}
    # An index created earlier is dropped from its table (orders on the target), not "not found".
    assert s[11]["tables"] == ["orders"] and "migration.drop-index-blocking" in rules(s[11])
    # The shared server has no pg_stat_statements loaded: not known, and said so.
    assert any("pg_stat_statements cannot be read" in n for n in s[2]["notes"])


@pytest.fixture(scope="module")
def preloaded_server() -> Iterator[str]:
    """A throwaway cluster with pg_stat_statements preloaded."""
    with support.private_postgres("shared_preload_libraries=pg_stat_statements") as url:
        yield url


async def _application(url: str) -> None:
    """The running application: reads note and id, never other."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION pg_stat_statements;" + SCHEMA_SQL + "SELECT pg_stat_statements_reset()")
        for n in range(5):
            await conn.fetch("SELECT id, note FROM orders WHERE id = $1", n)
    finally:
        await conn.close()


def test_breaking_a_column_the_application_still_reads(preloaded_server, tmp_path):
    url = support.with_path(preloaded_server, "postgres")
    asyncio.run(_application(url))
    result, _ = migrate(tmp_path, url, (
        "SET lock_timeout = '2s';\n"
        "ALTER TABLE orders DROP COLUMN IF EXISTS note;\n"
        "ALTER TABLE orders DROP COLUMN IF EXISTS other;\n"
        "ALTER TABLE orders RENAME TO purchases;\n"
    ), "--format", "json")
    assert result.returncode == 1, result.stderr  # breaking is high
    s = by_line(json.loads(result.stdout))
    breaking = next(f for f in s[2]["findings"] if f["rule"] == "migration.breaking-change")
    assert breaking["severity"] == "high" and "5 calls" in breaking["message"] and "note" in breaking["message"]
    assert "migration.breaking-change" not in rules(s[3])  # nothing reads other
    assert "migration.breaking-change" in rules(s[4])  # the table itself is read
