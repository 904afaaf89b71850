"""The planner-driven index advisor (postgres.missing-index) on dexter's own cases: its schema
(posts with 100,000 rows, a view, a materialized view, a quoted schema and table, a foreign table)
and its statements, declared as `[[targets.NAME.expect.queries]]` on the shared server with
hypopg, each suggestion or reason as dexter expects; and the cases dexter's parser misses (joins,
ORDER BY alias or ordinal, two statements on one table, a partitioned table)."""

from __future__ import annotations

import pytest

from checks.model import FixSafety, Severity
from tests import support

CHECK = "postgres.missing-index"

DEXTER_SCHEMA = """
CREATE EXTENSION hypopg;
CREATE EXTENSION postgres_fdw;
CREATE TABLE posts (id int, blog_id int, user_id int, json json, jsonb jsonb, indexed int);
INSERT INTO posts (id, blog_id, user_id, indexed) SELECT n, n % 1000, n % 10, n FROM generate_series(1, 100000) n;
CREATE INDEX ON posts (indexed);
CREATE VIEW posts_view AS SELECT id AS view_id FROM posts;
CREATE MATERIALIZED VIEW posts_materialized AS SELECT * FROM posts;
CREATE TABLE blogs (id int PRIMARY KEY, name text);
INSERT INTO blogs SELECT n, 'b' || n FROM generate_series(1, 1000) n;
CREATE SCHEMA "Bar";
CREATE TABLE "Bar"."Foo"("Id" int);
INSERT INTO "Bar"."Foo" SELECT * FROM generate_series(1, 100000);
CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw;
CREATE FOREIGN TABLE comments (post_id int) SERVER other;
CREATE TABLE events (id int, blog_id int) PARTITION BY HASH (id);
CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE events_2 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO events (id, blog_id) SELECT n, n FROM generate_series(1, 100000) n;
ANALYZE;
"""

# dexter's statement_test.rb: statement → the index it expects, or the reason there is none.
DEXTER_CASES = {
    "SELECT * FROM posts WHERE id = 1": "public.posts (id)",
    "SELECT * FROM posts": "no candidate columns",
    "SELECT * FROM posts WHERE user_id = 1 ORDER BY blog_id LIMIT 1000": "public.posts (user_id, blog_id)",
    "UPDATE posts SET user_id = 2 WHERE user_id = 1": "public.posts (user_id)",
    "DELETE FROM posts WHERE user_id = 1": "public.posts (user_id)",
    "SELECT * FROM posts_view WHERE view_id = 1": "public.posts (id)",
    "SELECT * FROM posts_materialized WHERE id = 1": "public.posts_materialized (id)",
    "SELECT * FROM comments WHERE post_id = 1": "no candidate tables for indexes",
    "WITH cte AS (SELECT * FROM posts WHERE id = 1) SELECT * FROM cte": "public.posts (id)",
    "WITH cte AS (SELECT * FROM posts) SELECT * FROM cte WHERE id = 1": "public.posts (id)",
    "WITH cte AS MATERIALIZED (SELECT * FROM posts) SELECT * FROM cte WHERE id = 1": "no candidate columns",
    "WITH cte AS NOT MATERIALIZED (SELECT * FROM posts) SELECT * FROM cte WHERE id = 1": "public.posts (id)",
    "SELECT * FROM posts ORDER BY user_id DESC LIMIT 10": "public.posts (user_id)",
    "SELECT * FROM posts ORDER BY user_id, blog_id LIMIT 10": "public.posts (user_id, blog_id)",
    'SELECT * FROM "Bar"."Foo" WHERE "Id" = 10000': '"Bar"."Foo" (Id)',
    "SELECT * FROM posts WHERE id = $1": "public.posts (id)",
    "SELECT 1": "no tables",
    "SELECT +": "could not parse the statement",
    "SELECT * FROM posts WHERE indexed = 1": "existing index",
    # Issue #25 item 12, from dexter's newer statement_test.rb.
    "SELECT * FROM posts WHERE user_id = 1 AND blog_id = 2": "public.posts (user_id, blog_id)",
    "SELECT * FROM posts WHERE user_id = 1 AND blog_id < 10": "public.posts (blog_id)",
    "SELECT * FROM events WHERE blog_id = 1": "public.events (blog_id)",
    "SELECT * FROM events_0 WHERE blog_id = 1": "public.events_0 (blog_id)",
    "SELECT * FROM posts ORDER BY 1 DESC LIMIT 10": "no candidate columns",
    "SELECT user_id FROM posts ORDER BY 1 DESC LIMIT 10": "public.posts (user_id)",
    "SELECT * FROM missing": "tables not present in this database",
    "SELECT * FROM information_schema.tables": "no candidate tables for indexes",
    "SELECT * FROM pg_catalog.pg_index": "no candidate tables for indexes",
    "SELECT bad FROM posts": "the planner could not be asked",
    # Beyond dexter's parser: a join, an alias and an ordinal in ORDER BY.
    "SELECT p.* FROM posts p JOIN blogs b ON b.id = p.blog_id WHERE b.id = 1": "public.posts (blog_id)",
    "SELECT user_id AS u FROM posts ORDER BY u LIMIT 5": "public.posts (user_id)",
    "SELECT user_id FROM posts ORDER BY 1 LIMIT 5": "public.posts (user_id)",
}


def run(url: str, queries, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "check_timeout": 120,
                                        "expect": {"queries": [{"sql": q} for q in queries]},
                                        "checks": {CHECK: options}})
    report = support.run_report(settings, checks=[CHECK])
    assert report.errors == []
    return report.findings


def decisions(findings) -> dict[str, dict]:
    [summary] = [f for f in findings if f.object == "expect.queries"]
    assert summary.severity is Severity.INFO
    return {s["query"]: s for s in summary.evidence["statements"]}


