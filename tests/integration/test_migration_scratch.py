"""`dbvitals migration --scratch`: the schema after the migration, judged on a scratch copy of the
target's schema; each finding the migration adds names the statement after which it appeared.
The target is never written; a scratch that is the target or holds foreign objects is refused."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import jsonschema
import pytest

from tests import support
from tests.conftest import PgDatabase, _pg_admin
from tests.integration.test_cli import dbvitals
from tests.integration.test_migration import DIGEST, SARIF_SCHEMA, _sql, config, migrate, run_async

SCHEMA_SQL = """
CREATE TYPE status AS ENUM ('new', 'paid');
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
                     state status NOT NULL DEFAULT 'new');
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE legacy (x int);  -- no primary key already: not the migration's doing
CREATE TABLE unrelated (id int PRIMARY KEY);
INSERT INTO customers VALUES (1, 'a');
INSERT INTO orders (customer_id) VALUES (1);
"""

MIGRATION = """\
BEGIN;
CREATE TABLE invoices (id bigint PRIMARY KEY, order_id int NOT NULL REFERENCES orders (id));
CREATE TABLE audit (at timestamptz NOT NULL);
DROP INDEX orders_customer;
CREATE INDEX invoices_order ON invoices (order_id);
ALTER TABLE orders ADD COLUMN shipped timestamp;
INSERT INTO audit VALUES (now());
COMMIT;
DROP INDEX invoices_order;
ALTER TABLE nowhere ADD COLUMN x int;
ALTER TABLE legacy ADD COLUMN y int;
"""


@pytest.fixture
def scratch_db(pg_server: str) -> Iterator[PgDatabase]:
    name = support.unique("dbv_scratch")
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PgDatabase(name, support.with_path(pg_server, name))
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def added(doc: dict) -> set[tuple[str, str, int]]:
    return {(f["check"], f["object"], f["statement"]["line"]) for f in doc["after"]}


def test_the_findings_the_migration_adds_each_with_its_statement(pg_db, scratch_db, tmp_path):
    run_async(_sql(pg_db.url, SCHEMA_SQL))
    before = run_async(_sql(pg_db.url, DIGEST))
    result, file = migrate(tmp_path, pg_db.url, MIGRATION, "--scratch", scratch_db.url, "--format", "json",
                           "--fail-on", "never")
    assert run_async(_sql(pg_db.url, DIGEST)) == before  # the target is only read
    assert result.returncode == 1, result.stderr  # a statement failed on the copy: the analysis is incomplete
    doc = json.loads(result.stdout)
    assert added(doc) == {
        ("postgres.fk-type-mismatch", "public.invoices.order_id", 2),  # int referencing bigint
        ("postgres.no-primary-key", "public.audit", 3),
        ("postgres.fk-missing-index", "public.orders(customer_id)", 4),  # its index dropped
        ("postgres.lint-timestamp-without-tz", "public.orders.shipped", 6),
        # Covered at line 5, uncovered again at line 9: the statement is the last one it appeared after.
        ("postgres.fk-missing-index", "public.invoices(order_id)", 9),
        ("postgres.lint-all-nullable", "public.legacy", 11),  # a second nullable column, no key
    }
    # Findings the target has already are not the migration's (legacy has no primary key before
    # and after: not listed); the shape is dbvitals.report/1's finding, plus the statement.
    first = doc["after"][0]
    assert {"id", "check", "severity", "target", "object", "title", "message", "evidence", "fix"} <= first.keys()
    assert first["statement"]["file"] == str(file) and first["statement"]["sql"].startswith("CREATE TABLE invoices")
    assert doc["errors"] == [next(e for e in doc["errors"] if e.startswith(f"{file}:10: fails on a copy"))]
    assert "nowhere" in doc["errors"][0]
    # Only what the migration names and its foreign-key neighbours was copied (orders, customers,
    # legacy; not unrelated); the replay was rolled back: the scratch holds nothing but its marker.
    assert any(n.startswith("schema after the migration: 3 table(s) copied") for n in doc["after_notes"])
    left = run_async(_sql(scratch_db.url, "SELECT string_agg(nspname || '.' || relname, ',') FROM pg_class c "
                                          "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                          "WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"))
    assert left is None
    assert run_async(_sql(scratch_db.url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'dbvitals_scratch'")) == 1
    # The gate counts the findings after (no-primary-key is medium; CREATE TABLE alone has none).
    plain, _ = migrate(tmp_path, pg_db.url, "CREATE TABLE u (x int);\n", "--fail-on", "medium")
    gated, _ = migrate(tmp_path, pg_db.url, "CREATE TABLE u (x int);\n", "--scratch", scratch_db.url,
                       "--fail-on", "medium")
    assert (plain.returncode, gated.returncode) == (0, 1), gated.stderr
    sarif, _ = migrate(tmp_path, pg_db.url, MIGRATION, "--scratch", scratch_db.url, "--format", "sarif",
                       "--fail-on", "never")
    report = json.loads(sarif.stdout)
    jsonschema.validate(report, SARIF_SCHEMA)
    placed = {(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
              for r in report["runs"][0]["results"]}
    assert {("postgres.no-primary-key", 3), ("postgres.fk-missing-index", 9)} <= placed
    junit, _ = migrate(tmp_path, pg_db.url, MIGRATION, "--scratch", scratch_db.url, "--format", "junit",
                       "--fail-on", "never")
    assert ET.fromstring(junit.stdout).find(".//testcase[@name='schema after the migration']/failure") is not None
    text, _ = migrate(tmp_path, pg_db.url, MIGRATION, "--scratch", scratch_db.url, "--fail-on", "never")
    assert "Schema after the migration: 6 new finding(s)" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80


def test_a_scratch_that_is_the_target_or_holds_other_objects_is_refused(pg_db, scratch_db, tmp_path):
    run_async(_sql(pg_db.url, SCHEMA_SQL))
    before = run_async(_sql(pg_db.url, DIGEST))
    itself, _ = migrate(tmp_path, pg_db.url, MIGRATION, "--scratch", pg_db.url, "--format", "json")
    assert itself.returncode == 1
    assert any("is the target itself" in e for e in json.loads(itself.stdout)["errors"])
    assert run_async(_sql(pg_db.url, DIGEST)) == before
    run_async(_sql(scratch_db.url, "CREATE TABLE precious (id int); INSERT INTO precious VALUES (1)"))
    foreign, _ = migrate(tmp_path, pg_db.url, MIGRATION, "--scratch", scratch_db.url, "--format", "json")
    assert foreign.returncode == 1
    assert any("did not create" in e for e in json.loads(foreign.stdout)["errors"])
    assert run_async(_sql(scratch_db.url, "SELECT count(*) FROM precious")) == 1
    # Emptied by hand, it becomes dbvitals's scratch (marked), and is emptied and reused next time.
    run_async(_sql(scratch_db.url, "DROP TABLE precious"))
    for _ in range(2):
        reused, _ = migrate(tmp_path, pg_db.url, "CREATE TABLE t (x int);\n", "--scratch", scratch_db.url,
                            "--format", "json", "--fail-on", "never")
        assert reused.returncode == 0, reused.stderr
        assert added(json.loads(reused.stdout)) >= {("postgres.no-primary-key", "public.t", 1)}


def test_without_a_scratch_one_info_line_and_the_config_key(pg_db, scratch_db, tmp_path):
    run_async(_sql(pg_db.url, "CREATE TABLE t (id int PRIMARY KEY)"))
    skipped, _ = migrate(tmp_path, pg_db.url, "CREATE TABLE u (x int);\n", "--format", "json", "--fail-on", "never")
    doc = json.loads(skipped.stdout)
    assert doc["after"] == [] and len(doc["after_notes"]) == 1 and "skipped" in doc["after_notes"][0]
    path = config(tmp_path, pg_db.url)
    path.write_text(path.read_text() + f"migration_scratch = {json.dumps(scratch_db.url)}\n")
    file = tmp_path / "m.sql"
    file.write_text("CREATE TABLE u (x int);\n")
    result = dbvitals("--config", str(path), "migration", str(file), "--format", "json", "--fail-on", "never")
    assert ("postgres.no-primary-key", "public.u", 1) in added(json.loads(result.stdout))


def test_a_search_path_set_by_the_migration_renames_no_finding(pg_db, scratch_db, tmp_path):
    run_async(_sql(pg_db.url, "CREATE TABLE legacy (x int, y int); CREATE SCHEMA app"))
    result, _ = migrate(tmp_path, pg_db.url, (
        "SET search_path = app;\n"
        "CREATE TABLE IF NOT EXISTS items (id bigint PRIMARY KEY, legacy_x int);\n"
        "CREATE TABLE IF NOT EXISTS bare (v text) -- no key\n;\n"
        "DO $$ BEGIN CREATE TABLE IF NOT EXISTS hidden (v text); END $$;\n"
    ), "--scratch", scratch_db.url, "--format", "json", "--fail-on", "never")
    doc = json.loads(result.stdout)
    assert doc["errors"] == []
    # Code blocks are not run on the copy, and the report says so.
    assert any(n.endswith(":5: code blocks are not run on the copy: what this one would create is missing from "
                          "the schema after") for n in doc["after_notes"])
    # legacy's findings (no primary key, all nullable) are the target's, whatever the search_path.
    assert added(doc) == {("postgres.no-primary-key", "app.bare", 3)}  # its text ends in a comment


def test_views_and_triggers_are_copied_and_grants_not_replayed(pg_db, scratch_db, tmp_path):
    run_async(_sql(pg_db.url, SCHEMA_SQL + """
        CREATE VIEW order_states AS SELECT o.id, o.state, c.name FROM orders o JOIN customers c ON c.id = o.customer_id;
        CREATE MATERIALIZED VIEW paid AS SELECT id FROM orders WHERE state = 'paid';
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
        CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
    """))
    result, _ = migrate(tmp_path, pg_db.url, (
        "DROP VIEW order_states;\n"
        "CREATE VIEW order_states AS SELECT o.id, o.state FROM orders o;\n"
        "DROP MATERIALIZED VIEW paid;\n"
        "DROP TRIGGER orders_touch ON orders;\n"
        "GRANT SELECT ON order_states TO role_only_production_has;\n"
    ), "--scratch", scratch_db.url, "--format", "json", "--fail-on", "never")
    doc = json.loads(result.stdout)
    assert doc["errors"] == []
    # The view's tables (orders, customers) came with it, the trigger with its table; a grant to a
    # role the scratch's server does not have is not replayed (no schema check reads privileges).
    assert any(n.startswith("schema after the migration: 2 table(s) copied") for n in doc["after_notes"])


def test_statements_on_unrelated_tables_are_checked_together_and_attributed_alike(pg_db, scratch_db, tmp_path):
    """The checks run once per group of statements reaching disjoint tables; a finding whose
    object no statement of its group names (a key type changed under a child table, an index
    named by the server) sends the group back to statement-by-statement checking."""
    run_async(_sql(pg_db.url, (
        "CREATE TABLE parent (id int PRIMARY KEY);"
        "CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));"
        "CREATE INDEX child_parent ON child (parent_id);"
        "CREATE TABLE a (id int PRIMARY KEY, x int); CREATE INDEX a_x ON a (x);"
        "CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY);")))
    result, _ = migrate(tmp_path, pg_db.url, (
        "ALTER TABLE b ADD COLUMN at timestamp;\n"  # named by its own statement
        "ALTER TABLE parent ALTER COLUMN id TYPE bigint;\n"  # the finding names child, not parent
        "ALTER TABLE c ADD COLUMN at timestamp;\n"
        "CREATE INDEX ON a (x, id);\n"  # a_x is now redundant: named by no statement
        "ALTER TABLE c ADD COLUMN paid money;\n"), "--scratch", scratch_db.url, "--format", "json",
        "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    assert added(json.loads(result.stdout)) == {
        ("postgres.lint-timestamp-without-tz", "public.b.at", 1),
        ("postgres.fk-type-mismatch", "public.child.parent_id", 2),
        ("postgres.lint-timestamp-without-tz", "public.c.at", 3),
        ("postgres.redundant-index", "public.a_x", 4),
        ("postgres.lint-money", "public.c.paid", 5),
        ("postgres.lint-all-nullable", "public.c", 5),  # its third nullable column
    }
