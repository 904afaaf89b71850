"""postgres.fk-type-mismatch's widened implied references against a real server: integer columns
an id migration to uuid left behind under names that are not exactly `<table>_id`, each judged
with how sure it is, from one set-based pass over the values; and its cost."""

from __future__ import annotations

import time

from checks.model import Severity
from tests import support

SCHEMA = """
CREATE TABLE groups (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), legacy_id integer);
INSERT INTO groups (legacy_id) SELECT g FROM generate_series(1, 50) g;
CREATE TABLE posts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), legacy_id integer);
INSERT INTO posts (legacy_id) SELECT g FROM generate_series(1, 100) g;
CREATE TABLE org_structures (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), legacy_id integer);
CREATE TABLE challenges (id bigint PRIMARY KEY, min_group_id_required integer, last_post_id integer,
    structure_id integer, external_user_id integer, attempts_id_hint integer);
INSERT INTO challenges SELECT g, 1 + g % 50, 1 + g % 100, g % 7, g, g + 1000 FROM generate_series(1, 400) g;
ANALYZE;
"""


def run(url: str):
    settings = support.settings_for(pg={"kind": "postgres", "url": url})
    report = support.run_report(settings, checks=["postgres.fk-type-mismatch"])
    assert report.errors == []
    return {f.object: f for f in report.findings}


def test_integer_columns_tied_to_uuid_keys_by_a_wider_name_say_how_sure(pg_db):
    """Issue #25 item 9: min_group_id_required, structure_id and last_post_id were missed."""
    pg_db.execute(SCHEMA)

    def reads() -> dict[str, int]:
        return {r["relname"]: r["seq_tup_read"] for r in pg_db.fetch(
            "SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE relname IN ('challenges', 'groups', 'posts')")}

    pg_db.execute("SELECT pg_stat_force_next_flush()")
    before = reads()
    findings = run(pg_db.url)
    assert sorted(findings) == ["public.challenges.last_post_id", "public.challenges.min_group_id_required",
                                "public.challenges.structure_id"]
    group = findings["public.challenges.min_group_id_required"]
    assert group.evidence["referenced_key"] == "public.groups(id)"
    assert group.evidence["confidence"]["level"] == "high" and group.severity is Severity.HIGH
    assert group.evidence["confidence"]["matched"] == 400
    assert "How sure: high (400 of 400 non-null values are ids in public.groups.legacy_id" in group.message
    assert findings["public.challenges.last_post_id"].evidence["referenced_key"] == "public.posts(id)"
    structure = findings["public.challenges.structure_id"]  # org_structures has no legacy id: the name only
    assert structure.evidence["referenced_key"] == "public.org_structures(id)"
    assert structure.evidence["confidence"]["level"] == "low" and structure.severity is Severity.MEDIUM
    # external_user_id is another system's id; the values of a name match that are no legacy ids are no reference.
    assert "public.challenges.external_user_id" not in findings
    # Cost: one pass per reference over what it reads, never a pass per row. The check's session
    # reports its reads when it ends, a moment after the run: wait for them.
    deadline = time.monotonic() + 30
    while (after := reads())["challenges"] == before["challenges"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["challenges"] > before["challenges"]
    assert after["challenges"] - before["challenges"] <= 4 * 2 * 400  # two queries per widened reference at most
    assert after["groups"] - before["groups"] <= 2 * 2 * 50
    assert after["posts"] - before["posts"] <= 2 * 2 * 100
    assert run(pg_db.url) == findings  # the same answer twice


def test_a_type_change_is_not_offered_while_values_do_not_cast(pg_db):
    """Issue #25 item 5: uncastable values for a type change are counted before the fix is offered."""
    pg_db.execute("""
        CREATE TABLE accounts (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
        INSERT INTO accounts SELECT FROM generate_series(1, 20);
        CREATE TABLE payments (id bigint PRIMARY KEY, account_id text);
        INSERT INTO payments SELECT g, (SELECT id FROM accounts ORDER BY id OFFSET g % 20 LIMIT 1)::text
        FROM generate_series(1, 200) g;
        INSERT INTO payments VALUES (201, 'n/a'), (202, ''), (203, NULL), (204, '{' || gen_random_uuid() || '}');""")
    [finding] = run(pg_db.url).values()
    assert finding.object == "public.payments.account_id"
    assert finding.evidence["precondition"]["failing"] == 2 and finding.evidence["precondition"]["samples"] == ["", "n/a"]
    assert finding.fix.safety.value == "manual"
    assert len(pg_db.fetch(finding.fix.steps[0].command)) == 2  # the listing names exactly those rows
    pg_db.execute("DELETE FROM payments WHERE id IN (201, 202)")
    [finding] = run(pg_db.url).values()
    assert finding.evidence["precondition"]["failing"] == 0 and finding.fix.safety.value == "unsafe"
    pg_db.execute(finding.fix.steps[0].command)  # the cast the count vouched for goes through
