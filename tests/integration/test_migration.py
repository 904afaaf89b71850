"""`dbvitals migration` against the real PostgreSQL: lock, rewrite and scan per statement kind,
who a statement would queue behind (sessions of the test's own holding locks), the target's
catalog unchanged, unparseable SQL, and the report formats."""

from __future__ import annotations

import asyncio
import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import asyncpg
import jsonschema

from tests.integration.test_cli import dbvitals

SARIF_SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text())

DIGEST = """
SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
  SELECT format('%s|%s|%s|%s|%s', c.oid, c.relname, c.relkind, c.relfilenode, c.relnatts) AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
  UNION ALL
  SELECT format('%s|%s|%s|%s|%s|%s', a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.atthasdef)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'
  UNION ALL
  SELECT format('%s|%s|%s|%s', conrelid, conname, contype, convalidated) FROM pg_constraint
    WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT format('%s|%s|%s', indexrelid, indrelid, indisvalid) FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
) s
"""

SCHEMA_SQL = """
CREATE TABLE refs (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, name varchar(100), qty int, ref int, note text,
                     amount numeric(10,2), CONSTRAINT note_nn CHECK (note IS NOT NULL));
INSERT INTO orders SELECT g, 'n' || g, g, NULL, 'x', 1 FROM generate_series(1, 2000) g;
CREATE INDEX orders_qty ON orders (qty);
ANALYZE orders;
"""

MIGRATION = """\
-- every statement kind the analysis knows
ALTER TABLE orders ADD COLUMN created timestamptz DEFAULT now();
ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();
ALTER TABLE orders ADD COLUMN r float8 DEFAULT random();
ALTER TABLE orders ADD COLUMN t timestamptz DEFAULT clock_timestamp();
ALTER TABLE orders ALTER COLUMN name TYPE varchar(200);
ALTER TABLE orders ALTER COLUMN qty TYPE bigint;
ALTER TABLE orders ALTER COLUMN name TYPE text;
ALTER TABLE orders ALTER COLUMN name TYPE varchar(50);
ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12,2);
ALTER TABLE orders ALTER COLUMN qty SET NOT NULL;
ALTER TABLE orders ALTER COLUMN note SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (ref) REFERENCES refs (id);
ALTER TABLE orders ADD CONSTRAINT fk2 FOREIGN KEY (ref) REFERENCES refs (id) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT positive CHECK (qty > 0);
ALTER TABLE orders ADD CONSTRAINT positive2 CHECK (qty > 0) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT positive2;
CREATE INDEX orders_name ON orders (name);
SET lock_timeout = '3s';
CREATE INDEX CONCURRENTLY orders_name2 ON orders (name);
ALTER TABLE orders ADD CONSTRAINT u UNIQUE (name);
ALTER TABLE orders ADD CONSTRAINT u2 UNIQUE USING INDEX orders_name2;
REINDEX TABLE orders;
REINDEX INDEX CONCURRENTLY orders_qty;
DROP INDEX orders_qty;
DROP INDEX CONCURRENTLY orders_qty;
VACUUM FULL orders;
CLUSTER orders USING orders_pkey;
UPDATE orders SET qty = 1;
DELETE FROM orders WHERE id = 1;
ALTER TABLE orders RENAME COLUMN note TO remark;
ALTER TABLE orders DROP COLUMN amount;
"""


def run_async(coro):
    return asyncio.run(coro)


async def _sql(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql) if sql.lstrip().upper().startswith("SELECT") else await conn.execute(sql)
    finally:
        await conn.close()


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "dbvitals.toml"
    path.write_text(f'[targets.app]\nkind = "postgres"\nurl = {json.dumps(url)}\n')
    return path


def migrate(tmp_path: Path, url: str, sql: str, *extra: str, name: str = "001_change.sql"):
    file = tmp_path / name
    file.write_text(sql, encoding="utf-8")
    return dbvitals("--config", str(config(tmp_path, url)), "migration", str(file), *extra), file


def by_line(doc: dict) -> dict[int, dict]:
    return {s["line"]: s for s in doc["statements"]}


def rules(statement: dict) -> set[str]:
    return {f["rule"] for f in statement["findings"]}


