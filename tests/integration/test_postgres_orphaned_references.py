"""postgres.orphaned-references against the real server: an implied reference (user_id beside
users.id, no constraint) with rows pointing at deleted users, counted whole on a small table and
by a bounded sample on a larger one; a declared reference from the config; clean, constrained and
mistyped references quiet (the last is postgres.fk-type-mismatch's)."""

from __future__ import annotations

from checks.model import FixSafety
from tests import support

CHECK = "postgres.orphaned-references"

SCHEMA = """
CREATE TABLE users (id bigint PRIMARY KEY, name text);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);
INSERT INTO orders SELECT g, 1 + g % 1000 FROM generate_series(1, 2000) g;
CREATE TABLE page_views (id bigint PRIMARY KEY, user_id bigint);
-- Spread so every page holds about one orphan in ten: TABLESAMPLE SYSTEM reads whole pages.
INSERT INTO page_views SELECT g, 1 + (g * 7919) % 1000 FROM generate_series(1, 200000) g;
CREATE TABLE payments (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));
INSERT INTO payments SELECT g, 1 + g % 1000 FROM generate_series(1, 100) g;
CREATE TABLE sessions (id bigint PRIMARY KEY, user_id integer);
CREATE TABLE audit (id bigint PRIMARY KEY, actor bigint);
INSERT INTO audit SELECT g, 5000 + g FROM generate_series(1, 10) g;
ANALYZE;
"""


def run(url: str, expect=None, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: options},
                                        "expect": {"references": expect or []}})
    report = support.run_report(settings, checks=[CHECK])
    assert report.errors == []
    return {f.object: f for f in report.findings}


def test_orphans_counted_whole_or_by_sample_and_declared_references(pg_db):
    pg_db.execute(SCHEMA)
    assert run(pg_db.url) == {}  # every user still exists
    pg_db.execute("DELETE FROM users WHERE id > 900")  # 10 % of the users, and every row pointing at them
    findings = run(pg_db.url, expect=[{"column": "audit.actor", "references": "users.id"}], sample_rows=5000)
    orders = findings["public.orders.user_id"]
    assert orders.evidence["whole_table"] is True and orders.evidence["sampled"] == 2000
    assert orders.evidence["orphans"] == 200 and orders.evidence["origin"] == "implied"
    assert orders.fix.safety is FixSafety.MANUAL and "NOT VALID" in orders.fix.notes
    views = findings["public.page_views.user_id"]
    assert views.evidence["whole_table"] is False and views.evidence["sampled"] <= 5000
    assert 0.05 < views.evidence["share"] < 0.15  # about one in ten
    audit = findings["public.audit.actor"]
    assert audit.evidence["origin"] == "expected" and audit.evidence["orphans"] == 10
    # payments.user_id is enforced by its foreign key; sessions.user_id is integer → bigint (fk-type-mismatch's).
    assert not {"public.payments.user_id", "public.sessions.user_id"} & set(findings)
