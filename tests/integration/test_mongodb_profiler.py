"""The profiler is changed only on request, and always given back its previous setting."""

from __future__ import annotations

import asyncio

from pymongo import AsyncMongoClient

from checks.mongodb.profiler import read_profiler_setting, restore_profiler, set_profiler
from console.cli import main


def _config(tmp_path, url: str, environment: str = "development"):
    path = tmp_path / "dbvitals.toml"
    path.write_text(f'[targets.app]\nkind = "mongodb"\nurl = "{url}"\nenvironment = "{environment}"\n')
    return str(path)


def test_set_and_restore_round_trip(mongo_db):
    async def go():
        client = AsyncMongoClient(mongo_db.url)
        try:
            before = await set_profiler(client, mongo_db.name, 1, slowms=7)
            during = await read_profiler_setting(client, mongo_db.name)
            after = await restore_profiler(client, before)
            return before, during, after
        finally:
            await client.close()

    before, during, after = asyncio.run(go())
    assert (during.level, during.slowms) == (1, 7)
    assert (after.level, after.slowms) == (before.level, before.slowms) == (0, 100)


def test_cli_shows_the_setting_without_changing_it(mongo_db, tmp_path, capsys):
    assert main(["profiler", "--config", _config(tmp_path, mongo_db.url), "--target", "app"]) == 0
    out = capsys.readouterr().out
    assert f"{mongo_db.name}: level 0 (off), slowms 100" in out
    assert mongo_db.db.command("profile", -1)["was"] == 0


def test_cli_profiles_for_a_while_then_restores(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url)
    assert main(["profiler", "--config", config, "--target", "app", "--level", "1", "--slowms", "20", "--for", "0.3s"]) == 0
    out = capsys.readouterr().out
    assert "was    " in out and "level 0 (off), slowms 100" in out
    assert "now    " in out and "level 1 (slow operations), slowms 20" in out
    assert "restored" in out
    state = mongo_db.db.command("profile", -1)
    assert (state["was"], state["slowms"]) == (0, 100)


def test_cli_refuses_production_without_yes(mongo_db, tmp_path, capsys):
    config = _config(tmp_path, mongo_db.url, environment="production")
    assert main(["profiler", "--config", config, "--target", "app", "--level", "1"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert mongo_db.db.command("profile", -1)["was"] == 0