def served(findings) -> dict[str, list[str]]:
    """'schema.table (columns)' → the statements the suggested index serves."""
    out = {}
    for f in findings:
        if f.object != "expect.queries" and "definition" in f.evidence:
            out[f"{f.object} ({f.evidence['definition'].split('(', 1)[1].rstrip(')')})"] = [
                s["query"] for s in f.evidence["statements"]]
    return out


@pytest.fixture(scope="module")
def dexter_db(request):
    """dexter's schema, built once for the module's read-only cases (never written by them)."""
    import asyncio

    from tests.conftest import PgDatabase, _pg_admin

    name = support.unique("dbv_test_dexter")
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    db = PgDatabase(name, support.with_path(support.PG_URL, name))
    db.execute(DEXTER_SCHEMA)
    yield db
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_dexter_statements_each_get_their_index_or_their_reason(dexter_db):
    findings = run(dexter_db.url, list(DEXTER_CASES))
    decided = decisions(findings)
    indexes = served(findings)
    for query, expected in DEXTER_CASES.items():
        if expected.startswith(("public.", '"Bar"')):
            # The expected index, or a wider one leading with its columns that the suggestions merged it into.
            wanted = expected.replace("(Id)", '("Id")').rstrip(")")
            assert any(query in statements for index, statements in indexes.items()
                       if index.rstrip(")") == wanted or index.startswith(wanted + ", ")), (query, indexes, decided[query])
        else:
            assert decided[query]["decision"].startswith("index") is False and expected in decided[query]["decision"], (
                query, decided[query])
    # One index for the four statements that filter posts on id, with the costs and its fix.
    [by_id] = [f for f in findings if f.evidence.get("definition", "").endswith("public.posts (id)")]
    assert by_id.evidence["statements_served"] == 6
    assert by_id.fix.safety is FixSafety.SAFE
    assert by_id.fix.steps[0].command == "CREATE INDEX CONCURRENTLY posts_id_idx ON public.posts (id);"
    statement = by_id.evidence["statements"][0]
    assert statement["cost_before"] > 1000 and statement["cost_after"] < 50 and statement["saving"] > 0.9
    # (user_id) is a prefix of (user_id, blog_id): one index serves both kinds of statement.
    assert "public.posts (user_id)" not in indexes
    assert "UPDATE posts SET user_id = 2 WHERE user_id = 1" in indexes["public.posts (user_id, blog_id)"]


def test_threshold_option_decides_and_says_so(dexter_db):
    findings = run(dexter_db.url, ["SELECT * FROM posts WHERE user_id = 1"], min_saving=0.99)
    [decision] = decisions(findings).values()
    assert decision["decision"].startswith("need 99% cost savings to suggest an index")
    assert served(findings) == {}


def test_partitioned_table_is_planned_whole_and_indexed_at_the_parent(pg_db):
    pg_db.execute("""
        CREATE EXTENSION hypopg;
        CREATE TABLE "Event Log" (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
        CREATE TABLE "Event Log 2025" PARTITION OF "Event Log" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE "Event Log 2026" PARTITION OF "Event Log" FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO "Event Log" SELECT g, date '2025-06-01' + (g % 400), 'k' || (g % 500) FROM generate_series(1, 60000) g;
        ANALYZE;""")
    findings = run(pg_db.url, ['SELECT * FROM "Event Log" WHERE kind = $1 AND at = $2'])
    [index] = [f for f in findings if f.object == 'public."Event Log"']
    # One index at the parent, not one per partition: the partitions' plans combine two single-column
    # indexes (BitmapAnd) and no wider one halves their cost, so the better of the two alone
    # (dexter's third pass): kind, the more selective.
    assert index.evidence["definition"].endswith('ON public."Event Log" (kind)')
    assert index.evidence["statements"][0]["cost_before"] > 1000  # every partition planned: none pruned away
    commands = [step.command for step in index.fix.steps]
    assert commands[0].startswith('CREATE INDEX "Event Log_kind') and " ON ONLY " in commands[0]
    assert len(commands) == 5  # the parent's, then per partition: build concurrently, attach


def test_two_statements_on_one_table_get_two_indexes_and_a_fresh_database_is_a_gate(pg_db):
    pg_db.execute("""
        CREATE EXTENSION hypopg;
        CREATE TABLE orders (id bigint, user_id bigint, total numeric);""")  # never analysed, as after a migration
    findings = run(pg_db.url, ["SELECT * FROM orders WHERE id = $1", "SELECT * FROM orders WHERE user_id = $1"])
    assert sorted(served(findings)) == ["public.orders (id)", "public.orders (user_id)"]


def test_without_hypopg_the_declared_queries_are_not_advised_and_nothing_is_claimed(pg_db):
    pg_db.execute("CREATE TABLE orders (id bigint, user_id bigint);")
    findings = run(pg_db.url, ["SELECT * FROM orders WHERE user_id = $1"])
    assert findings == []  # no large table, no planner: nothing is claimed either way


def test_the_same_statements_get_the_same_advice_twice(dexter_db):
    """Issue #25 item 3: two runs over unchanged data give identical findings."""
    queries = ["SELECT * FROM posts WHERE user_id = 1 AND blog_id = 2", "SELECT * FROM posts WHERE user_id = 1 AND blog_id < 10",
               "SELECT * FROM events_0 WHERE blog_id = 1", "SELECT * FROM posts ORDER BY user_id, blog_id LIMIT 10"]
    first, second = run(dexter_db.url, queries), run(dexter_db.url, queries)
    assert first and [f.to_dict() for f in first] == [f.to_dict() for f in second]
