"""What the scratch replays of each statement, and which relations a migration names (pure:
parsed SQL in, text out)."""

from __future__ import annotations

import pytest

from checks.postgres.migration.copy import named_relations
from checks.postgres.migration.parse import split
from checks.postgres.migration.scratch import changes_what_checks_read, replayed_sql

REPLAYED = [
    ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX i ON t (a)"),
    ("DROP INDEX CONCURRENTLY IF EXISTS i", "DROP INDEX IF EXISTS i"),
    ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "ALTER TABLE p DETACH PARTITION c"),
    ("ALTER TABLE t ADD COLUMN a int", "ALTER TABLE t ADD COLUMN a int"),
    ("BEGIN", None),
    ("COMMIT", None),
    ("UPDATE t SET a = 1", None),
    ("VACUUM FULL t", None),
    ("REINDEX INDEX CONCURRENTLY i", None),
    ("DROP DATABASE other", None),
    ("ALTER SYSTEM SET work_mem = '1GB'", None),
    ("DROP ROLE app", None),
    ("DO $$ BEGIN NULL; END $$", None),
]


@pytest.mark.parametrize("sql, expected", REPLAYED)
def test_what_the_scratch_runs(sql, expected):
    replayed = replayed_sql(split(sql + ";", "m.sql")[0])
    assert (replayed if replayed is None else " ".join(replayed.split())) == expected


@pytest.mark.parametrize("sql, changes", [
    ("SET lock_timeout = '1s'", False),
    ("ALTER TABLE t SET (fillfactor = 70)", False),
    ("ALTER TABLE t DISABLE TRIGGER ALL", False),
    ("ALTER TABLE t SET (fillfactor = 70), ADD COLUMN a int", True),
    ("ALTER TABLE t RENAME COLUMN a TO b", True),
    ("CREATE INDEX i ON t (a)", True),
])
def test_statements_after_which_no_schema_check_can_change(sql, changes):
    assert changes_what_checks_read(split(sql + ";", "m.sql")[0].node) is changes


def test_the_relations_a_migration_names():
    statements = split(
        'ALTER TABLE app."Orders" ADD COLUMN c int REFERENCES customers (id);\n'
        "CREATE INDEX ON items (a);\n"
        "DROP INDEX app.items_a_idx, gone;\n"
        "INSERT INTO log SELECT * FROM events JOIN orders USING (id);\n", "m.sql")
    assert named_relations(statements) == [
        '"app"."Orders"', '"customers"', '"items"', '"app"."items_a_idx"', '"gone"', '"log"', '"events"',
        '"orders"']
