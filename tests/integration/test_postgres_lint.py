"""The schema lint against the real server, as pg-index-health's static checks define each rule:
one schema carrying every violation (in a custom schema, with a partitioned table among them) and
one written the recommended way; each rule reports exactly its own objects in the first and
nothing in the second. A table of cases, failing and passing side by side."""

from __future__ import annotations

import asyncio

import pytest

from checks.model import Severity
from tests import support
from tests.conftest import PgDatabase, _pg_admin

LONG = "a" * 63

FAILING = f"""
CREATE SCHEMA custom;
CREATE TABLE custom.clients (id serial PRIMARY KEY, last_name varchar(255) NOT NULL, code char(4),
    created_at timestamp NOT NULL, balance money, info json, tags text[], deleted boolean NOT NULL DEFAULT false,
    email text);
CREATE INDEX i_clients_tags ON custom.clients (tags);
CREATE INDEX i_clients_deleted ON custom.clients (deleted);
CREATE INDEX i_clients_email ON custom.clients (email);
CREATE INDEX i_clients_last_name_not_null ON custom.clients (last_name) WHERE last_name IS NOT NULL;
CREATE INDEX i_clients_name_created_code ON custom.clients (last_name, created_at, code);
CREATE TABLE custom.loose (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text, b text);
CREATE TABLE custom.events (id integer NOT NULL, at timestamptz NOT NULL, note text NOT NULL, PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE custom.events_2026 PARTITION OF custom.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE custom."t-multi" (id bigint NOT NULL, ts timestamp, name text);
CREATE INDEX idx_multi_mid ON custom."t-multi" (id, ts, name);
CREATE INDEX idx_multi_expr_first ON custom."t-multi" ((date_trunc('day', ts)), id, name);
CREATE INDEX idx_multi_expr_mid ON custom."t-multi" (id, (date_trunc('day', ts)), name);
CREATE INDEX idx_multi_last ON custom."t-multi" (id, name, ts);
CREATE TABLE custom.{LONG} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text NOT NULL);
INSERT INTO custom.clients (last_name, created_at, email) SELECT 'n' || g, now(), CASE WHEN g % 10 = 0 THEN 'e' || g END
FROM generate_series(1, 1000) g;
ANALYZE custom.clients;
"""

PASSING = """
CREATE TABLE clients (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, last_name text NOT NULL, code text,
    created_at timestamptz NOT NULL, balance numeric(12, 2), info jsonb, tags text[], deleted boolean NOT NULL DEFAULT false,
    email text);
CREATE INDEX i_clients_tags ON clients USING gin (tags);
CREATE INDEX i_clients_active ON clients (last_name) WHERE NOT deleted;
CREATE INDEX i_clients_email ON clients (email) WHERE email IS NOT NULL;
CREATE INDEX i_clients_name_code_created ON clients (last_name, code, created_at);
CREATE TABLE events (id bigint NOT NULL, at timestamptz NOT NULL, note text NOT NULL, PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
-- Issue #25 item 10: members of a composite key that hold other tables' keys are judged there.
CREATE TABLE badge_titles (badge_id integer NOT NULL, title_id integer NOT NULL, PRIMARY KEY (badge_id, title_id));
INSERT INTO clients (last_name, created_at, email) SELECT 'n' || g, now(), CASE WHEN g % 10 = 0 THEN 'e' || g END
FROM generate_series(1, 1000) g;
ANALYZE clients;
"""

# rule → the objects it reports in FAILING
CASES = {
    "postgres.lint-integer-key": ["custom.clients.id", "custom.events.id"],
    "postgres.lint-serial": ["custom.clients.id"],
    "postgres.lint-timestamp-without-tz": ["custom.clients.created_at", 'custom."t-multi".ts'],
    "postgres.lint-varchar-length": ["custom.clients.last_name"],
    "postgres.lint-char": ["custom.clients.code"],
    "postgres.lint-money": ["custom.clients.balance"],
    "postgres.lint-json": ["custom.clients.info"],
    "postgres.lint-btree-on-array": ["custom.i_clients_tags"],
    "postgres.lint-boolean-index": ["custom.i_clients_deleted"],
    "postgres.lint-index-nulls": ["custom.i_clients_email", "custom.i_clients_tags"],  # 90 % and 100 % NULL
    "postgres.lint-unnecessary-where": ["custom.i_clients_last_name_not_null"],
    # pg-index-health's t-multi: a timestamp (or an expression over one) anywhere but last.
    "postgres.lint-timestamp-in-the-middle": ["custom.i_clients_name_created_code", "custom.idx_multi_expr_first",
                                              "custom.idx_multi_expr_mid", "custom.idx_multi_mid"],
    "postgres.lint-all-nullable": ["custom.loose"],
    "postgres.lint-name-overflow": [f"custom.{LONG}", f"custom.{LONG[:58]}_pkey"],
}


def database(sql: str):
    name = support.unique("dbv_test_lint")
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    db = PgDatabase(name, support.with_path(support.PG_URL, name))
    db.execute(sql)
    return db


@pytest.fixture(scope="module")
def reports():
    """Both schemas, built once, checked once by every rule (read-only from here on)."""
    out = {}
    for label, sql in (("failing", FAILING), ("passing", PASSING)):
        db = database(sql)
        try:
            settings = support.settings_for(pg={"kind": "postgres", "url": db.url})
            out[label] = support.run_report(settings, checks=list(CASES))
        finally:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))
    return out


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_reports_its_objects_and_nothing_on_the_recommended_schema(reports, rule):
    failing, passing = reports["failing"], reports["passing"]
    assert failing.errors == [] and passing.errors == []
    found = support.by_check(failing.findings, rule)
    assert sorted(f.object for f in found) == sorted(CASES[rule])
    assert all(f.severity is Severity.LOW and f.fix is None and f.evidence for f in found)
    assert support.by_check(passing.findings, rule) == []
