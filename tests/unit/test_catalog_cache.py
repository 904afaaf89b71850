"""`dbvitals checks` from a cached manifest: the same catalog, without importing the checks, and
rebuilt whenever an entry point or a source file of a check package changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from checks import catalog_cache

ROOT = Path(__file__).resolve().parents[2]


class FakeRegistry:
    def __init__(self) -> None:
        self.checks: dict = {}
        self.problems = ["plugin x failed to load: boom"]


def test_fingerprint_follows_the_source_files_of_the_named_packages(tmp_path, monkeypatch):
    package = tmp_path / "dbv_fake_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("CHECKS = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = metadata.EntryPoint("fake", "dbv_fake_plugin:CHECKS", "dbvitals.checks")
    before = catalog_cache.fingerprint([point])
    assert catalog_cache.fingerprint([point]) == before
    (package / "more.py").write_text("X = 1\n")
    assert catalog_cache.fingerprint([point]) != before
    other = metadata.EntryPoint("fake2", "dbv_fake_plugin:CHECKS", "dbvitals.checks")
    assert catalog_cache.fingerprint([point, other]) != catalog_cache.fingerprint([point])


def test_the_cache_is_used_until_its_key_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a cache: rebuilt when lost
    calls = []

    def load():
        calls.append(1)
        return FakeRegistry()

    first = catalog_cache.catalog(load)
    second = catalog_cache.catalog(load)
    assert first == second == ([], ["plugin x failed to load: boom"]) and len(calls) == 1
    cache = tmp_path / "dbvitals" / catalog_cache.CACHE_NAME
    data = json.loads(cache.read_text())
    cache.write_text(json.dumps({**data, "key": "stale"}))
    catalog_cache.catalog(load)
    assert len(calls) == 2
    cache.write_text("{not json")
    catalog_cache.catalog(load)
    assert len(calls) == 3


def test_a_warm_catalog_imports_no_check_module(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    # What the command loads beyond the CLI's parser (its commands import the core, and the MongoDB
    # profiler command the MongoDB engine's adapter, at the top): a warm catalog loads no check.
    probe = ("import sys; from console.cli import build_parser, main; build_parser(); before = set(sys.modules); "
             "main(['checks', '--format', 'json']); "
             "loaded = sorted(m for m in set(sys.modules) - before if m.startswith(('checks.postgres', "
             "'checks.mongodb', 'checks.redis', 'pydantic', 'asyncpg', 'pymongo', 'bson', 'redis'))); "
             "print(loaded, file=sys.stderr)")
    cold = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    warm = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    assert json.loads(cold.stdout) == json.loads(warm.stdout)
    assert len(json.loads(warm.stdout)["checks"]) > 50
    assert "checks.postgres" in cold.stderr  # the first run really loaded the checks
    assert warm.stderr.strip().splitlines()[-1] == "[]"
