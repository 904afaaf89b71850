"""`dbvitals` as CI runs it: a subprocess, a config file, real servers, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checks.config import target_kinds
from tests import support

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "data" / "configs"
SIX = {"postgres.connection", "postgres.pool", "mongodb.connection", "mongodb.pool", "redis.connection", "redis.pool"}
FOUNDATION = ["--check", "*.connection", "--check", "*.pool"]

PG_PARAMS = "connect_timeout=10&keepalives_idle=60"
MONGO_PARAMS = "maxPoolSize=20&timeoutMS=5000"
REDIS_PARAMS = "socket_timeout=2&socket_connect_timeout=2"


def dbvitals(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "DBVITALS_DEBUG"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=timeout)


def _with(url: str, params: str) -> str:
    return url + ("&" if "?" in url else "?") + params


def write_config(path: Path, targets: dict[str, dict[str, str]]) -> Path:
    lines = []
    for name, keys in targets.items():
        lines.append(f"[targets.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def local_config(tmp_path, pg_db, redis_db, mongo_db) -> Path:
    """The three local servers, with URLs that set their pool and timeout parameters."""
    return write_config(tmp_path / "dbvitals.toml", {
        "orders": {"kind": "postgres", "url": _with(pg_db.url, PG_PARAMS)},
        "catalog": {"kind": "mongodb", "url": _with(mongo_db.url, MONGO_PARAMS)},
        "cache": {"kind": "redis", "url": _with(redis_db.url, REDIS_PARAMS)},
    })


@pytest.fixture
def bare_config(tmp_path, pg_db, redis_db, mongo_db) -> Path:
    """The same servers with URLs that leave every client setting at the driver's default."""
    return write_config(tmp_path / "bare.toml", {
        "orders": {"kind": "postgres", "url": pg_db.url},
        "catalog": {"kind": "mongodb", "url": mongo_db.url},
        "cache": {"kind": "redis", "url": redis_db.url},
    })


