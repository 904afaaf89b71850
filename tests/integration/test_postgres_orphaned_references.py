"""postgres.orphaned-references against the real server: an implied reference (user_id beside
users.id, no constraint) with rows pointing at deleted users, counted whole on a small table and
by a bounded sample on a larger one; a declared reference from the config; clean, constrained and
mistyped references quiet (the last is postgres.fk-type-mismatch's)."""

from __future__ import annotations

import time

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


def test_counting_reads_the_referenced_table_once_not_once_per_row(pg_db):
    """A reference declared in the config to a column with no index (events.user_email → users.email,
    2,000 rows each): the orphans are counted with one anti-join. (Before: the NOT EXISTS ran once per
    sampled row, 2,000 sequential scans of users reading 4,000,000 rows.)"""
    pg_db.execute("""
        CREATE TABLE users (id bigint PRIMARY KEY, email text);
        INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 2000) g;
        CREATE TABLE events (id bigint PRIMARY KEY, user_email text);
        INSERT INTO events SELECT g, 'u' || (g + 100) || '@example.com' FROM generate_series(1, 2000) g;
        ANALYZE users; ANALYZE events;""")
    stats = ("SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan, "
             "coalesce(idx_tup_fetch, 0) AS idx_tup_fetch FROM pg_stat_user_tables WHERE relname IN ('users', 'events')")

    def read() -> dict[str, tuple[int, ...]]:  # a new connection each time: a fresh statistics snapshot
        return {r["relname"]: tuple(r[k] for k in ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch"))
                for r in pg_db.fetch(stats)}

    before = read()
    findings = run(pg_db.url, expect=[{"column": "events.user_email", "references": "users.email"}])
    assert findings["public.events.user_email"].evidence["orphans"] == 100
    deadline = time.monotonic() + 15  # the checked session's statistics reach the views asynchronously
    after = read()
    while after["events"][0] == before["events"][0] and time.monotonic() < deadline:
        time.sleep(0.2)
        after = read()
    delta = {t: tuple(a - b for a, b in zip(after[t], before[t])) for t in before}
    print("pg_stat_user_tables delta (seq_scan, seq_tup_read, idx_scan, idx_tup_fetch):", delta)
    assert delta["events"][0] >= 1, delta
    assert sum(d[1] + d[3] for d in delta.values()) <= 3 * 4000, delta
