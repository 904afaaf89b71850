"""What the scratch replays of each statement, and which relations a migration names (pure:
parsed SQL in, text out)."""

from __future__ import annotations

import pytest

from checks.postgres.migration.copy import named_relations
from checks.postgres.migration.parse import split
from checks.postgres.migration.scratch import (
    RelationMap,
    changes_what_checks_read,
    leading_relation,
    relation_names,
    replayed_sql,
)

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


@pytest.mark.parametrize("sql, names", [
    ("ALTER TABLE app.t ADD COLUMN c int REFERENCES p (id)", {"t", "p"}),
    ("CREATE INDEX i ON t (a)", {"i", "t"}),
    ("ALTER TABLE t ADD CONSTRAINT t_u UNIQUE (a)", {"t", "t_u"}),
    ("DROP INDEX CONCURRENTLY app.i, j", {"i", "j"}),
    ("ALTER TABLE t RENAME TO u", {"t", "u"}),
    ("ALTER TABLE t RENAME COLUMN a TO b", {"t"}),
    ("CREATE TYPE mood AS ENUM ('a')", None),  # reaches any table using it: checked alone
    ("DROP SCHEMA app CASCADE", None),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", None),
])
def test_the_relations_a_statement_reaches_by_name(sql, names):
    assert relation_names(split(sql + ";", "m.sql")[0].node) == names


def test_a_statement_reaches_the_tables_of_its_indexes_and_their_neighbours():
    relations = RelationMap.from_rows([
        {"kind": "owner", "name": "orders_pkey", "other": "orders"},
        {"kind": "neighbour", "name": "items", "other": "orders"},
        {"kind": "neighbour", "name": "orders", "other": "customers"},
    ])
    assert relations.reach({"orders_pkey"}) == {"orders_pkey", "orders", "items", "customers"}
    assert relations.reach({"items"}) == {"items", "orders"}
    rename = split('ALTER TABLE items RENAME TO "Lines";', "m.sql")[0].node
    relations.learn(rename, relation_names(rename))
    assert relations.reach({"Lines"}) == {"Lines", "items", "orders"}
    index = split("CREATE INDEX lines_at ON \"Lines\" (at);", "m.sql")[0].node
    relations.learn(index, relation_names(index))
    assert relations.direct({"lines_at"}) == {"lines_at", "Lines"}
    namesake = split("CREATE INDEX orders_pkey ON app.orders_archive (id);", "m.sql")[0].node
    relations.learn(namesake, relation_names(namesake))  # another schema's index of that name
    assert relations.direct({"orders_pkey"}) == {"orders_pkey", "orders", "orders_archive"}


@pytest.mark.parametrize("obj, relation", [
    ("public.t", "t"),
    ("public.t.c", "t"),
    ("public.t(a, b)", "t"),
    ('"App"."Or.d""x"(a)', 'Or.d"x'),
    ('public."a b"."c"', "a b"),
])
def test_the_relation_a_finding_names(obj, relation):
    assert leading_relation(obj) == relation
