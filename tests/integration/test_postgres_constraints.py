"""postgres.not-valid-constraint and postgres.disabled-trigger against a real server:
pg-index-health's NOT VALID check and foreign key (validated by the fix, then quiet), a partition's
copy judged at its parent, and a foreign key whose triggers a bulk load left disabled."""

from __future__ import annotations

import time

import pytest

from checks.model import FixSafety, Severity
from tests import support


def run(url: str, check: str):
    settings = support.settings_for(pg={"kind": "postgres", "url": url})
    report = support.run_report(settings, checks=[check])
    assert report.errors == []
    return {f.object: f for f in report.findings}


BASE = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE {s}.clients (id bigserial PRIMARY KEY, name text);
CREATE TABLE {s}.accounts (id bigserial PRIMARY KEY, client_id bigint NOT NULL, number varchar(50) NOT NULL);
INSERT INTO {s}.clients (name) VALUES ('a'), ('b');
INSERT INTO {s}.accounts (client_id, number) VALUES (1, '1'), (2, '2');
"""


@pytest.mark.parametrize("schema", ["public", "custom"])
def test_not_valid_check_and_foreign_key_then_validated_by_the_fix(pg_db, schema):
    pg_db.execute(BASE.format(s=schema) + f"""
        ALTER TABLE {schema}.accounts ADD CONSTRAINT c_accounts_chk_client_id_not_validated_yet
            CHECK (client_id > 0) NOT VALID;
        ALTER TABLE {schema}.accounts ADD CONSTRAINT c_accounts_fk_client_id_not_validated_yet
            FOREIGN KEY (client_id) REFERENCES {schema}.clients (id) NOT VALID;
        ALTER TABLE {schema}.accounts ADD CONSTRAINT c_accounts_number_not_empty CHECK (number <> '');""")
    findings = run(pg_db.url, "postgres.not-valid-constraint")
    assert sorted(findings) == [f"{schema}.accounts.c_accounts_chk_client_id_not_validated_yet",
                                f"{schema}.accounts.c_accounts_fk_client_id_not_validated_yet"]
    fk = findings[f"{schema}.accounts.c_accounts_fk_client_id_not_validated_yet"]
    assert fk.evidence["type"] == "foreign key" and fk.evidence["references"].endswith("clients")
    assert fk.fix.safety is FixSafety.SAFE and "SHARE UPDATE EXCLUSIVE" in fk.fix.lock
    for finding in findings.values():
        for step in finding.fix.steps:
            pg_db.execute(step.command)
    assert run(pg_db.url, "postgres.not-valid-constraint") == {}


def test_validate_is_not_offered_as_safe_while_rows_break_the_constraint(pg_db):
    """Issue #25 item 5: VALIDATE CONSTRAINT failed on 1,000 orphans after being called safe."""
    pg_db.execute(BASE.format(s="public") + """
        INSERT INTO accounts (client_id, number) SELECT 1000 + g, 'x' || g FROM generate_series(1, 1000) g;
        INSERT INTO accounts (client_id, number) VALUES (-7, '');
        ALTER TABLE accounts ADD CONSTRAINT accounts_client_fk FOREIGN KEY (client_id) REFERENCES clients (id) NOT VALID;
        ALTER TABLE accounts ADD CONSTRAINT accounts_client_positive CHECK (client_id > 0) NOT VALID;
        ALTER TABLE accounts ADD CONSTRAINT accounts_number_set CHECK (number <> '') NOT VALID;""")
    findings = run(pg_db.url, "postgres.not-valid-constraint")
    fk = findings["public.accounts.accounts_client_fk"]
    assert fk.fix.safety is FixSafety.MANUAL
    assert fk.evidence["precondition"]["failing"] == 1001
    assert fk.evidence["precondition"]["samples"] == ["-7", "1001", "1002", "1003", "1004"]  # sorted as text
    assert "1,001 row(s) point at no row of clients" in fk.message
    assert findings["public.accounts.accounts_client_positive"].evidence["precondition"]["failing"] == 1
    assert findings["public.accounts.accounts_number_set"].evidence["precondition"]["samples"] == ["(1003,-7,\"\")"]
    # The manual plan's first step lists exactly the rows the count found.
    assert len(pg_db.fetch(fk.fix.steps[0].command)) == 1001
    pg_db.execute("DELETE FROM accounts WHERE client_id NOT IN (SELECT id FROM clients)")
    findings = run(pg_db.url, "postgres.not-valid-constraint")
    assert {f.fix.safety for f in findings.values()} == {FixSafety.SAFE}
    assert all(f.evidence["precondition"]["failing"] == 0 for f in findings.values())


