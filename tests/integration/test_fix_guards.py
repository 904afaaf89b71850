"""Undo undoes only what dbvitals did, and an interrupted index build is cleaned up by the next
run, on real servers with the built-in packs' own fixes:

- an index the fix created and the user since replaced (same name, other columns, or rebuilt
  with another OID) is never dropped by `dbvitals undo`; nor a Redis setting changed since, nor a
  MongoDB index replaced under the same name;
- `kill -9` of `dbvitals fix` mid-CREATE INDEX CONCURRENTLY: postgres.invalid-index names the
  journal entry that left the INVALID index, the rerun drops that leftover and builds the same
  name (never an INVALID index dbvitals did not create);
- the process killed while the server finishes the build: undo finds the index and drops it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from checks.config import config_from_dict
from checks.registry import load_registry
from checks.runner import Runner
from checks.fixes import Journal, apply_fix, plan_fix, undo_fix
from checks.model import finding_id
from console.cli import main
from tests.integration.test_fix_redis import PASSWORD as REDIS_PASSWORD
from tests.integration.test_fix_redis import PrivateRedis
from tests.support import kill_fix_mid_build

FK = "postgres.fk-missing-index"
CHILD_FK = finding_id(FK, "pg", "public.child(parent_id)", "child_parent_id_fkey")
CHILD_FK_AT = f"pg/{FK}/{CHILD_FK}"  # `dbvitals fix` with no report before it needs where to look


@pytest.fixture
def child(pg_db):
    pg_db.execute("CREATE TABLE parent (id bigint PRIMARY KEY)")
    pg_db.execute("CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent (id), note text)")
    pg_db.execute("INSERT INTO parent SELECT g FROM generate_series(1, 50) g")
    pg_db.execute("INSERT INTO child SELECT g, g % 50 + 1, 'n' FROM generate_series(1, 2000) g")
    return pg_db


def settings_for(tmp_path, **target):
    return config_from_dict({"targets": {"pg": {"allow_fixes": True, **target}},
                             "journal": str(tmp_path / "journal.jsonl")})


def child_indexes(pg_db) -> dict[str, tuple[bool, str]]:
    rows = pg_db.fetch("SELECT c.relname, i.indisvalid, pg_get_indexdef(c.oid) AS definition FROM pg_index i "
                       "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'child'::regclass AND NOT i.indisprimary")
    return {r["relname"]: (r["indisvalid"], r["definition"]) for r in rows}


def fix_child_fk(settings):
    registry = load_registry()
    report = asyncio.run(Runner(settings, registry, checks=[FK]).run())
    [finding] = [f for f in report.findings if f.id == CHILD_FK]
    plan = asyncio.run(plan_fix(settings, registry, finding))
    return registry, asyncio.run(apply_fix(settings, registry, plan))


def test_undo_refuses_to_drop_an_index_replaced_under_the_same_name(child, tmp_path, capsys):
    settings = settings_for(tmp_path, kind="postgres", url=child.url)
    registry, outcome = fix_child_fk(settings)
    assert outcome.outcome == "fixed", outcome.message
    entry = Journal(tmp_path / "journal.jsonl").get(outcome.entry_id)
    [expect] = entry.expect
    assert expect["index"] == "public.child_parent_id_idx"
    assert expect["definition"] == "CREATE INDEX child_parent_id_idx ON public.child USING btree (parent_id)"
    config = write_config(tmp_path, child.url)
    assert main(["history", entry.id, "--config", str(config)]) == 0
    assert f"undo sees index public.child_parent_id_idx (OID {expect['oid']}): CREATE INDEX" in capsys.readouterr().out

    child.execute("DROP INDEX child_parent_id_idx")
    child.execute("CREATE INDEX child_parent_id_idx ON child (note)")  # the user's own, same name
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "refused"
    assert "index public.child_parent_id_idx is not the one this fix created" in undo.message
    assert "USING btree (note)" in undo.message and "dbvitals will not drop it" in undo.message
    assert child_indexes(child) == {
        "child_parent_id_idx": (True, "CREATE INDEX child_parent_id_idx ON public.child USING btree (note)")}

    # The same definition built again by someone else is another index (another OID): not ours either.
    child.execute("DROP INDEX child_parent_id_idx")
    child.execute("CREATE INDEX child_parent_id_idx ON child (parent_id)")
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "refused" and f"the fix left OID {expect['oid']}" in undo.message
    assert list(child_indexes(child)) == ["child_parent_id_idx"]

    child.execute("DROP INDEX child_parent_id_idx")
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "refused" and "no longer exists" in undo.message


def test_undo_refuses_to_recreate_a_dropped_index_over_a_name_taken_since(child, tmp_path):
    child.execute("CREATE INDEX child_note_idx ON child (note)")
    child.execute("CREATE INDEX child_note_copy ON child (note)")
    settings = settings_for(tmp_path, kind="postgres", url=child.url)
    registry = load_registry()
    report = asyncio.run(Runner(settings, registry, checks=["postgres.duplicate-index"]).run())
    [finding] = report.findings
    plan = asyncio.run(plan_fix(settings, registry, finding))
    dropped = finding.object.split(".")[1]
    outcome = asyncio.run(apply_fix(settings, registry, plan))
    assert outcome.outcome == "fixed", outcome.message
    child.execute(f"CREATE INDEX {dropped} ON child (parent_id)")  # the name, taken again by someone else
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "refused" and f"public.{dropped} exists again" in undo.message
    assert child_indexes(child)[dropped][1].endswith("(parent_id)")


def run_fix_and_kill_it_mid_build(url: str, config: Path, *, finish_build: bool) -> None:
    """`dbvitals fix` in a process of its own, kill -9 once its CREATE INDEX CONCURRENTLY waits
    for a writer. Then either end its orphaned backend (the build stays INVALID, as after a
    server restart), or let the backend finish the build without its client."""
    program = f"import sys; from console.cli import main; sys.exit(main(['fix', '{CHILD_FK_AT}', '--yes', " \
              f"'--lock-timeout', '60', '--config', '{config}']))"

    async def scenario() -> None:
        # The build waits for this writer.
        await kill_fix_mid_build(url, program, "INSERT INTO child VALUES (99999, 1, 'x')", end_backend=not finish_build)
        if finish_build:  # the orphaned backend goes on and finishes the build
            admin = await asyncpg.connect(url)
            try:
                for _ in range(400):
                    if await admin.fetchval("SELECT bool_and(indisvalid) AND count(*) = 2 FROM pg_index "
                                            "WHERE indrelid = 'child'::regclass"):
                        break
                    await asyncio.sleep(0.05)
            finally:
                await admin.close()

    asyncio.run(scenario())


def write_config(tmp_path, url) -> Path:
    path = tmp_path / "dbvitals.toml"
    path.write_text(f'journal = "{tmp_path / "journal.jsonl"}"\n\n[targets.pg]\nkind = "postgres"\n'
                    f'url = "{url}"\nallow_fixes = true\n')
    return path


def test_a_killed_build_is_named_by_invalid_index_and_replaced_by_the_rerun_under_the_same_name(child, tmp_path, capsys):
    config = write_config(tmp_path, child.url)
    run_fix_and_kill_it_mid_build(child.url, config, finish_build=False)
    [killed] = Journal(tmp_path / "journal.jsonl").entries()
    assert killed.outcome is None
    assert child_indexes(child) == {
        "child_parent_id_idx": (False, "CREATE INDEX child_parent_id_idx ON public.child USING btree (parent_id)")}

    settings = settings_for(tmp_path, kind="postgres", url=child.url)
    report = asyncio.run(Runner(settings, load_registry(), checks=["postgres.invalid-index", FK]).run())
    [invalid] = [f for f in report.findings if f.check == "postgres.invalid-index"]
    assert invalid.object == "public.child_parent_id_idx"
    assert invalid.evidence["left_by"]["journal_entry"] == killed.id and invalid.evidence["left_by"]["state"] == "unfinished"
    assert f"journal entry {killed.id}" in invalid.message
    [missing] = [f for f in report.findings if f.check == FK]
    assert "CREATE INDEX CONCURRENTLY child_parent_id_idx ON public.child" in missing.fix.steps[0].command  # same name

    capsys.readouterr()
    assert main(["fix", CHILD_FK_AT, "--yes", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"dropped INVALID index public.child_parent_id_idx left by an earlier, interrupted build (journal entry {killed.id})" in out
    assert child_indexes(child) == {
        "child_parent_id_idx": (True, "CREATE INDEX child_parent_id_idx ON public.child USING btree (parent_id)")}
    # The killed entry's leftover is gone; what is there is the rerun's, to undo through the rerun's entry.
    assert main(["undo", killed.id, "--yes", "--config", str(config)]) == 3
    assert "undo" in capsys.readouterr().out
    assert main(["history", "--config", str(config)]) == 0
    assert "DID NOT FINISH" in capsys.readouterr().out


def test_an_invalid_index_dbvitals_did_not_create_is_never_dropped(child, tmp_path):
    child.execute("CREATE INDEX child_parent_id_idx ON child (parent_id)")
    child.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'child_parent_id_idx'::regclass")
    oid = child.fetch("SELECT 'child_parent_id_idx'::regclass::oid::int8 AS oid")[0]["oid"]
    settings = settings_for(tmp_path, kind="postgres", url=child.url)
    _, outcome = fix_child_fk(settings)
    assert outcome.outcome == "failed"
    assert "an INVALID index public.child_parent_id_idx is in the way and no journal entry of dbvitals was building it" in outcome.message
    assert child.fetch("SELECT 'child_parent_id_idx'::regclass::oid::int8 AS oid")[0]["oid"] == oid
    assert child_indexes(child)["child_parent_id_idx"][0] is False


def test_undo_of_a_killed_fix_whose_build_the_server_finished_drops_the_index(child, tmp_path, capsys):
    config = write_config(tmp_path, child.url)
    run_fix_and_kill_it_mid_build(child.url, config, finish_build=True)
    [killed] = Journal(tmp_path / "journal.jsonl").entries()
    assert killed.outcome is None and killed.steps_done == 0
    assert child_indexes(child) == {
        "child_parent_id_idx": (True, "CREATE INDEX child_parent_id_idx ON public.child USING btree (parent_id)")}
    capsys.readouterr()
    assert main(["undo", killed.id, "--yes", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "found index public.child_parent_id_idx as the unfinished fix left it (valid" in out
    assert child_indexes(child) == {}
    [undo] = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e.undoes == killed.id]
    assert undo.outcome == "fixed" and "found index public.child_parent_id_idx" in undo.message
    assert main(["history", "--config", str(config)]) == 0
    history = capsys.readouterr().out
    assert "DID NOT FINISH" in history and f"undo {killed.id}" in history


def test_undo_of_a_redis_setting_changed_since_is_refused(tmp_path):
    from tests.data import fix_checks

    server = PrivateRedis(tmp_path, "--requirepass", REDIS_PASSWORD)
    try:
        url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"
        settings = config_from_dict({"targets": {"cache": {"kind": "redis", "url": url, "allow_fixes": True}},
                                     "journal": str(tmp_path / "journal.jsonl")})
        registry = fix_checks.registry()
        report = asyncio.run(Runner(settings, registry, checks=["test.redis-timeout"]).run())
        [finding] = report.findings
        plan = asyncio.run(plan_fix(settings, registry, finding, allow_unsafe=True))
        outcome = asyncio.run(apply_fix(settings, registry, plan, allow_unsafe=True))
        assert outcome.outcome == "fixed", outcome.message
        assert Journal(tmp_path / "journal.jsonl").get(outcome.entry_id).expect[0]["value"] == "300"
        server.client().config_set("timeout", "120")  # an operator's own change since
        undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id, allow_unsafe=True))
        assert undo.outcome == "refused"
        assert "timeout is now '120', not the '300' dbvitals set" in undo.message
        assert server.client().config_get("timeout") == {"timeout": "120"}
        server.client().config_set("timeout", "300")
        undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id, allow_unsafe=True))
        assert undo.outcome == "fixed", undo.message
        assert server.client().config_get("timeout") == {"timeout": "0"}
    finally:
        server.kill()


def test_undo_of_a_mongodb_index_replaced_under_the_same_name_is_refused(mongo_db, tmp_path):
    from tests.data import fix_checks

    settings = config_from_dict({"targets": {"docs": {"kind": "mongodb", "url": mongo_db.url, "allow_fixes": True}},
                                 "journal": str(tmp_path / "journal.jsonl")})
    registry = fix_checks.registry()
    mongo_db.db["orders"].insert_one({"customerId": 1})
    report = asyncio.run(Runner(settings, registry, checks=["test.mongo-missing-index"]).run())
    [finding] = report.findings
    outcome = asyncio.run(apply_fix(settings, registry, asyncio.run(plan_fix(settings, registry, finding))))
    assert outcome.outcome == "fixed", outcome.message
    [expect] = Journal(tmp_path / "journal.jsonl").get(outcome.entry_id).expect
    assert expect["key"] == [["customerId", 1]]
    mongo_db.db["orders"].drop_index("customerId_1")
    mongo_db.db["orders"].create_index([("customerId", -1)], name="customerId_1")
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "refused" and "index customerId_1 on" in undo.message
    assert "is not what this fix left" in undo.message and "{customerId: -1}" in undo.message
    assert "customerId_1" in mongo_db.db["orders"].index_information()


def test_undo_of_a_batch_expire_leaves_a_ttl_someone_set_since(redis_db, tmp_path):
    from tests.data import fix_checks

    client = redis_db.client
    for i in range(120):
        client.set(f"session:{i}", "x")
    settings = config_from_dict({"targets": {"cache": {"kind": "redis", "url": redis_db.url, "allow_fixes": True}},
                                 "journal": str(tmp_path / "journal.jsonl")})
    registry = fix_checks.registry()
    [finding] = asyncio.run(Runner(settings, registry, checks=["test.redis-missing-ttl"]).run()).findings
    outcome = asyncio.run(apply_fix(settings, registry, asyncio.run(plan_fix(settings, registry, finding))))
    assert outcome.outcome == "fixed", outcome.message
    for i in range(3):
        client.expire(f"session:{i}", 60)  # the application's own TTL, set after dbvitals's
    undo = asyncio.run(undo_fix(settings, registry, outcome.entry_id))
    assert undo.outcome == "fixed", undo.message
    assert "removed the TTL of 117 of 120 keys" in undo.message
    assert "3 have a TTL someone set after dbvitals" in undo.message
    assert all(0 < client.ttl(f"session:{i}") <= 60 for i in range(3))
    assert all(client.ttl(f"session:{i}") == -1 for i in range(3, 120))
