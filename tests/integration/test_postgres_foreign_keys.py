"""Foreign keys against a real server, on pg-index-health's fixtures (clients and accounts, and a
partitioned t1 referencing dict), in the default and a custom schema: duplicated and intersected
foreign keys, and fk-missing-index proposing one index per distinct column list."""

from __future__ import annotations

import pytest

from tests import support

CHECKS = ["postgres.duplicate-fk", "postgres.intersected-fk", "postgres.fk-missing-index"]


def references(schema: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {schema};
    CREATE TABLE {schema}.clients (id bigserial PRIMARY KEY, last_name varchar(255) NOT NULL,
        email varchar(200) NOT NULL, phone varchar(50) NOT NULL, UNIQUE (email, phone), UNIQUE (phone, email));
    CREATE TABLE {schema}.accounts (id bigserial PRIMARY KEY, client_id bigint NOT NULL,
        account_number varchar(50) NOT NULL UNIQUE,
        CONSTRAINT c_accounts_fk_client_id FOREIGN KEY (client_id) REFERENCES {schema}.clients (id));
    CREATE INDEX i_accounts_client_id ON {schema}.accounts (client_id);"""


def partitioned(schema: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {schema};
    CREATE TABLE {schema}.dict (ref_type int NOT NULL PRIMARY KEY, ref_value varchar(64), description text);
    CREATE UNIQUE INDEX idx_dict_ref_type_ref_value ON {schema}.dict (ref_type, ref_value);
    CREATE TABLE {schema}.t1 (ref_value varchar(64) NOT NULL, ref_type bigserial NOT NULL REFERENCES {schema}.dict (ref_type),
        creation_date timestamptz NOT NULL, entity_id varchar(64) NOT NULL,
        PRIMARY KEY (ref_value, ref_type, creation_date, entity_id)) PARTITION BY RANGE (creation_date);
    CREATE TABLE {schema}.t1_default PARTITION OF {schema}.t1 DEFAULT;"""


def run(url: str, checks=CHECKS):
    settings = support.settings_for(pg={"kind": "postgres", "url": url})
    report = support.run_report(settings, checks=checks)
    assert report.errors == []
    return report.findings


@pytest.mark.parametrize("schema", ["public", "custom"])
def test_duplicated_foreign_key_is_reported_once_and_asks_for_no_second_index(pg_db, schema):
    pg_db.execute(references(schema) + f"""
        DROP INDEX {schema}.i_accounts_client_id;
        ALTER TABLE {schema}.accounts ADD CONSTRAINT c_accounts_fk_client_id_duplicate
            FOREIGN KEY (client_id) REFERENCES {schema}.clients (id);""")
    findings = run(pg_db.url)
    [duplicate] = support.by_check(findings, "postgres.duplicate-fk")
    assert duplicate.object == f"{schema}.accounts.c_accounts_fk_client_id_duplicate"
    assert duplicate.evidence["names"] == ["c_accounts_fk_client_id_duplicate", "c_accounts_fk_client_id"]
    assert duplicate.fix.steps[0].command == (
        f"ALTER TABLE {schema}.accounts DROP CONSTRAINT c_accounts_fk_client_id_duplicate;")
    assert "NOT VALID" in duplicate.fix.inverse[0].command
    assert support.by_check(findings, "postgres.intersected-fk") == []  # identical keys are not "intersected"
    [missing] = support.by_check(findings, "postgres.fk-missing-index")  # one index, not two
    assert missing.evidence["also_serves"] == ["c_accounts_fk_client_id_duplicate"]


def test_applying_the_fix_removes_the_duplicate(pg_db):
    pg_db.execute(references("public") + """ALTER TABLE accounts ADD CONSTRAINT c_accounts_fk_client_id_duplicate
        FOREIGN KEY (client_id) REFERENCES clients (id);""")
    [duplicate] = run(pg_db.url, ["postgres.duplicate-fk"])
    for step in duplicate.fix.steps:
        pg_db.execute(step.command)
    assert run(pg_db.url, ["postgres.duplicate-fk"]) == []
    for step in duplicate.fix.inverse:
        pg_db.execute(step.command)
    assert [f.id for f in run(pg_db.url, ["postgres.duplicate-fk"])] == [duplicate.id]


@pytest.mark.parametrize("schema", ["public", "custom"])
def test_intersected_foreign_keys(pg_db, schema):
    pg_db.execute(references(schema) + f"""
        CREATE TABLE {schema}.client_preferences (id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
            email varchar(200) NOT NULL, phone varchar(50) NOT NULL);
        ALTER TABLE {schema}.client_preferences ADD CONSTRAINT c_client_preferences_email_phone_fk
            FOREIGN KEY (email, phone) REFERENCES {schema}.clients (email, phone);
        ALTER TABLE {schema}.client_preferences ADD CONSTRAINT c_client_preferences_phone_email_fk
            FOREIGN KEY (phone, email) REFERENCES {schema}.clients (phone, email);""")
    findings = run(pg_db.url)
    [pair] = support.by_check(findings, "postgres.intersected-fk")
    assert pair.object == f"{schema}.client_preferences.c_client_preferences_email_phone_fk"
    assert sorted(pair.evidence["shared_columns"]) == ["email", "phone"]
    assert support.by_check(findings, "postgres.duplicate-fk") == []
    [missing] = [f for f in support.by_check(findings, "postgres.fk-missing-index") if "client_preferences" in f.object]
    assert missing.evidence["also_serves"] == ["c_client_preferences_phone_email_fk"]


def test_partitioned_tables_duplicated_and_intersected_at_the_parent(pg_db):
    pg_db.execute(partitioned("custom") + """
        ALTER TABLE custom.t1 ADD CONSTRAINT t1_ref_type_fk_duplicate FOREIGN KEY (ref_type) REFERENCES custom.dict (ref_type);
        ALTER TABLE custom.t1 ADD CONSTRAINT t1_ref_type_ref_value_fk FOREIGN KEY (ref_type, ref_value)
            REFERENCES custom.dict (ref_type, ref_value);""")
    findings = run(pg_db.url)
    [duplicate] = support.by_check(findings, "postgres.duplicate-fk")
    assert duplicate.object == "custom.t1.t1_ref_type_fk_duplicate"  # the older t1_ref_type_fkey is kept
    intersected = support.by_check(findings, "postgres.intersected-fk")
    assert {tuple(sorted(f.evidence["shared_columns"])) for f in intersected} == {("ref_type",)}
    assert all(f.object.startswith("custom.t1.") for f in intersected)  # never the partition t1_default


def test_healthy_foreign_keys_are_quiet(pg_db):
    pg_db.execute(references("public") + partitioned("custom"))
    findings = run(pg_db.url, ["postgres.duplicate-fk", "postgres.intersected-fk"])
    assert findings == []