def test_a_not_valid_check_on_a_partitioned_table_is_reported_at_the_parent(pg_db):
    pg_db.execute("""
        CREATE TABLE events (id bigint NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        ALTER TABLE events_2026 ADD CONSTRAINT events_2026_id_positive CHECK (id > 0) NOT VALID;""")
    findings = run(pg_db.url, "postgres.not-valid-constraint")
    assert list(findings) == ["public.events_2026.events_2026_id_positive"]  # a partition's own constraint
    pg_db.execute("ALTER TABLE events_2026 VALIDATE CONSTRAINT events_2026_id_positive")
    assert run(pg_db.url, "postgres.not-valid-constraint") == {}


def test_a_foreign_key_with_disabled_triggers_is_not_enforced(pg_db):
    pg_db.execute(BASE.format(s="public") + """
        ALTER TABLE accounts ADD CONSTRAINT accounts_client_fk FOREIGN KEY (client_id) REFERENCES clients (id);
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER clients_touch BEFORE UPDATE ON clients FOR EACH ROW EXECUTE FUNCTION touch();
        ALTER TABLE accounts DISABLE TRIGGER ALL;
        ALTER TABLE clients DISABLE TRIGGER clients_touch;""")
    findings = run(pg_db.url, "postgres.disabled-trigger")
    fk = findings["public.accounts"]  # one finding for the table: DISABLE TRIGGER ALL switched off all its keys
    assert fk.severity is Severity.HIGH and len(fk.evidence["disabled_triggers"]) == 2
    assert list(fk.evidence["constraints"]) == ["accounts_client_fk"]
    assert fk.fix.safety is FixSafety.MANUAL
    user = findings["public.clients.clients_touch"]
    assert user.severity is Severity.LOW
    pg_db.execute("ALTER TABLE accounts ENABLE TRIGGER ALL; ALTER TABLE clients ENABLE TRIGGER clients_touch;")
    assert run(pg_db.url, "postgres.disabled-trigger") == {}


def test_counting_what_validate_would_fail_on_is_one_pass_and_the_same_twice(pg_db):
    """The preconditions' cost from the server's own statistics: a bounded multiple of one pass
    over the tables, not a read per row; and two runs over unchanged data agree."""
    pg_db.execute(BASE.format(s="public") + """
        INSERT INTO clients (name) SELECT 'c' || g FROM generate_series(1, 2000) g;
        INSERT INTO accounts (client_id, number) SELECT 1 + g % 2500, 'n' || g FROM generate_series(1, 5000) g;
        ALTER TABLE accounts ADD CONSTRAINT accounts_client_fk FOREIGN KEY (client_id) REFERENCES clients (id) NOT VALID;
        ALTER TABLE accounts ADD CONSTRAINT accounts_number_set CHECK (number <> '') NOT VALID;
        ANALYZE;""")

    def rows_read() -> dict[str, int]:
        pg_db.execute("SELECT pg_stat_force_next_flush()")
        return {r["relname"]: r["read"] for r in pg_db.fetch(
            "SELECT relname, seq_tup_read + coalesce(idx_tup_fetch, 0) AS read FROM pg_stat_user_tables "
            "WHERE relname IN ('accounts', 'clients')")}

    before = rows_read()
    first = run(pg_db.url, "postgres.not-valid-constraint")
    # The check's session reports its reads when it ends, a moment after the run: wait for them.
    deadline = time.monotonic() + 30
    while (after := rows_read())["accounts"] == before["accounts"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["accounts"] > before["accounts"]
    assert first["public.accounts.accounts_client_fk"].evidence["precondition"]["failing"] == 996
    # Two constraints: accounts read at most twice each; clients at most twice (the anti-join's side).
    assert after["accounts"] - before["accounts"] <= 2 * 2 * 5002
    assert after["clients"] - before["clients"] <= 2 * 2002
    assert run(pg_db.url, "postgres.not-valid-constraint") == first


def test_a_count_that_runs_out_of_time_is_unknown_and_the_fix_manual(pg_db):
    pg_db.execute(BASE.format(s="public") + """
        INSERT INTO accounts (client_id, number) SELECT 1 + g % 2, 'n' || g FROM generate_series(1, 300000) g;
        ALTER TABLE accounts ADD CONSTRAINT accounts_number_set CHECK (number <> '') NOT VALID;""")
    settings = support.settings_for(pg={"kind": "postgres", "url": pg_db.url, "checks": {
        "postgres.not-valid-constraint": {"precondition_seconds": 0.001}}})  # a 1 ms statement_timeout
    report = support.run_report(settings, checks=["postgres.not-valid-constraint"])
    assert report.errors == []
    [finding] = report.findings
    assert finding.evidence["precondition"]["failing"] == "unknown"
    assert "longer than" in finding.evidence["precondition"]["why"] or "budget" in finding.evidence["precondition"]["why"]
    assert finding.fix.safety is FixSafety.MANUAL and "is unknown" in finding.message
