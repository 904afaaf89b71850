"""postgres.bloat against the real server: a table and its index left at a tenth of their rows,
estimated from the statistics, then measured with pgstattuple; the index rebuilt by its fix; a
compact table is quiet."""

from __future__ import annotations

from checks.model import FixSafety, Severity
from tests import support

CHECK = "postgres.bloat"
SMALL = {"min_bytes": 100 * 1024}

SPARSE = """
CREATE TABLE events (id bigint PRIMARY KEY, kind int NOT NULL, payload text NOT NULL);
INSERT INTO events SELECT g, g % 7, repeat('x', 80) FROM generate_series(1, 50000) g;
CREATE INDEX events_kind_id ON events (kind, id);
DELETE FROM events WHERE id % 10 <> 0;
"""


def run(url: str, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: options}})
    report = support.run_report(settings, checks=[CHECK])
    assert report.errors == []
    return {f.object: f for f in report.findings}


def test_estimated_without_pgstattuple_then_measured_with_it_and_rebuilt(pg_db):
    pg_db.execute(SPARSE)
    pg_db.execute("VACUUM ANALYZE events")
    estimated = run(pg_db.url, **SMALL)
    assert {"public.events", "public.events_kind_id", "public.events_pkey"} <= set(estimated)
    table = estimated["public.events"]
    assert table.severity is Severity.LOW and table.evidence["method"].startswith("estimate")
    assert table.evidence["estimated_share"] > 0.8
    assert table.fix.safety is FixSafety.MANUAL and "pg_repack" in table.fix.notes
    pg_db.execute("CREATE EXTENSION pgstattuple")
    measured = run(pg_db.url, **SMALL)
    index = measured["public.events_kind_id"]
    assert index.severity is Severity.MEDIUM and index.evidence["measured_share"] > 0.5
    assert "pgstatindex" in index.evidence["method"]
    assert index.fix.steps[0].command == "REINDEX INDEX CONCURRENTLY public.events_kind_id;"
    assert measured["public.events"].evidence["measured_share"] > 0.5
    for step in index.fix.steps:
        pg_db.execute(step.command)
    pg_db.execute("ANALYZE events")
    assert "public.events_kind_id" not in run(pg_db.url, **SMALL)
    assert run(pg_db.url) == {}  # nothing near the 100 MB default


def test_a_compact_table_is_quiet(pg_db):
    pg_db.execute("""CREATE TABLE dense (id bigint PRIMARY KEY, v text);
                     INSERT INTO dense SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
                     CREATE INDEX dense_v ON dense (v);
                     ANALYZE dense;""")
    assert run(pg_db.url, **SMALL) == {}


def test_pgstattuple_measures_at_most_confirm_relations(pg_db):
    """Issue #25 item 7: the per-relation measure is bounded; the rest stay labelled estimates."""
    pg_db.execute(SPARSE + "CREATE EXTENSION pgstattuple;")
    pg_db.execute("VACUUM ANALYZE events")
    findings = run(pg_db.url, **SMALL, confirm=1)
    methods = [f.evidence["method"] for f in findings.values()]
    assert len(methods) >= 3
    assert sum(m.startswith("measured") for m in methods) <= 1
    assert sum(m.startswith("estimate") for m in methods) >= len(methods) - 1
    assert run(pg_db.url, **SMALL, confirm=1).keys() == findings.keys()  # the same relations twice
