"""Pure parts of the fix engine: refusals, step grouping, index-name parsing, key records, the
verdict when nothing can be re-checked, and the text of steps and migration scripts."""

from __future__ import annotations

import asyncio

import pytest

from checks.config import config_from_dict
from checks.registry import Registry
from checks.fixes import _judge_undone, fix_entry, refusals_for, verify_after
from checks.postgres.executor import concurrent_build, groups
from checks.redis.executor import KeysLog, decode_key, encode_key
from checks.engines import step_text
from checks.redis.adapter import redis_quote
from checks.fixes.script import migration_script
from checks.model import Finding, Fix, FixSafety, FixStep, Report, Severity
from checks.postgres.connection import PostgresConnection


def target(**extra):
    return config_from_dict({"targets": {"t": {"kind": "postgres", "url": "postgresql://u@h/db", **extra}}}).targets["t"]


SQL = FixStep("sql", "CREATE INDEX CONCURRENTLY i ON t (c)", transactional=False)


@pytest.mark.parametrize(
    "safety, allow_fixes, allow_unsafe, role, expected",
    [
        (FixSafety.SAFE, True, False, "primary", []),
        (FixSafety.SAFE, False, False, "primary", ["does not allow fixes"]),
        (FixSafety.UNSAFE, True, False, "primary", ["unsafe fix"]),
        (FixSafety.UNSAFE, True, True, "primary", []),
        (FixSafety.MANUAL, True, True, "primary", ["manual fix"]),
        (FixSafety.MANUAL, False, False, None, ["manual fix", "does not allow fixes"]),
        (FixSafety.SAFE, True, False, "replica", ["is a replica"]),
        (FixSafety.SAFE, True, False, "secondary of rs0", ["is a secondary of rs0"]),
    ],
)
def test_refusals(safety, allow_fixes, allow_unsafe, role, expected):
    fix = Fix(summary="s", steps=(SQL,), safety=safety, lock="ACCESS EXCLUSIVE")
    refusals = refusals_for("t", target(allow_fixes=allow_fixes), fix, allow_unsafe=allow_unsafe, role=role)
    assert len(refusals) == len(expected)
    for reason, fragment in zip(refusals, expected):
        assert fragment in reason


def test_unsafe_refusal_names_the_lock_and_the_flag():
    fix = Fix(summary="s", steps=(SQL,), safety=FixSafety.UNSAFE, lock="ACCESS EXCLUSIVE on orders")
    [reason] = refusals_for("t", target(allow_fixes=True), fix, allow_unsafe=False)
    assert "ACCESS EXCLUSIVE on orders" in reason and "--allow-unsafe" in reason


def test_no_fix_is_refused():
    assert refusals_for("t", target(allow_fixes=True), None, allow_unsafe=True) == ["this finding has no fix dbvitals can apply"]


@pytest.mark.parametrize(
    "sql, name, table",
    [
        ("CREATE INDEX CONCURRENTLY orders_c_idx ON public.orders (c)", "orders_c_idx", "public.orders"),
        ("create unique index concurrently if not exists Ix ON orders USING btree (c)", "ix", "orders"),
        ('CREATE INDEX CONCURRENTLY "Mixed Case" ON ONLY "S"."T" (c)', "Mixed Case", '"S"."T"'),
        ("CREATE INDEX CONCURRENTLY ON orders (c)", None, "orders"),
    ],
)
def test_concurrent_build_names_the_index_and_table(sql, name, table):
    build = concurrent_build(sql)
    assert (build.name, build.table) == (name, table)


@pytest.mark.parametrize("sql", ["CREATE INDEX i ON t (c)", "DROP INDEX CONCURRENTLY i", "ALTER TABLE t ADD c int"])
def test_other_statements_are_not_concurrent_builds(sql):
    assert concurrent_build(sql) is None


def test_consecutive_transactional_steps_group_and_concurrent_ones_stand_alone():
    a, b = FixStep("sql", "ALTER 1"), FixStep("sql", "ALTER 2")
    c = FixStep("sql", "CREATE INDEX CONCURRENTLY x ON t (c)", transactional=False)
    d = FixStep("sql", "DROP INDEX CONCURRENTLY y", transactional=False)
    shape = [[i for i, _ in g] for g in groups([a, b, c, d, a])]
    assert shape == [[0, 1], [2], [3], [4]]


