"""`fix --script` never turns a name into code: arbitrary names (bytes for Redis keys, any
text for PostgreSQL and MongoDB names, plus known attacks) go through each script writer, and
the script runs in the real client: psql against this test's own database, bash + redis-cli
against a private password-protected Redis, node (the JavaScript mongosh runs) with a
recording `db`. Each script must do exactly the fix on exactly the named object, and nothing
else: no PWNED file, no extra command. Fixed seed, bounded examples."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.fixes.script import migration_script
from checks.model import Finding, Fix, FixSafety, FixStep, Severity
from checks.postgres._catalog import fit_name, quote_ident
from checks.redis._patterns import display_key
from tests import support

ATTACKS = [
    "sess:{i}\ntouch PWNED #",
    "evil\n\\! touch PWNED\n--",
    "\r\\! touch PWNED\r",
    "x\n*/ require('fs').writeFileSync('PWNED', '') //",
    "x\u2028require('fs').writeFileSync('PWNED', '')\u2029//",
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; echo '",
    '"; touch PWNED; echo "',
    "\x1b]0;owned\x07\x1b[2J",
    "a\\",
    "\\'\\\"",
    "-- \\! touch PWNED",
]
SETTINGS = settings(max_examples=25, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _finding(object_: str, fix: Fix, check: str = "x.check") -> Finding:
    return Finding(id="abc123abc123", check=check, severity=Severity.MEDIUM, target="t", object=object_,
                   title=f"problem with {object_}", message=f"about {object_}", fix=fix)


def _script(engine: str, findings: list[Finding], connect_url: str | None = None) -> str:
    return migration_script(engine, "t", "scheme://host/x", "x.check", findings, generated_at="now", version="1",
                            connect_url=connect_url)


# --- PostgreSQL: psql -------------------------------------------------------------------------------

pg_names = st.one_of(
    st.sampled_from(ATTACKS),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=30),
).map(fit_name).filter(bool)


def test_psql_runs_exactly_the_fix_whatever_the_names(pg_db, tmp_path):
    import asyncpg

    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(pg_db.url))

    @SETTINGS
    @given(table=pg_names, column=pg_names)
    def run(table: str, column: str) -> None:
        index = fit_name("ix " + table)
        loop.run_until_complete(conn.execute(f"CREATE TABLE public.{quote_ident(table)} ({quote_ident(column)} int)"))
        try:
            relation = f"public.{quote_ident(table)}"
            build = Fix(summary=f"index {table}({column})", safety=FixSafety.SAFE, lock=f"on {table}", notes=column,
                        steps=(FixStep("sql", f"CREATE INDEX CONCURRENTLY {quote_ident(index)} ON {relation} "
                                              f"({quote_ident(column)})", transactional=False),),
                        inverse=(FixStep("sql", f"DROP INDEX CONCURRENTLY IF EXISTS public.{quote_ident(index)}",
                                         transactional=False),))
            manual = Fix(summary=f"drop {table}", safety=FixSafety.MANUAL, steps=(FixStep("sql", f"DROP TABLE {relation}"),))
            script = tmp_path / "fix.sql"
            script.write_text(_script("postgres", [_finding(f"public.{table}", build), _finding(column, manual)]))
            done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_db.url, "-f", str(script)],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert not (tmp_path / "PWNED").exists()
            rows = loop.run_until_complete(conn.fetch(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = $1::regclass", relation))
            assert [r["relname"] for r in rows] == [index]  # the manual DROP TABLE stayed a comment
            assert "\x1b" not in script.read_text() and "\r" not in script.read_text()
        finally:
            loop.run_until_complete(conn.execute(f"DROP TABLE IF EXISTS public.{quote_ident(table)}"))

    try:
        run()
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


# --- Redis: bash + redis-cli against a password-protected server ------------------------------------

class PrivateRedis:
    def __init__(self, password: str) -> None:
        self.port = support.free_port()
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--requirepass", password],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        support.wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


PASSWORD = "Sc'ript \"pw\" $HOME #1"


@pytest.fixture
def protected_redis():
    server = PrivateRedis(PASSWORD)
    try:
        yield server
    finally:
        server.stop()


redis_keys = st.one_of(st.sampled_from([a.encode() for a in ATTACKS]), st.binary(min_size=1, max_size=30))


def test_the_redis_script_is_bash_that_reaches_the_target_and_runs_exactly_the_fix(protected_redis, tmp_path):
    import redis

    client = redis.Redis(port=protected_redis.port, password=PASSWORD, db=3)
    from urllib.parse import quote

    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{protected_redis.port}/3"

    @SETTINGS
    @given(key=redis_keys)
    def run(key: bytes) -> None:
        client.flushdb()
        other = key + b"~2"
        client.set(key, "v", ex=1000)
        client.set(other, "v")
        name = key.decode("utf-8", "surrogateescape")
        persist = Fix(summary=f"persist {name}", safety=FixSafety.SAFE, lock=name,
                      steps=(FixStep("redis", ["PERSIST", name], database=3),),
                      inverse=(FixStep("redis", ["EXPIRE", name, "1000"], database=3),))
        expire = Fix(summary="ttl", safety=FixSafety.SAFE,
                     steps=(FixStep("redis", {"op": "expire-missing-ttl", "db": 3, "match": "*",
                                              "pattern": display_key(other), "regex": re.escape(display_key(other)),
                                              "ttl_seconds": 500}),),
                     inverse=(FixStep("redis", {"op": "persist-keys", "db": 3, "keys": [name]}),))
        script = tmp_path / "fix.sh"
        script.write_text(_script("redis", [_finding(display_key(key), persist), _finding(display_key(other), expire)],
                                  connect_url=url))
        text = script.read_text()
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
        done = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": PASSWORD})
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "PWNED").exists()
        assert client.ttl(key) == -1  # PERSIST reached exactly this key
        if not any(b in other for b in b"\n\r\x00"):  # a line of `redis-cli --scan` holds one key
            assert 0 < client.ttl(other) <= 500
        assert client.dbsize() == 2

    try:
        run()
    finally:
        client.flushdb()
        client.close()


def test_the_redis_script_without_the_password_stops_at_once(protected_redis, tmp_path):
    import redis

    client = redis.Redis(port=protected_redis.port, password=PASSWORD, db=0)
    client.set("k", "v", ex=100)
    fix = Fix(summary="persist", safety=FixSafety.SAFE, steps=(FixStep("redis", ["PERSIST", "k"], database=0),))
    script = tmp_path / "fix.sh"
    script.write_text(_script("redis", [_finding("k", fix)], connect_url=f"redis://127.0.0.1:{protected_redis.port}/0"))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode != 0 and "NOAUTH" in done.stdout + done.stderr
    assert client.ttl("k") > 0


# --- MongoDB: the JavaScript mongosh runs, in node with a recording `db` ------------------------------

mongo_names = st.one_of(st.sampled_from(ATTACKS),
                        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
RECORDER = """
const calls = [];
const db = { getName: () => "app", getSiblingDB: (d) => ({ runCommand: (c) => { calls.push([d, c]); return { ok: 1 }; } }) };
function printjson() {}
"""


def test_the_mongosh_script_runs_exactly_the_fix_whatever_the_names(tmp_path):
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is needed to parse and run the mongosh scripts; run scripts/setup.sh"

    @SETTINGS
    @given(database=mongo_names, collection=mongo_names, field=mongo_names)
    def run(database: str, collection: str, field: str) -> None:
        command = {"createIndexes": collection, "indexes": [{"key": {field: 1}, "name": f"{field}_1"}]}
        fix = Fix(summary=f"index {collection}.{field}", safety=FixSafety.SAFE, lock=collection, notes=field,
                  steps=(FixStep("mongodb", command, database=database),),
                  inverse=(FixStep("mongodb", {"dropIndexes": collection, "index": f"{field}_1"}, database=database),))
        manual = Fix(summary=collection, safety=FixSafety.MANUAL,
                     steps=(FixStep("mongodb", {"drop": collection}, database=database),))
        script = tmp_path / "fix.js"
        script.write_text(_script("mongodb", [_finding(f"{database}.{collection}", fix), _finding(field, manual)]))
        assert subprocess.run([node, "--check", str(script)], capture_output=True).returncode == 0
        runner = tmp_path / "run.js"
        runner.write_text(RECORDER + script.read_text() + "\nprocess.stdout.write(JSON.stringify(calls));\n")
        done = subprocess.run([node, str(runner)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "PWNED").exists()
        assert json.loads(done.stdout) == [[database, {**command, "maxTimeMS": 1800000}]]

    run()
