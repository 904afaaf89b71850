"""Targets at fleet size: include files, --group and --tag, and databases discovered on a server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from checks.config import ConfigError, load_config
from checks.fleet import SelectionError, discover, select
from tests import support
from tests.integration.test_cli import dbvitals
from tests.integration.test_redis_server_settings import private_redis


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_adds_targets_and_a_duplicate_names_both_files(tmp_path):
    main = write(tmp_path / "dbvitals.toml", 'include = ["conf.d/*.toml"]\n[targets.orders]\nkind = "postgres"\n'
                                             'url = "postgresql://app@db1:5432/orders"\n')
    write(tmp_path / "conf.d" / "cache.toml", '[targets.cache]\nkind = "redis"\nurl = "redis://cache:6379/0"\ngroup = "eu"\n')
    write(tmp_path / "conf.d" / "events.toml", '[targets.events]\nkind = "mongodb"\nurl = "mongodb://ev:27017/ev"\n'
                                               'tags = ["team=data", "eu"]\n')
    settings = load_config(main)
    assert sorted(settings.targets) == ["cache", "events", "orders"]

    bad = write(tmp_path / "conf.d" / "zz.toml", '[targets.cache]\nkind = "redis"\nurl = "redis://other:6379/0"\n')
    with pytest.raises(ConfigError, match=r"target cache is defined twice: in .*cache\.toml and in .*zz\.toml"):
        load_config(main)
    bad.write_text('theme = "x"\n')
    with pytest.raises(ConfigError, match=r"zz\.toml: theme: an included file may only add"):
        load_config(main)
    bad.write_text('[targets.more]\nkind = "redis"\nurl = "redis://m:6379/0"\nenviroment = "x"\n')
    result = dbvitals("check", "--config", str(main))
    assert result.returncode == 2
    assert "zz.toml: targets.more.enviroment: unknown key" in result.stderr  # the included file is named


def test_group_and_tag_select_targets_in_every_command(tmp_path):
    main = write(tmp_path / "dbvitals.toml", "\n".join([
        '[targets.a]', 'kind = "redis"', f'url = "redis://127.0.0.1:{support.refused_port()}/0"', 'group = "shard1"',
        'tags = ["team=payments"]',
        '[targets.b]', 'kind = "redis"', f'url = "redis://127.0.0.1:{support.refused_port()}/0"', 'group = "shard2"',
        'tags = ["team=search", "eu"]', ""]))
    settings = load_config(main)
    assert list(select(settings, groups=["shard2"]).targets) == ["b"]
    assert list(select(settings, tags=["team=payments"]).targets) == ["a"]
    assert list(select(settings, tags=["team"]).targets) == ["a", "b"]
    assert list(select(settings, groups=["shard1", "shard2"], tags=["eu"]).targets) == ["b"]
    with pytest.raises(SelectionError, match="--group nope selects no target .*groups: shard1, shard2"):
        select(settings, groups=["nope"])
    result = dbvitals("targets", "--config", str(main), "--group", "shard1", "--format", "json")
    assert [t["name"] for t in json.loads(result.stdout)["targets"]] == ["a"]
    result = dbvitals("--tag", "eu", "check", "--config", str(main), "--format", "json", "--check", "*.connection")
    assert {t["name"] for t in json.loads(result.stdout)["targets"]} == {"b"}
    refused = dbvitals("check", "--config", str(main), "--group", "nope")
    assert refused.returncode == 2 and "selects no target" in refused.stderr


def test_postgres_databases_are_discovered_by_glob(tmp_path, pg_db):
    other = support.unique("dbv_test")
    asyncio.run(_admin(f'CREATE DATABASE "{other}"'))
    try:
        url = support.with_path(support.PG_URL, "postgres")
        settings = support.settings_for(fleet={"kind": "postgres", "url": url, "databases": [pg_db.name, other, "template*"]})
        found = asyncio.run(discover(settings))
        assert sorted(found.targets) == sorted([f"fleet/{pg_db.name}", f"fleet/{other}"])  # templates never
        assert found.targets[f"fleet/{pg_db.name}"].url.endswith("/" + pg_db.name)
        path = write(tmp_path / "dbvitals.toml", f'[targets.fleet]\nkind = "postgres"\nurl = "{url}"\n'
                                                 f'databases = ["{pg_db.name}"]\n')
        report = json.loads(dbvitals("check", "--config", str(path), "--format", "json", "--check",
                                     "postgres.connection", "--fail-on", "never").stdout)
        assert [t["name"] for t in report["targets"]] == [f"fleet/{pg_db.name}"]
        only = dbvitals("targets", "--config", str(path), "--target", f"fleet/{pg_db.name}", "--format", "json")
        assert only.returncode == 0, only.stderr
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(support.with_path(support.PG_URL, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_redis_logical_databases_in_use_are_discovered(tmp_path):
    with private_redis(tmp_path) as url:
        import redis

        for db in (2, 5):
            redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{db}").set("k", "v")
        settings = support.settings_for(cache={"kind": "redis", "url": url, "databases": "*"})
        found = asyncio.run(discover(settings))
        assert sorted(found.targets) == ["cache/2", "cache/5"]
        assert found.targets["cache/5"].url.endswith("/5")


@pytest.mark.parametrize("named", ["redis://127.0.0.1:{port}/0?db=11", "redis://127.0.0.1:{port}/11?db=11"])
def test_redis_discovery_with_db_in_the_query_gives_each_target_its_own_database(tmp_path, named):
    """?db=N is read by redis-py before the path: a discovered target's URL must not keep it, or
    cache/12 reads database 11's keys."""
    from checks.connectors import connect

    with private_redis(tmp_path) as url:
        import redis

        port = int(url.rsplit(":", 1)[1].split("/")[0])
        for db in (11, 12):
            redis.Redis(port=port, db=db).set(f"only-in-{db}", "v")
        settings = support.settings_for(cache={"kind": "redis", "url": named.format(port=port), "databases": "*"})
        found = asyncio.run(discover(settings))
        assert sorted(found.targets) == ["cache/11", "cache/12"]

        async def keys(name: str) -> tuple[int, list[bytes]]:
            connection = await connect(name, found.targets[name])
            assert connection.session is not None, connection.status
            try:
                return connection.session.db, sorted(await connection.session.client.keys("*"))
            finally:
                await connection.close()

        assert asyncio.run(keys("cache/11")) == (11, [b"only-in-11"])
        assert asyncio.run(keys("cache/12")) == (12, [b"only-in-12"])


def test_mongodb_databases_are_discovered(mongo_db):
    mongo_db.db["c"].insert_one({"a": 1})
    server = mongo_db.url.rsplit("/", 1)[0] + "/"
    settings = support.settings_for(events={"kind": "mongodb", "url": server, "databases": [mongo_db.name]})
    found = asyncio.run(discover(settings))
    assert list(found.targets) == [f"events/{mongo_db.name}"]


def test_a_server_that_cannot_be_asked_keeps_the_target(tmp_path):
    settings = support.settings_for(gone={"kind": "postgres", "url": f"postgresql://u@127.0.0.1:{support.refused_port()}/x",
                                         "databases": "*", "timeout": 1})
    found = asyncio.run(discover(settings))
    assert list(found.targets) == ["gone"]  # its connection finding says why
