"""postgres.sequence-exhaustion against a real server: pg-index-health's sequence fixture (in the
default and a custom schema), a sequence created near the end of an integer column, the rate
measured while another session draws values, and quiet healthy sequences."""

from __future__ import annotations

import asyncio

import asyncpg

from checks.model import Severity
from tests import support

CHECK = "postgres.sequence-exhaustion"


def run(url: str, **options):
    settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: options}})
    report = support.run_report(settings, checks=[CHECK])
    assert report.errors == []
    return {f.object: f for f in report.findings}


def test_pg_index_health_sequences_in_two_schemas_and_not_the_cycling_one(pg_db):
    for schema in ("public", "custom"):
        pg_db.execute(f"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE SEQUENCE {schema}.seq_1 AS smallint INCREMENT BY 1 MAXVALUE 100 START 92;
            CREATE SEQUENCE {schema}.seq_3 AS integer INCREMENT BY 2 MAXVALUE 100 START 92;
            CREATE SEQUENCE {schema}.seq_5 AS bigint INCREMENT BY 10 MAXVALUE 100 START 92;
            CREATE SEQUENCE {schema}.seq_cycle AS bigint INCREMENT BY 10 MAXVALUE 100 START 92 CYCLE;""")
    findings = run(pg_db.url, sample_seconds=0)
    assert sorted(findings) == [f"{s}.seq_{n}" for s in ("custom", "public") for n in (1, 3, 5)]
    seq_1 = findings["public.seq_1"]
    assert seq_1.severity is Severity.CRITICAL
    assert seq_1.evidence["remaining_values"] == 8 and seq_1.evidence["called"] is False
    assert round((1 - seq_1.evidence["used"]) * 100, 2) == 8.08  # pg-index-health's figure
    assert seq_1.fix.steps[0].command == "ALTER SEQUENCE public.seq_1 AS bigint MAXVALUE 9223372036854775807;"


def test_a_sequence_started_near_the_integer_limit_is_as_urgent_as_one_restarted_there(pg_db):
    pg_db.execute("""
        CREATE TABLE started (id integer PRIMARY KEY);
        CREATE SEQUENCE started_id_seq AS bigint START 2000000000 OWNED BY started.id;
        ALTER TABLE started ALTER COLUMN id SET DEFAULT nextval('started_id_seq');
        CREATE TABLE restarted (id serial PRIMARY KEY);
        ALTER SEQUENCE restarted_id_seq RESTART 2000000000;
        SELECT nextval('restarted_id_seq');""")
    findings = run(pg_db.url, sample_seconds=0)
    started, restarted = findings["public.started_id_seq"], findings["public.restarted_id_seq"]
    # Neither table took an insert: the runway is years whatever the share, and the same for both.
    assert started.severity is restarted.severity is Severity.LOW
    assert started.evidence["runway"].startswith("runs out in more than")
    assert started.evidence["used"] == restarted.evidence["used"]
    assert "integer column" in started.evidence["limited_by"]
    assert started.fix.steps[0].command == "ALTER TABLE public.started ALTER COLUMN id TYPE bigint;"


async def _draw_while_checking(url: str):
    conn = await asyncpg.connect(url)
    stop = asyncio.Event()

    async def draw():
        while not stop.is_set():
            await conn.execute("INSERT INTO busy DEFAULT VALUES")
            await asyncio.sleep(0.01)

    drawing = asyncio.create_task(draw())
    try:
        settings = support.settings_for(pg={"kind": "postgres", "url": url, "checks": {CHECK: {"sample_seconds": 1}}})
        return await support.run_report_async(settings, checks=[CHECK])
    finally:
        stop.set()
        await drawing
        await conn.close()


def test_rate_and_estimated_exhaustion_come_from_two_readings(pg_db):
    pg_db.execute("CREATE TABLE busy (id serial PRIMARY KEY); ALTER SEQUENCE busy_id_seq RESTART 2100000000;")
    report = asyncio.run(_draw_while_checking(pg_db.url))
    [finding] = report.findings
    assert finding.evidence["rate_per_second"] > 1
    assert "two readings" in finding.evidence["rate_from"]
    assert finding.evidence["estimated_exhaustion"].endswith("UTC")
    assert "runs out around" in finding.message


def test_rate_falls_back_to_inserts_since_the_statistics_reset(pg_db):
    pg_db.execute("CREATE TABLE quiet (id serial PRIMARY KEY); INSERT INTO quiet SELECT FROM generate_series(1, 50);"
                  "SELECT setval('quiet_id_seq', 2100000000);")
    # The cumulative statistics reach the views asynchronously (flushed every 500 ms at most).
    asyncio.run(support.pg_until(pg_db.url, "SELECT coalesce(sum(n_tup_ins), 0) >= 50 FROM pg_stat_user_tables "
                                 "WHERE relname = 'quiet'"))
    [finding] = run(pg_db.url, sample_seconds=0.2).values()
    assert "50 inserts into public.quiet since" in finding.evidence["rate_from"]
    assert finding.evidence["exhausted_in_days"] > 0


def test_healthy_and_cycling_sequences_are_quiet(pg_db):
    pg_db.execute("""
        CREATE TABLE fine (id bigserial PRIMARY KEY, n serial);
        INSERT INTO fine DEFAULT VALUES;
        CREATE SEQUENCE ring AS smallint MAXVALUE 10 CYCLE;
        SELECT setval('ring', 10);""")
    assert run(pg_db.url) == {}


def test_a_sequence_at_99_percent_that_does_not_grow_is_not_critical(pg_db):
    pg_db.execute("CREATE TABLE quiet (id serial PRIMARY KEY); SELECT setval('quiet_id_seq', 2140000000);")
    [finding] = run(pg_db.url, sample_seconds=0.2).values()
    assert finding.evidence["used"] > 0.99
    assert finding.severity is Severity.LOW
    assert "no insert into public.quiet" in finding.evidence["rate_from"]
    assert finding.title == "quiet_id_seq has used 99.7% of its range"
    assert finding.evidence["runway"].startswith("runs out in more than")


def test_a_sequence_with_no_rate_to_go_by_keeps_the_share_and_says_so(pg_db):
    pg_db.execute("CREATE SEQUENCE loose AS integer START 2140000000;")  # feeds no table: no insert count
    [finding] = run(pg_db.url, sample_seconds=0).values()
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["runway"] == "runway unknown" and "Runway unknown" in finding.message