@pytest.mark.parametrize("key", [b"session:1", "caf\u00e9".encode(), b"\xff\xfe binary"])
def test_keys_round_trip_through_json(key):
    assert decode_key(encode_key(key)) == key


def test_keys_log_undoes_expired_keys_and_an_interrupted_batch(tmp_path):
    log = KeysLog(tmp_path / "k.jsonl")
    log.write({"started": True, "cursor": 0, "run_id": "r1"})
    log.write({"batch": 1, "pending": ["a", "b", "c"]})
    log.write({"batch": 1, "expired": ["a", "c"], "cursor": 17})  # b got a TTL elsewhere meanwhile
    log.write({"batch": 2, "pending": ["d", {"hex": "ff"}]})  # the process died here
    assert log.touched_keys() == [b"a", b"c", b"d", b"\xff"]
    assert log.resume_point() == (17, "r1")
    log.write({"done": True, "cursor": 0})
    assert log.resume_point() is None


def test_keys_log_reads_past_lines_that_are_json_but_not_records(tmp_path):
    path = tmp_path / "k.jsonl"
    log = KeysLog(path)
    log.write({"batch": 1, "pending": ["a"]})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('[1, 2]\n"text"\n7\n')
    log.write({"batch": 1, "expired": ["a"], "cursor": 0})
    assert log.touched_keys() == [b"a"]


@pytest.mark.parametrize(
    "arg, quoted",
    [("timeout", "timeout"), ("two words", '"two words"'), ('say "hi"', '"say \\"hi\\""'), ("", '""')],
)
def test_redis_cli_quoting(arg, quoted):
    assert redis_quote(arg) == quoted


def test_step_text_in_each_language():
    assert step_text(FixStep("sql", "DROP INDEX CONCURRENTLY i")) == "DROP INDEX CONCURRENTLY i;"
    mongo = FixStep("mongodb", {"dropIndexes": "orders", "index": "a_1"}, database="app")
    assert step_text(mongo) == 'db.getSiblingDB("app").runCommand({"dropIndexes": "orders", "index": "a_1"});'
    assert step_text(FixStep("redis", ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])) == "CONFIG SET maxmemory-policy allkeys-lru"
    op = FixStep("redis", {"op": "expire-missing-ttl", "db": 3, "match": "session:*", "regex": "session:[^:]+",
                           "ttl_seconds": 60})
    assert "EXPIRE \"$key\" 60 NX" in step_text(op) and "redis-cli -n 3 --scan --pattern 'session:*'" in step_text(op)


def finding(fix, object_="public.orders"):
    return Finding(id="abc123abc123", check="postgres.fk-missing-index", severity=Severity.MEDIUM, target="pg",
                   object=object_, title="No index", message="m", fix=fix)


def test_sql_script_runs_concurrent_steps_outside_transactions_and_comments_the_inverse_and_manual_fixes():
    safe = Fix(summary="index", safety=FixSafety.SAFE, lock="SHARE UPDATE EXCLUSIVE",
               steps=(FixStep("sql", "CREATE INDEX CONCURRENTLY i ON orders (c)", transactional=False),),
               inverse=(FixStep("sql", "DROP INDEX CONCURRENTLY IF EXISTS i", transactional=False),))
    alter = Fix(summary="alter", safety=FixSafety.UNSAFE, lock="ACCESS EXCLUSIVE",
                steps=(FixStep("sql", "ALTER TABLE a ALTER c TYPE bigint"), FixStep("sql", "ANALYZE a")))
    manual = Fix(summary="split", safety=FixSafety.MANUAL, steps=(FixStep("sql", "DROP TABLE a"),))
    text = migration_script("postgres", "pg", "postgresql://u:***@h/db", "postgres.fk-missing-index",
                            [finding(safe), finding(alter, "a"), finding(manual, "b"), finding(None, "c")],
                            generated_at="2026-01-01T00:00:00+00:00", version="1.0")
    lines = text.splitlines()
    assert "CREATE INDEX CONCURRENTLY i ON orders (c);" in lines
    assert "-- to undo:" in lines and "--   DROP INDEX CONCURRENTLY IF EXISTS i;" in lines
    begin = lines.index("BEGIN;")
    assert lines[begin + 1:begin + 4] == ["ALTER TABLE a ALTER c TYPE bigint;", "ANALYZE a;", "COMMIT;"]
    assert "-- DROP TABLE a;" in lines and "DROP TABLE a;" not in lines
    assert "SET lock_timeout = 5000;" in lines
    assert "3 findings with a fix" in text


