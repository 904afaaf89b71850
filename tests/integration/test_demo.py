"""The demo end to end: disposable servers, every seeded problem found, safe fixes applied and gone."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from checks.config import load_config
from checks.registry import load_registry
from checks.runner import Runner
from checks.fixes import Journal, apply_fix, plan_fix
from checks.model import FixSafety
from console.commands.demo import create_demo
from console.demo.ownership import MARKER, MARKER_MAGIC
from console.demo.seed import SEEDED_PROBLEMS
from console.demo.servers import STATE_FILE, start_playground
from tests import support


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(base / "state"))  # dbvitals' record of the playground
        playground, config_path = create_demo(base / "playground")
        try:
            yield playground, config_path
        finally:
            playground.stop()


def _report(settings, registry):
    return asyncio.run(Runner(settings, registry).run())


def test_every_seeded_problem_is_found_and_safe_fixes_make_them_go(demo, tmp_path):
    playground, config_path = demo
    settings = load_config(config_path)
    # The demo journals into its own directory, never into the user's journal.
    assert settings.journal == playground.directory / "journal.jsonl"
    registry = load_registry()
    report = _report(settings, registry)
    assert report.errors == []
    assert {t.state.value for t in report.targets} == {"connected"}
    found = {(f.check, f.object) for f in report.findings}
    missing = [
        (check, fragment) for check, fragment in SEEDED_PROBLEMS
        if not any(c == check and fragment in obj for c, obj in found)
    ]
    assert missing == [], f"seeded problems not found: {missing}"

    safe = [f for f in report.findings if f.fix is not None and f.fix.safety is FixSafety.SAFE]
    assert {f.check for f in safe} >= {"postgres.fk-missing-index", "postgres.duplicate-index"}
    journal = Journal(tmp_path / "journal.jsonl")

    async def apply_all():
        outcomes = []
        for finding in safe:
            plan = await plan_fix(settings, registry, finding)
            outcomes.append((finding, await apply_fix(settings, registry, plan, journal=journal)))
        return outcomes

    outcomes = asyncio.run(apply_all())
    assert [(f.check, o.outcome) for f, o in outcomes] == [(f.check, "fixed") for f in safe]
    after = {f.id for f in _report(settings, registry).findings}
    assert not after & {f.id for f in safe}
    assert len(journal.entries()) == len(safe)


def test_headless_demo_command_prints_a_report_and_removes_its_servers(tmp_path):
    directory = tmp_path / "headless"
    result = subprocess.run(
        [sys.executable, "-m", "console", "demo", "--headless", "--format", "json", "--dir", str(directory)],
        capture_output=True, text=True, timeout=300,
    )
    # The demo's seeded problems fail the gate as `dbvitals check` would (the Markdown
    # report says so too): exit 1, not 0.
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "dbvitals.report/1"
    checks = {f["check"] for f in report["findings"]}
    assert {"postgres.fk-type-mismatch", "mongodb.ttl-coverage", "redis.ttl-coverage"} <= checks
    assert not directory.exists()


# --- `demo --stop DIR` stops and removes only what dbvitals started --------------------------------
# The state file in a playground is the attacker's to write: none of these tests may end with a
# process or a directory of someone else's gone.


def _dbvitals(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _running(pid: int, start_time: int) -> bool:
    """That very process (pid and /proc start time) is alive; a zombie has stopped."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0] not in ("Z", "X") and int(fields[19]) == start_time


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def _refused(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "refused" in result.stderr and "nothing was stopped or removed" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.fixture
def sleeper():
    """An unrelated process a hostile state file names: its own process group and session, as the
    demo's servers have, so a killpg on its pid would reach it."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def outside(tmp_path):
    """Someone else's directory, with something in it."""
    directory = tmp_path / "outside"
    (directory / "nested").mkdir(parents=True)
    (directory / "precious.txt").write_text("not the demo's")
    (directory / "nested" / "more.txt").write_text("nor this")
    return directory


def _hostile_state(directory: Path, sleeper: subprocess.Popen, outside: Path) -> None:
    """A state file naming an unrelated process and another directory, in every field the state
    file ever had (the old `--stop` killed `pid` and removed `directory` and `data_dir`)."""
    servers = [{"name": name, "port": 1, "pid": sleeper.pid, "url": "redis://127.0.0.1:1", "data_dir": str(outside)}
               for name in ("postgres", "redis", "mongodb")]
    (directory / STATE_FILE).write_text(json.dumps({"directory": str(outside), "servers": servers}))


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """One `dbvitals demo --keep` playground for the --stop tests (the last of them stops it):
    its directory, the environment the CLI runs in, and dbvitals' record of it."""
    base = tmp_path_factory.mktemp("kept")
    env = {**os.environ, "XDG_STATE_HOME": str(base / "state")}
    directory = base / "playground"
    result = _dbvitals("demo", "--keep", "--dir", str(directory), env=env, timeout=300)
    record = None
    try:
        assert result.returncode == 0, result.stderr
        (record_file,) = (base / "state" / "dbvitals" / "demo-playgrounds").glob("*.json")
        record = json.loads(record_file.read_text())
        assert {s["name"] for s in record["servers"]} == {"postgres", "redis", "mongodb"}
        yield directory, env, record
    finally:
        # A test that failed before the genuine stop leaves the servers: end them by the pid and
        # start time the test read from the record, and remove PostgreSQL's home.
        if record is None:
            _dbvitals("demo", "--stop", str(directory), env=env)
        else:
            for server in record["servers"]:
                if _running(server["pid"], server["start_time"]):
                    os.kill(server["pid"], signal.SIGKILL)
            if record["pg_home"]:
                shutil.rmtree(record["pg_home"], ignore_errors=True)


def test_stop_refuses_a_directory_without_the_marker(tmp_path, sleeper, outside):
    fake = tmp_path / "fake"
    fake.mkdir()
    _hostile_state(fake, sleeper, outside)
    (fake / "mongodb").mkdir()
    (fake / "mongodb" / "data.wt").write_text("someone's")
    before, outside_before = _tree(fake), _tree(outside)

    result = _dbvitals("demo", "--stop", str(fake))

    _refused(result)
    assert "not a dbvitals demo playground" in result.stderr
    assert sleeper.poll() is None
    assert _tree(fake) == before and _tree(outside) == outside_before


def test_stop_refuses_a_forged_playground_and_leaves_the_process_and_directory_it_names(
        kept, tmp_path, sleeper, outside):
    directory, env, record = kept
    # A marker in the right format with a token of the forger's, and then a copy of the genuine
    # playground's own marker: neither is in dbvitals' record for this directory.
    forged = tmp_path / "forged"
    forged.mkdir()
    _hostile_state(forged, sleeper, outside)
    for marker in (f"{MARKER_MAGIC}\n{secrets.token_hex(32)}\n", (directory / MARKER).read_text()):
        (forged / MARKER).write_text(marker)
        before, outside_before = _tree(forged), _tree(outside)

        result = _dbvitals("demo", "--stop", str(forged), env=env)

        _refused(result)
        assert "no record of starting a demo" in result.stderr
        assert sleeper.poll() is None
        assert _tree(forged) == before and _tree(outside) == outside_before
    # The genuine playground whose marker was copied is untouched too.
    assert all(_running(s["pid"], s["start_time"]) for s in record["servers"])
    assert directory.is_dir()


def test_stop_refuses_a_symlink_to_a_playground(kept, tmp_path):
    directory, env, record = kept
    link = tmp_path / "link"
    link.symlink_to(directory, target_is_directory=True)
    for given in (str(link), f"{link}/"):
        result = _dbvitals("demo", "--stop", given, env=env)
        _refused(result)
        assert "symbolic link" in result.stderr
    assert all(_running(s["pid"], s["start_time"]) for s in record["servers"])
    assert (directory / MARKER).is_file()


def test_stop_stops_the_demo_servers_and_removes_only_the_playground(kept, sleeper, outside):
    """Last of the `kept` tests: it stops the playground. Its state file names an unrelated process
    and another directory, and its MongoDB data directory is now a symlink to that directory."""
    directory, env, record = kept
    _hostile_state(directory, sleeper, outside)
    (directory / "mongodb").rename(directory / "mongodb.moved")
    (directory / "mongodb").symlink_to(outside, target_is_directory=True)
    outside_before = _tree(outside)
    servers = record["servers"]
    assert all(_running(s["pid"], s["start_time"]) and _port_open(s["port"]) for s in servers)

    result = _dbvitals("demo", "--stop", str(directory), env=env)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for server in servers:
        assert f"stopped {server['name']} (pid {server['pid']}, port {server['port']})" in result.stdout
        assert not _running(server["pid"], server["start_time"])
        assert not _port_open(server["port"])
    assert f"removed {directory}" in result.stdout
    assert not os.path.lexists(directory)
    if record["pg_home"]:  # run as root: PostgreSQL's home outside the playground goes too
        assert f"removed {record['pg_home']}" in result.stdout
        assert not os.path.lexists(record["pg_home"])
    assert not list((Path(env["XDG_STATE_HOME"]) / "dbvitals" / "demo-playgrounds").glob("*.json"))
    # What the state file named, and what the symlink led to, are still there.
    assert sleeper.poll() is None
    assert _tree(outside) == outside_before

    again = _dbvitals("demo", "--stop", str(directory), env=env)
    _refused(again)
    assert "no such directory" in again.stderr


def test_stop_does_not_signal_a_recorded_pid_that_is_now_another_process(tmp_path, sleeper):
    """dbvitals' own record can outlive its servers (a reboot, a crash) and their pids be reused:
    the process on a recorded pid is signalled only when /proc shows it is that server."""
    playground = start_playground(tmp_path / "playground")
    started = list(playground.servers)
    try:
        record_file = playground.record_file
        record = json.loads(record_file.read_text())
        sleeper_start = int(Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        by_name = {s["name"]: s for s in record["servers"]}
        by_name["redis"]["pid"] = sleeper.pid  # the pid reused: the start time no longer matches
        by_name["mongodb"].update(pid=sleeper.pid, start_time=sleeper_start)  # even with its start time
        record_file.write_text(json.dumps(record))
        postgres = by_name["postgres"]

        result = _dbvitals("demo", "--stop", str(playground.directory))

        assert result.returncode == 0, result.stderr
        assert (f"pid {sleeper.pid} is not the demo's redis (started at another time: the pid was reused): "
                "not signalled") in result.stdout
        assert f"pid {sleeper.pid} is not the demo's mongodb (runs " in result.stdout
        assert sleeper.poll() is None
        assert f"stopped postgres (pid {postgres['pid']}" in result.stdout
        assert not _running(postgres["pid"], postgres["start_time"])
        assert not playground.directory.exists()
    finally:
        lines = playground.stop()  # the in-process record still knows the real Redis and SecantusDB
    assert any(line.startswith("stopped redis") for line in lines), lines
    assert any(line.startswith("stopped mongodb") for line in lines), lines
    assert len(started) == 3 and not any(_running(s.pid, s.start_time) for s in started)


def test_demo_takes_only_a_new_or_empty_directory(tmp_path, outside):
    before = _tree(outside)
    result = _dbvitals("demo", "--keep", "--dir", str(outside))
    if result.returncode == 0:  # it took the directory: do not leave its servers running
        _dbvitals("demo", "--stop", str(outside))
    assert result.returncode == 2, result.stdout
    assert "is not empty" in result.stderr and "Traceback" not in result.stderr
    assert _tree(outside) == before


KILLED_DEMO = """
import json, sys, time
from pathlib import Path
from console.demo.servers import start_playground

playground = start_playground(Path(sys.argv[1]))
print(json.dumps({"pids": [s.pid for s in playground.servers],
                  "pg_home": str(playground.pg_home) if playground.pg_home else None}), flush=True)
time.sleep(600)
"""


def test_the_demo_servers_stop_when_dbvitals_is_killed(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    parent = subprocess.Popen([sys.executable, "-c", KILLED_DEMO, str(tmp_path / "playground")],
                              cwd=Path(__file__).resolve().parents[2], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: dict = {"pids": [], "pg_home": None}
    try:
        line = parent.stdout.readline()
        assert line, parent.communicate(timeout=10)[1]
        started = json.loads(line)
        assert len(started["pids"]) == 3 and all(_alive(pid) for pid in started["pids"])
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert support.wait_until(lambda: not any(_alive(pid) for pid in started["pids"]), timeout=30), \
            [pid for pid in started["pids"] if _alive(pid)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        for pid in started["pids"]:  # only on failure: the servers this test's child started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if started["pg_home"]:
            shutil.rmtree(started["pg_home"], ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running: not gone, and not a zombie its (killed) parent left for init to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
