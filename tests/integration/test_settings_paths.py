"""Where dbvitals finds its config and keeps its state: the lookup order, the XDG and systemd
directories, a user with no home directory, and `dbvitals init`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from checks.config import ConfigError, load_config
from checks.state import default_cache_dir, default_state_dir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
TARGET = '[targets.{name}]\nkind = "redis"\nurl = "redis://cache.internal:6379/0"\n'


def _dbvitals(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**env, "PYTHONPATH": str(ROOT)})


def test_the_config_is_looked_up_here_then_under_xdg_config_home(tmp_path, monkeypatch):
    work, xdg = tmp_path / "work", tmp_path / "xdg"
    work.mkdir()
    (xdg / "dbvitals").mkdir(parents=True)
    (xdg / "dbvitals" / "config.toml").write_text(TARGET.format(name="from_xdg"))
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert list(load_config(None).targets) == ["from_xdg"]
    (work / "dbvitals.toml").write_text(TARGET.format(name="from_here"))
    assert list(load_config(None).targets) == ["from_here"]  # ./dbvitals.toml first
    (tmp_path / "named.toml").write_text(TARGET.format(name="from_variable"))
    monkeypatch.setenv("DBVITALS_CONFIG", str(tmp_path / "named.toml"))
    assert list(load_config(None).targets) == ["from_variable"]


def test_without_a_config_the_error_names_both_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert f"{tmp_path / 'dbvitals.toml'}" in str(caught.value)
    assert f"{tmp_path / 'xdg' / 'dbvitals' / 'config.toml'}" in str(caught.value)


def test_state_and_cache_follow_xdg_then_systemd_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "unit-state"))
    monkeypatch.setenv("CACHE_DIRECTORY", f"{tmp_path / 'unit-cache'}:{tmp_path / 'other'}")
    assert (default_state_dir(), default_cache_dir()) == (tmp_path / "state" / "dbvitals",
                                                          tmp_path / "cache" / "dbvitals")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert (default_state_dir(), default_cache_dir()) == (tmp_path / "unit-state", tmp_path / "unit-cache")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.delenv("CACHE_DIRECTORY")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert (default_state_dir(), default_cache_dir()) == (tmp_path / ".local" / "state" / "dbvitals",
                                                          tmp_path / ".cache" / "dbvitals")


def test_a_user_without_a_home_directory_can_save_a_snapshot(tmp_path, redis_db):
    # HOME names a directory that cannot exist (under a file): even root cannot create it, as a
    # service account without a home cannot create /nonexistent.
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "dbvitals.toml"
    config.write_text(TARGET.format(name="cache").replace("redis://cache.internal:6379/0", redis_db.url))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "DBVITALS_TARGETS"))}
    env.update(HOME=str(tmp_path / "a-file" / "home"), TMPDIR=str(tmp_path))
    result = _dbvitals("snapshot", "--config", str(config), "save", "--label", "no-home", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    private = tmp_path / f"dbvitals-{os.geteuid()}"
    assert (private / "state" / "snapshots.db").is_file()
    assert oct(private.stat().st_mode & 0o777) == "0o700"
    listed = _dbvitals("snapshot", "--config", str(config), "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "no-home" in listed.stdout, listed.stdout + listed.stderr


def test_a_private_directory_another_may_write_in_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "nowhere"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    taken = tmp_path / f"dbvitals-{os.geteuid()}"
    taken.mkdir(mode=0o777)
    taken.chmod(0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        default_state_dir()


def test_systemd_state_directory_holds_the_journal_and_snapshots(tmp_path, redis_db):
    config = tmp_path / "dbvitals.toml"
    config.write_text(TARGET.format(name="cache").replace("redis://cache.internal:6379/0", redis_db.url))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "DBVITALS_TARGETS"))}
    env.update(STATE_DIRECTORY=str(tmp_path / "var-lib-dbvitals"), CACHE_DIRECTORY=str(tmp_path / "var-cache"))
    result = _dbvitals("snapshot", "--config", str(config), "save", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var-lib-dbvitals" / "snapshots.db").is_file()


def test_init_writes_the_documented_starter_config_and_never_overwrites(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = _dbvitals("init", env=env, cwd=tmp_path)
    written = tmp_path / "xdg" / "dbvitals" / "config.toml"
    assert result.returncode == 0, result.stderr
    assert written.read_text() == EXAMPLE.read_text() and oct(written.stat().st_mode & 0o777) == "0o600"
    assert load_config(written).targets  # the starter config is a valid config
    written.write_text("# mine\n")
    again = _dbvitals("init", env=env, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "already exists: not overwritten" in again.stderr and "Traceback" not in again.stderr
    assert written.read_text() == "# mine\n"
    elsewhere = _dbvitals("init", str(tmp_path / "etc" / "dbvitals.toml"), env=env, cwd=tmp_path)
    assert elsewhere.returncode == 0 and (tmp_path / "etc" / "dbvitals.toml").read_text() == EXAMPLE.read_text()


def test_the_starter_config_is_in_the_wheel(tmp_path):
    """After a wheel install (no source tree), `dbvitals init` still finds config.example.toml."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("dbvitals-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("console/config.example.toml").decode() == EXAMPLE.read_text()