def test_mongosh_script_carries_max_time_ms():
    fix = Fix(summary="index", safety=FixSafety.SAFE,
              steps=(FixStep("mongodb", {"createIndexes": "orders", "indexes": [{"key": {"a": 1}, "name": "a_1"}]},
                             database="app"),))
    text = migration_script("mongodb", "docs", "mongodb://h/app", "mongodb.x", [finding(fix)],
                            generated_at="now", version="1.0")
    assert ('must(db.getSiblingDB("app").runCommand({"createIndexes": "orders", "indexes": [{"key": {"a": 1}, '
            '"name": "a_1"}], "maxTimeMS": 1800000}));') in text.splitlines()
    # runCommand does not throw on {ok: 0}: must() does, so a failed step stops the script.
    assert "function must(result) {" in text and "if (!result.ok) { throw" in text


@pytest.mark.parametrize("database", [None, "app"])
def test_command_documents_carry_max_time_ms(database):
    from pathlib import Path

    from checks.fixes.execution import Execution, FixLimits
    from checks.mongodb.executor import command_document

    target = config_from_dict({"targets": {"d": {"kind": "mongodb", "url": "mongodb://h/app"}}}).targets["d"]
    run = Execution("d", target, "e", Path("."), FixLimits(statement_timeout_s=12))
    step = FixStep("mongodb", {"collMod": "s", "index": {"name": "x", "expireAfterSeconds": 5}}, database=database)
    document = command_document(step, run)
    assert list(document) == ["collMod", "index", "maxTimeMS"] and document["maxTimeMS"] == 12000


def test_a_fix_whose_check_cannot_run_again_is_not_fixed_and_unverified(tmp_path):
    """Nothing shows the fix took: a server that refuses the re-check (a closed port here) makes
    the outcome not_fixed, unverified, with the reason; never `fixed`."""
    settings = config_from_dict({"targets": {"t": {"kind": "postgres", "url": "postgresql://u@127.0.0.1:1/db",
                                                   "timeout": 1}}})
    registry = Registry()
    registry.add(PostgresConnection, "builtin")
    finding = {"id": "f" * 12, "check": PostgresConnection.id, "object": "t", "title": "t", "severity": "low"}
    entry = fix_entry("fix", "t", settings.targets["t"], finding, None, (), ())

    def never_judged(*_):
        raise AssertionError("there was no report to judge")

    outcome, verified, message = asyncio.run(verify_after(settings, registry, entry, never_judged))
    assert (outcome, verified) == ("not_fixed", None)
    assert message.startswith("applied; could not verify")


def test_an_undo_is_judged_by_the_object_when_the_id_changed_but_never_by_a_guess():
    def found(fid: str, obj: str) -> Finding:
        return Finding(fid, "postgres.redundant-index", Severity.LOW, "pg", obj, "t", "m")

    fixed = {"id": "a" * 12, "check": "postgres.redundant-index", "object": "public.i", "title": "t", "severity": "low"}
    same = _judge_undone(Report([], [found("a" * 12, "public.i")], [], 0.0), fixed)
    moved = _judge_undone(Report([], [found("b" * 12, "public.i")], [], 0.0), fixed)
    unclear = _judge_undone(Report([], [found("b" * 12, "public.i"), found("c" * 12, "public.i")], [], 0.0), fixed)
    gone = _judge_undone(Report([], [found("b" * 12, "public.j")], [], 0.0), fixed)
    assert same[:2] == ("fixed", True) and moved[:2] == ("fixed", True) and "as finding bbbbbbbbbbbb" in moved[2]
    assert unclear[:2] == ("not_fixed", False) and "cannot be told" in unclear[2]
    assert gone[:2] == ("not_fixed", False)