def test_check_json_reports_all_six_checks_without_errors(local_config):
    result = dbvitals("check", "--config", str(local_config), "--format", "json", *FOUNDATION, "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "dbvitals.report/1"
    assert set(doc) >= {"schema", "targets", "findings", "errors", "checks", "duration_ms"}
    assert {t["name"]: t["state"] for t in doc["targets"]} == {
        "orders": "connected", "catalog": "connected", "cache": "connected",
    }
    for target in doc["targets"]:
        assert set(target) >= {"name", "kind", "state", "latency_ms", "server_version", "error"}
        assert target["server_version"] and target["latency_ms"] is not None
    assert {c["check"] for c in doc["checks"]} == SIX
    assert all(c["outcome"] in {"ok", "findings"} for c in doc["checks"]), doc["checks"]
    assert doc["errors"] == []
    for finding in doc["findings"]:
        assert set(finding) == {"id", "check", "severity", "target", "object", "title", "message", "evidence", "fix"}


def test_every_check_runs_on_the_local_servers(local_config):
    result = dbvitals("check", "--config", str(local_config), "--format", "json", "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert SIX <= {c["check"] for c in doc["checks"]}
    assert {e["check"] for e in doc["errors"]}.isdisjoint(SIX)


@pytest.mark.parametrize(
    "fail_on, code",
    [("medium", 1), ("low", 1), ("high", 0), ("critical", 0), ("never", 0)],
)
def test_exit_code_follows_fail_on(bare_config, fail_on, code):
    # The bare URLs give medium findings (connect_timeout, socket_timeout...) and nothing high.
    result = dbvitals("check", "--config", str(bare_config), "--format", "json", *FOUNDATION, "--fail-on", fail_on)
    doc = json.loads(result.stdout)
    mine = [f for f in doc["findings"] if not f["object"].startswith("database:")]
    assert {f["severity"] for f in mine} <= {"medium", "low", "info"}
    assert {f["object"] for f in mine if f["severity"] == "medium"} >= {"url:connect_timeout", "url:socket_timeout"}
    assert result.returncode == code, result.stderr


def test_text_report_is_grouped_by_target_and_output_file_is_written(bare_config, tmp_path):
    result = dbvitals("check", "--config", str(bare_config), *FOUNDATION, "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    for line in ("orders (postgres) connected", "catalog (mongodb) connected", "cache (redis) connected"):
        assert line in result.stdout
    assert "url:socket_timeout" in result.stdout and "6 check runs on 3 targets, 0 errors" in result.stdout
    output = tmp_path / "report.json"
    result = dbvitals("check", "--config", str(bare_config), "--format", "json", *FOUNDATION, "--output", str(output))
    assert result.stdout == ""
    assert json.loads(output.read_text())["schema"] == "dbvitals.report/1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "nope"], "unknown target nope (configured: orders, catalog, cache)"),
        (["--check", "postgres.nope"], '--check "postgres.nope" matches no check'),
        (["--format", "xml"], "--format xml: expected one of text, json"),
        (["--fail-on", "sometimes"], "argument --fail-on: invalid choice"),
    ],
)
def test_usage_errors_exit_2(local_config, args, message):
    result = dbvitals("check", "--config", str(local_config), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "name, key, expected",
    [
        ("misspelt_key.toml", "targets.orders.enviroment", "unknown key (check the spelling"),
        ("bad_toml.toml", None, "not valid TOML"),
        ("wrong_kind.toml", "targets.orders.kind", f"expected kind = {target_kinds()}"),  # the registered kinds
        ("missing_url.toml", "targets.orders.url", "required key is missing"),
        ("wrong_type.toml", "targets.cache.timeout", "expected a number"),
        ("bad_url_scheme.toml", "targets.orders.url", 'expected a URL starting with "postgresql://"'),
        ("unknown_check.toml", 'targets.orders.checks."postgres.pooll"', "no such check"),
        ("unknown_check_option.toml", 'targets.orders.checks."postgres.pool"', "capacity_wran: unknown option"),
    ],
)
def test_bad_config_is_one_clear_error_and_exit_2(name, key, expected):
    path = CONFIGS / name
    result = dbvitals("check", "--config", str(path))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("dbvitals: error: ")
    assert str(path) in line and expected in line
    if key:
        assert key in line
    assert "Traceback" not in result.stderr and "file-secret-pw" not in result.stderr
    assert result.stdout == ""


def test_missing_config_file_is_exit_2(tmp_path):
    result = dbvitals("check", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr and "Traceback" not in result.stderr


def test_environment_password_beats_the_file_and_no_password_is_ever_printed(tmp_path, redis_db):
    user = support.unique("dbv_cli")
    redis_db.client.acl_setuser(user, enabled=True, passwords=["+env-right-pw"], commands=["+@all"], keys=["*"])
    try:
        url = _with(redis_db.url.replace("redis://", f"redis://{user}:file-wrong-pw@"), REDIS_PARAMS)
        config = write_config(tmp_path / "secret.toml", {"cache": {"kind": "redis", "url": url}})
        outputs = []
        for fmt in ("json", "text"):
            failed = dbvitals("check", "--config", str(config), "--format", fmt, "--check", "redis.*")
            assert failed.returncode == 1
            outputs.append(failed)
        assert json.loads(outputs[0].stdout)["targets"][0]["state"] == "auth_failed"
        assert f"redis://{user}:***@" in outputs[0].stdout

        env = {"DBVITALS_TARGETS__CACHE__PASSWORD": "env-right-pw"}
        for fmt in ("json", "text"):
            good = dbvitals("check", "--config", str(config), "--format", fmt, *FOUNDATION, env=env)
            assert good.returncode == 0, good.stderr + good.stdout
            outputs.append(good)
        assert json.loads(outputs[2].stdout)["targets"][0]["state"] == "connected"
        outputs.append(dbvitals("targets", "--config", str(config), "--format", "json", env=env))
        assert json.loads(outputs[-1].stdout)["targets"][0]["state"] == "connected"
        for result in outputs:
            for secret in ("file-wrong-pw", "env-right-pw"):
                assert secret not in result.stdout and secret not in result.stderr
    finally:
        redis_db.client.acl_deluser(user)


def test_example_plugin_check_runs_against_real_redis(tmp_path, redis_db):
    from dbvitals_example_plugin import MARKER

    config = write_config(tmp_path / "plugin.toml", {"cache": {"kind": "redis", "url": _with(redis_db.url, REDIS_PARAMS)}})
    absent = dbvitals("check", "--config", str(config), "--format", "json", "--check", "redis.example-marker")
    assert absent.returncode == 0, absent.stderr
    assert json.loads(absent.stdout)["findings"] == []
    redis_db.client.set(MARKER, "1")
    present = dbvitals("check", "--config", str(config), "--format", "json", "--check", "redis.example-marker",
                       "--fail-on", "info")
    assert present.returncode == 1
    [finding] = json.loads(present.stdout)["findings"]
    assert (finding["check"], finding["object"], finding["severity"]) == ("redis.example-marker", MARKER, "info")


def test_catalog_lists_the_six_checks_and_the_plugin_with_options():
    result = dbvitals("checks", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    entries = {c["id"]: c for c in doc["checks"]}
    assert SIX | {"redis.example-marker"} <= set(entries)
    pool = entries["redis.pool"]
    assert pool["engine"] == "redis" and pool["fix"] == "sometimes" and pool["rationale"]
    assert pool["options"]["idle_clients_warn"] == {
        "default": 50, "description": "With `timeout 0`, this many long-idle clients is a finding (leaked or "
        "oversized pools).",
    }
    text = dbvitals("checks")
    assert "postgres.pool" in text.stdout and "redis.example-marker" in text.stdout


def test_targets_command_reports_states(tmp_path, redis_db):
    config = write_config(tmp_path / "t.toml", {
        "cache": {"kind": "redis", "url": redis_db.url},
        "down": {"kind": "postgres", "url": f"postgresql://postgres@127.0.0.1:{support.refused_port()}/x",
                 "timeout": 2},
    })
    result = dbvitals("targets", "--config", str(config), "--format", "json")
    assert result.returncode == 1
    states = {t["name"]: t["state"] for t in json.loads(result.stdout)["targets"]}
    assert states == {"cache": "connected", "down": "refused"}


def test_a_number_written_as_a_string_exits_2_with_one_line_naming_the_key(tmp_path):
    config = tmp_path / "dbvitals.toml"
    config.write_text(f'[targets.cache]\nkind = "redis"\nurl = "{support.REDIS_URL}"\ntimeout = "5"\n')
    result = dbvitals("check", "--config", str(config))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"dbvitals: error: invalid config: {config}: targets.cache.timeout: expected a number, got the string '5' "
        "(write it without quotes)"]
    config.write_text(f'[targets.cache]\nkind = "redis"\nurl = "{support.REDIS_URL}"\n')
    from_env = dbvitals("targets", "--config", str(config), env={"DBVITALS_TARGETS__CACHE__TIMEOUT": "5"})
    assert from_env.returncode == 0, from_env.stderr