def test_every_statement_kind_lock_rewrite_scan_and_the_catalog_unchanged(pg_db, tmp_path):
    run_async(_sql(pg_db.url, SCHEMA_SQL))
    before = run_async(_sql(pg_db.url, DIGEST))
    result, file = migrate(tmp_path, pg_db.url, MIGRATION, "--format", "json", "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    assert run_async(_sql(pg_db.url, DIGEST)) == before  # nothing was executed
    doc = json.loads(result.stdout)
    assert doc["schema"] == "dbvitals.migration/1" and doc["target"] == "app" and doc["errors"] == []
    assert doc["files"] == [str(file)]
    s = by_line(doc)
    lines = MIGRATION.splitlines()
    assert all(lines[n - 1].strip() == s[n]["sql"].strip() + ";" for n in s)  # line = the statement's first line

    def check(line: int, lock: str | None, rewrites: bool, scans: bool, rule: str | None = None) -> None:
        st = s[line]
        assert (st["lock"], st["rewrites"], st["scans"]) == (lock, rewrites, scans), (line, st)
        if rule:
            assert rule in rules(st), (line, st["findings"])

    AE, SUE, SRE = "ACCESS EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE"
    check(2, AE, False, False)                                   # DEFAULT now(): stable, no rewrite
    assert "migration.volatile-default-rewrite" not in rules(s[2])
    check(3, AE, True, True, "migration.volatile-default-rewrite")  # gen_random_uuid()
    check(4, AE, True, True, "migration.volatile-default-rewrite")  # random()
    check(5, AE, True, True, "migration.volatile-default-rewrite")  # clock_timestamp()
    check(6, AE, False, False)                                   # varchar(100) -> varchar(200)
    check(7, AE, True, True, "migration.column-type-rewrite")     # integer -> bigint
    check(8, AE, False, False)                                   # varchar -> text
    check(9, AE, True, True, "migration.column-type-rewrite")     # varchar(100) -> varchar(50)
    check(10, AE, False, False)                                  # numeric(10,2) -> numeric(12,2)
    check(11, AE, False, True, "migration.set-not-null-scan")
    check(12, AE, False, False)                                  # a valid CHECK (note IS NOT NULL) proves it
    check(13, SRE, False, True, "migration.constraint-validation")
    assert set(s[13]["tables"]) == {"orders", "refs"}
    check(14, SRE, False, False)                                 # NOT VALID
    check(15, AE, False, True, "migration.constraint-validation")
    check(16, AE, False, False)
    check(17, SUE, False, False)                                 # VALIDATE CONSTRAINT
    check(18, "SHARE", False, True, "migration.create-index-blocking")
    assert s[18]["blocks"] == "writes"
    assert "migration.missing-lock-timeout" in rules(s[18])
    check(20, SUE, False, True)                                  # CONCURRENTLY, after SET lock_timeout
    assert rules(s[20]) == {"migration.not-robust"}  # only: no IF NOT EXISTS outside a transaction
    check(21, AE, False, True, "migration.constraint-builds-index")
    assert "migration.missing-lock-timeout" not in rules(s[21])   # lock_timeout set at line 19
    check(22, AE, False, False)                                  # USING INDEX
    check(23, "SHARE", False, True, "migration.reindex-blocking")
    check(24, SUE, False, True)
    check(25, AE, False, False, "migration.drop-index-blocking")
    check(26, SUE, False, False)
    check(27, AE, True, True, "migration.table-rewrite")
    check(28, AE, True, True, "migration.table-rewrite")
    check(29, "ROW EXCLUSIVE", False, True, "migration.unbatched-update")
    check(30, "ROW EXCLUSIVE", False, False)
    assert s[30]["findings"] == []
    check(31, AE, False, False, "migration.rename-column")
    check(32, AE, False, False, "migration.drop-column")
    assert s[2]["blocks"] == "reads and writes"
    # The estimate is stated with its basis; a small table's rewrite is not high.
    assert s[3]["estimate_seconds"] is not None and "reltuples" in s[3]["estimate_basis"]
    assert {f["severity"] for f in s[3]["findings"]} <= {"low", "medium"}


class Holders:
    """Sessions of the test's own, each in an open transaction holding a lock on a table."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conns: list[asyncpg.Connection] = []

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _hold(self, application: str, sql: str) -> int:
        conn = await asyncpg.connect(self.url, server_settings={"application_name": application})
        self.conns.append(conn)
        await conn.execute("BEGIN")
        await conn.execute(sql)
        return conn.get_server_pid()

    def hold(self, application: str, sql: str) -> int:
        return self.run(self._hold(application, sql))

    async def _close(self) -> None:
        for conn in self.conns:
            await conn.close()

    def close(self) -> None:
        try:
            self.run(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def test_who_it_would_queue_behind_and_severity_by_table_weight(pg_db, tmp_path):
    run_async(_sql(pg_db.url, """
        CREATE TABLE big (id int PRIMARY KEY, v int);
        INSERT INTO big SELECT g, g FROM generate_series(1, 400000) g;
        ANALYZE big;
        CREATE TABLE empty (id int PRIMARY KEY, v int);
    """))
    holders = Holders(pg_db.url)
    try:
        reader = holders.hold("reporting", "SELECT count(*) FROM big WHERE id < 10")  # ACCESS SHARE
        writer = holders.hold("worker", "UPDATE big SET v = v WHERE id = 1")  # ROW EXCLUSIVE
        result, _ = migrate(tmp_path, pg_db.url, (
            "CREATE INDEX big_v ON big (v);\n"
            "ALTER TABLE big ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
            "CREATE INDEX CONCURRENTLY big_v2 ON big (v);\n"
            "ALTER TABLE empty ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
        ), "--format", "json")
    finally:
        holders.close()
    assert result.returncode == 1, result.stderr  # high findings reach the default --fail-on
    s = by_line(json.loads(result.stdout))
    # SHARE (CREATE INDEX) conflicts with ROW EXCLUSIVE, not with ACCESS SHARE.
    assert {w["pid"] for w in s[1]["waits_behind"]} == {writer}
    w = s[1]["waits_behind"][0]
    assert w["application"] == "worker" and w["state"] == "idle in transaction"
    assert w["xact_age_seconds"] >= 0 and "UPDATE big" in w["query"]
    # ACCESS EXCLUSIVE conflicts with both.
    assert {w["pid"] for w in s[2]["waits_behind"]} == {reader, writer}
    assert "migration.queues-behind-sessions" in rules(s[2])
    timeout = next(f for f in s[2]["findings"] if f["rule"] == "migration.missing-lock-timeout")
    assert timeout["severity"] == "high"
    rewrite = next(f for f in s[2]["findings"] if f["rule"] == "migration.volatile-default-rewrite")
    assert rewrite["severity"] == "high"  # 400,000 rows with sessions holding it
    assert "400,000 rows" in s[2]["estimate_basis"] and s[2]["estimate_seconds"] > 0
    # SHARE UPDATE EXCLUSIVE conflicts with neither.
    assert s[3]["waits_behind"] == []
    # A rewrite of an empty table is not high.
    empty = next(f for f in s[4]["findings"] if f["rule"] == "migration.volatile-default-rewrite")
    assert empty["severity"] == "low"


def test_unparseable_sql_is_a_usage_error_naming_file_and_line(pg_db, tmp_path):
    result, file = migrate(tmp_path, pg_db.url, "SELECT 1;\n\nALTER TABLE x ADD COLUMN;\n")
    assert result.returncode == 2
    assert f"{file}:3:" in result.stderr and "syntax error" in result.stderr
    assert result.stdout == ""


def test_formats_sarif_validates_junit_parses_text_fits_and_names_are_escaped(pg_db, tmp_path):
    run_async(_sql(pg_db.url, 'CREATE TABLE "we\x1b[31mird" (id int); CREATE TABLE plain (id int)'))
    sql = 'CREATE INDEX ON "we\x1b[31mird" (id);\n\n  -- comment\nCREATE INDEX ON plain (id);\n'
    sarif, file = migrate(tmp_path, pg_db.url, sql, "--format", "sarif", "--fail-on", "never")
    assert sarif.returncode == 0, sarif.stderr
    doc = json.loads(sarif.stdout)
    jsonschema.validate(doc, SARIF_SCHEMA)
    results = doc["runs"][0]["results"]
    assert {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results} == {1, 4}
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == file.as_posix()
    junit, _ = migrate(tmp_path, pg_db.url, sql, "--format", "junit", "--fail-on", "never")
    root = ET.fromstring(junit.stdout)
    assert len(root.findall(".//testcase")) == 2 and len(root.findall(".//failure")) == 2
    assert "\x1b" not in junit.stdout
    text, _ = migrate(tmp_path, pg_db.url, sql, "--fail-on", "never")
    assert "\x1b" not in text.stdout and "\\x1b" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80
    markdown, _ = migrate(tmp_path, pg_db.url, sql, "--format", "markdown", "--fail-on", "never")
    assert "\x1b" not in markdown.stdout and "migration.create-index-blocking" in markdown.stdout
    out = tmp_path / "report.json"
    written, _ = migrate(tmp_path, pg_db.url, sql, "--format", "json", "--output", str(out), "--fail-on", "never")
    assert written.stdout == "" and json.loads(out.read_text())["statements"][0]["line"] == 1


def test_transactions_created_tables_and_lock_timeout_tracking(pg_db, tmp_path):
    run_async(_sql(pg_db.url, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000); ANALYZE t"))
    result, _ = migrate(tmp_path, pg_db.url, (
        "BEGIN;\n"
        "SET LOCAL lock_timeout = '1s';\n"
        "CREATE INDEX CONCURRENTLY t_id ON t (id);\n"
        "ALTER TABLE t ADD COLUMN v int;\n"
        "COMMIT;\n"
        "ALTER TABLE t ADD COLUMN w int;\n"
        "CREATE TABLE fresh (id int);\n"
        "ALTER TABLE fresh ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
        "BEGIN;\n"
        "ALTER TABLE t ADD COLUMN x int;\n"
        "CREATE INDEX t_x ON t (x);\n"
        "COMMIT;\n"
        "CREATE INDEX t_y ON t (id);\n"
    ), "--format", "json", "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    s = by_line(json.loads(result.stdout))
    assert "migration.concurrently-in-transaction" in rules(s[3])
    assert "migration.missing-lock-timeout" not in rules(s[4])  # SET LOCAL inside the transaction
    assert "migration.missing-lock-timeout" in rules(s[6])  # SET LOCAL ended with COMMIT
    # A table created in this migration: its lock findings are info (not-robust is about re-runs).
    assert {f["severity"] for f in s[8]["findings"] if f["rule"] != "migration.not-robust"} == {"info"}
    assert s[8]["waits_behind"] == []
    held = next(f for f in s[11]["findings"] if f["rule"] == "migration.lock-held-in-transaction")
    assert "ACCESS EXCLUSIVE on t (line 10)" in held["message"]
    assert "migration.lock-held-in-transaction" not in rules(s[13])  # after COMMIT


def test_unreachable_target_exits_1(tmp_path):
    result, _ = migrate(tmp_path, "postgresql://postgres@127.0.0.1:1/nowhere", "SELECT 1;\n", "--format", "json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"]


def test_data_preconditions_counted_with_bounded_queries(pg_db, tmp_path):
    run_async(_sql(pg_db.url, """
        CREATE TABLE parents (id int PRIMARY KEY);
        INSERT INTO parents VALUES (1), (2);
        CREATE TABLE kids (id int, parent int, code text, clean int);
        INSERT INTO kids VALUES (1, 1, 'a', 1), (1, 2, 'a', 2), (2, 7, NULL, 3), (3, 8, 'b', 4);
        ALTER TABLE kids ADD CONSTRAINT kids_parent FOREIGN KEY (parent) REFERENCES parents (id) NOT VALID;
    """))
    before = run_async(_sql(pg_db.url, DIGEST))
    result, _ = migrate(tmp_path, pg_db.url, (
        "ALTER TABLE kids ALTER COLUMN code SET NOT NULL;\n"
        "CREATE UNIQUE INDEX kids_code ON kids (code);\n"
        "ALTER TABLE kids ADD PRIMARY KEY (id);\n"
        "ALTER TABLE kids ADD CONSTRAINT fk FOREIGN KEY (parent) REFERENCES parents;\n"
        "ALTER TABLE kids VALIDATE CONSTRAINT kids_parent;\n"
        "CREATE UNIQUE INDEX kids_clean ON kids (clean);\n"
        "ALTER TABLE kids ALTER COLUMN clean SET NOT NULL;\n"
        "ALTER TABLE kids ADD COLUMN required int NOT NULL;\n"
        "ALTER TABLE parents ADD COLUMN fine int NOT NULL DEFAULT 0;\n"
        "ALTER TABLE kids ADD COLUMN seq bigserial NOT NULL UNIQUE;\n"
    ), "--format", "json")
    assert run_async(_sql(pg_db.url, DIGEST)) == before
    assert result.returncode == 1, result.stderr
    s = by_line(json.loads(result.stdout))
    assert "migration.precondition-nulls" in rules(s[1])
    assert "migration.precondition-duplicates" in rules(s[2])
    assert "migration.precondition-duplicates" in rules(s[3])
    orphans = next(f for f in s[4]["findings"] if f["rule"] == "migration.precondition-orphans")
    assert orphans["severity"] == "high" and ": 2 row(s)" in orphans["message"]
    assert "migration.precondition-orphans" in rules(s[5])  # VALIDATE CONSTRAINT of the NOT VALID key
    assert not any(r.startswith("migration.precondition-") for r in rules(s[6]) | rules(s[7]) | rules(s[9]))
    assert "migration.precondition-rows" in rules(s[8])  # NOT NULL without a default on a table with rows
    assert not any(r.startswith("migration.precondition-") for r in rules(s[10]))  # a serial has a default
    assert s[10]["rewrites"] and "migration.volatile-default-rewrite" in rules(s[10])
