"""Duplicate and redundant indexes against a real server, on pg-index-health's fixtures: prefixes
with and without a predicate, a hash index covered by a btree, a unique index implied by the
primary key, different operator classes (quiet), a partition's own index repeating the one attached
from its parent, and materialized views judged by every index check."""

from __future__ import annotations

import asyncpg
import pytest

from tests import support

CHECKS = ["postgres.duplicate-index", "postgres.redundant-index", "postgres.unused-index",
          "postgres.invalid-index", "postgres.no-primary-key"]


def references(s: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE TABLE {s}.clients (id bigserial PRIMARY KEY, last_name varchar(255) NOT NULL,
        first_name varchar(255) NOT NULL, middle_name varchar(255));
    CREATE TABLE {s}.accounts (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES {s}.clients (id),
        account_number varchar(50) NOT NULL UNIQUE, account_balance numeric(22,2) NOT NULL DEFAULT 0,
        deleted boolean NOT NULL DEFAULT false);
    CREATE INDEX i_accounts_client_id ON {s}.accounts (client_id);
    INSERT INTO {s}.clients (last_name, first_name) SELECT 'l' || g, 'f' || g FROM generate_series(1, 1000) g;
    INSERT INTO {s}.accounts (client_id, account_number) SELECT g, 'n' || g FROM generate_series(1, 1000) g;"""


def run(url: str, checks=CHECKS):
    settings = support.settings_for(pg={"kind": "postgres", "url": url,
                                        "checks": {"postgres.unused-index": {"min_history": "0s"}}})
    report = support.run_report(settings, checks=checks)
    assert report.errors == []
    return report.findings


@pytest.mark.parametrize("schema", ["public", "custom"])
def test_pg_index_health_duplicated_and_intersected_indexes(pg_db, schema):
    s = schema
    pg_db.execute(references(s) + f"""
        CREATE INDEX i_accounts_account_number ON {s}.accounts (account_number);
        CREATE INDEX i_accounts_account_number_not_deleted ON {s}.accounts (account_number) WHERE NOT deleted;
        CREATE INDEX i_accounts_number_balance_not_deleted ON {s}.accounts (account_number, account_balance) WHERE NOT deleted;
        CREATE INDEX i_clients_last_first ON {s}.clients (last_name, first_name);
        CREATE INDEX i_clients_last_name ON {s}.clients (last_name);
        CREATE INDEX i_accounts_id_account_number_not_deleted ON {s}.accounts (id, account_number) WHERE NOT deleted;""")
    redundant = {f.object: f.evidence["covered_by"]["definition"]
                 for f in support.by_check(run(pg_db.url, ["postgres.redundant-index"]), "postgres.redundant-index")}
    assert sorted(redundant) == [f"{s}.i_accounts_account_number", f"{s}.i_accounts_account_number_not_deleted",
                                 f"{s}.i_clients_last_name"]
    assert "accounts_account_number_key" in redundant[f"{s}.i_accounts_account_number"]
    assert "i_accounts_number_balance_not_deleted" in redundant[f"{s}.i_accounts_account_number_not_deleted"]
    assert "i_clients_last_first" in redundant[f"{s}.i_clients_last_name"]


@pytest.mark.parametrize("schema", ["public", "custom"])
def test_a_hash_index_covered_by_a_btree(pg_db, schema):
    s = schema
    pg_db.execute(references(s) + f"""
        CREATE INDEX i_accounts_account_number ON {s}.accounts USING hash (account_number);
        CREATE INDEX i_clients_last_first ON {s}.clients (last_name, first_name);
        CREATE INDEX i_clients_last_name ON {s}.clients USING hash (last_name);""")
    findings = {f.object: f for f in run(pg_db.url, ["postgres.redundant-index"])}
    # The unique key on account_number covers the hash index there too: equality is all a hash answers.
    assert sorted(findings) == [f"{s}.i_accounts_account_number", f"{s}.i_clients_last_name"]
    last_name = findings[f"{s}.i_clients_last_name"]
    assert last_name.evidence["reason"] == "hash" and "i_clients_last_first" in last_name.evidence["covered_by"]["definition"]
    assert last_name.fix.steps[0].command == f"DROP INDEX CONCURRENTLY {s}.i_clients_last_name;"


def test_different_operator_classes_and_a_hash_on_another_column_are_quiet(pg_db):
    pg_db.execute(references("public") + """
        CREATE INDEX i_clients_last_name ON clients (last_name);
        CREATE INDEX i_clients_last_name_ops ON clients (last_name varchar_pattern_ops, first_name);
        CREATE INDEX i_clients_first_hash ON clients USING hash (first_name);""")
    assert run(pg_db.url, ["postgres.redundant-index", "postgres.duplicate-index"]) == []


def test_a_unique_index_implied_by_the_primary_key(pg_db):
    pg_db.execute(references("public") + """
        CREATE UNIQUE INDEX i_accounts_id_number ON accounts (id, account_number);
        CREATE UNIQUE INDEX i_accounts_number_id ON accounts (account_number, id);""")
    [finding] = run(pg_db.url, ["postgres.redundant-index"])
    assert finding.object == "public.i_accounts_id_number" and finding.evidence["reason"] == "primary_key"
    assert "accounts_pkey" in finding.evidence["covered_by"]["definition"]


def test_a_partition_index_repeating_the_attached_one(pg_db):
    pg_db.execute("""
        CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE INDEX events_kind_idx ON events (kind);
        CREATE INDEX events_2026_kind_by_hand ON events_2026 (kind);
        CREATE INDEX events_2026_kind_hash ON events_2026 USING hash (kind);""")
    findings = run(pg_db.url, ["postgres.duplicate-index", "postgres.redundant-index"])
    [duplicate] = support.by_check(findings, "postgres.duplicate-index")
    assert duplicate.object == "public.events_2026_kind_by_hand"
    assert duplicate.evidence["duplicate_of"]["attached_from_parent"] is True
    assert duplicate.fix.steps[0].command == "DROP INDEX CONCURRENTLY public.events_2026_kind_by_hand;"
    [redundant] = support.by_check(findings, "postgres.redundant-index")
    assert redundant.object == "public.events_2026_kind_hash"


def test_materialized_views_in_every_index_check(pg_db):
    pg_db.execute(references("public") + """
        CREATE MATERIALIZED VIEW client_totals AS
            SELECT c.id AS client_id, c.last_name, count(a.id) AS accounts FROM clients c LEFT JOIN accounts a
            ON a.client_id = c.id GROUP BY c.id, c.last_name;
        CREATE UNIQUE INDEX client_totals_client_id ON client_totals (client_id);
        CREATE INDEX client_totals_last_name ON client_totals (last_name);
        CREATE INDEX client_totals_last_name_copy ON client_totals (last_name);
        CREATE INDEX client_totals_last_accounts ON client_totals (last_name, accounts);""")
    findings = run(pg_db.url)
    assert [f.object for f in support.by_check(findings, "postgres.duplicate-index")] == ["public.client_totals_last_name_copy"]
    assert [f.object for f in support.by_check(findings, "postgres.redundant-index")] == ["public.client_totals_last_name"]
    unused = {f.object for f in support.by_check(findings, "postgres.unused-index")}
    assert "public.client_totals_last_accounts" in unused
    assert support.by_check(findings, "postgres.no-primary-key") == []  # a materialized view has no keys to judge


def test_an_invalid_index_on_a_materialized_view(pg_db):
    pg_db.execute("""
        CREATE MATERIALIZED VIEW dupes AS SELECT g % 3 AS v FROM generate_series(1, 10) g;""")
    with pytest.raises(asyncpg.UniqueViolationError):
        pg_db.execute("CREATE UNIQUE INDEX CONCURRENTLY dupes_v_key ON dupes (v)")
    [finding] = run(pg_db.url, ["postgres.invalid-index"])
    assert finding.object == "public.dupes_v_key"
    assert finding.evidence["precondition"] == {
        "requirement": "no two rows share a key of the unique index dupes_v_key", "failing": 3,
        "samples": ["0 ×3", "1 ×4", "2 ×3"]}


def test_an_invalid_unique_index_with_duplicates_is_not_rebuilt_blindly(pg_db):
    """Issue #25 item 5: a unique build offered as a fix fails again on the duplicates that broke it."""
    pg_db.execute("""
        CREATE TABLE orders (id bigint PRIMARY KEY, order_ref text, region text);
        INSERT INTO orders SELECT g, 'r' || (g % 975), CASE WHEN g % 975 % 2 = 0 THEN 'eu' END FROM generate_series(1, 1000) g;""")
    with pytest.raises(asyncpg.UniqueViolationError):
        pg_db.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_ref_key ON orders (lower(order_ref), region) "
                      "WHERE region IS NOT NULL")
    [finding] = run(pg_db.url, ["postgres.invalid-index"])
    assert finding.fix.safety.value == "manual"
    assert finding.evidence["precondition"]["failing"] == 12  # r1..r25 twice; the even ones have a region
    assert "12 duplicate keys" in finding.message
    listed = pg_db.fetch(finding.fix.steps[0].command)
    assert len(listed) == 12
    pg_db.execute("DELETE FROM orders WHERE id > 975")
    [finding] = run(pg_db.url, ["postgres.invalid-index"])
    assert finding.evidence["precondition"]["failing"] == 0 and finding.fix.safety.value == "unsafe"


def test_a_partitioned_table_without_a_primary_key_and_its_default_partition(pg_db):
    """pg-index-health's CreatePartitionedTableWithoutPrimaryKey: both the table and its default
    partition are reported; once the default partition has a key of its own, only the table."""
    pg_db.execute("""
        CREATE TABLE entity_refs (ref_type varchar(32), ref_value varchar(64), creation_date timestamptz NOT NULL,
            entity_id bigint NOT NULL) PARTITION BY RANGE (creation_date);
        CREATE TABLE entity_refs_default PARTITION OF entity_refs DEFAULT;""")
    findings = {f.object: f for f in run(pg_db.url, ["postgres.no-primary-key"])}
    assert sorted(findings) == ["public.entity_refs", "public.entity_refs_default"]
    assert findings["public.entity_refs_default"].evidence["partition_of"] == "public.entity_refs"
    pg_db.execute("ALTER TABLE entity_refs_default ADD PRIMARY KEY (entity_id, creation_date)")
    assert [f.object for f in run(pg_db.url, ["postgres.no-primary-key"])] == ["public.entity_refs"]
