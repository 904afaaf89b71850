"""Targets behind an SSH bastion: a real sshd on loopback (Debian openssh-server, keys made by the
test), the same findings as a direct connection, and a bastion that never answers shown as down
within the target's timeout. And what protects the tunnel (issue #22): no local process can take
the forward and receive a password, a dead server's errors cannot freeze the bastion's other
forwards, ssh dies with dbvitals even on SIGKILL, and no ssh setting can become an ssh option."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import redis

from checks import tunnels
from checks.config import config_from_dict
from checks.connectors import connect
from checks.tunnels import open_tunnels
from tests import support

ROOT = Path(__file__).resolve().parents[2]


def sshd_binary() -> str:
    binary = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if binary is None or shutil.which("ssh") is None:
        pytest.fail("openssh-server and openssh-client are needed; run scripts/setup.sh", pytrace=False)
    return binary


@contextmanager
def bastion(tmp_path: Path):
    """An sshd of this test's own on a free loopback port: key login only, forwarding allowed."""
    binary = sshd_binary()
    home = tmp_path / "ssh"
    home.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "client_key")], check=True)
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    os.chmod(home / "authorized_keys", 0o600)
    port = support.free_port()
    config = home / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {home / 'host_key'}", f"PidFile {home / 'sshd.pid'}",
        f"AuthorizedKeysFile {home / 'authorized_keys'}", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "AllowTcpForwarding yes", "PermitRootLogin prohibit-password", "UsePAM no",
        "StrictModes no", "PermitTTY no", "X11Forwarding no", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    # Its log goes to a file: a pipe nobody reads would fill up and freeze the bastion itself.
    log = open(home / "sshd.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        support.wait_for_port(port, process=process)
        known = home / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} " + (home / "host_key.pub").read_text())
        user = os.environ.get("USER") or "root"
        yield {"ssh": f"{user}@127.0.0.1:{port}", "ssh_key": str(home / "client_key"), "ssh_known_hosts": str(known)}
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def write_config(tmp_path: Path, targets: dict[str, dict[str, object]]) -> Path:
    return support.write_targets_toml(tmp_path, targets)


def check(config: Path, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "console", "check", "--config", str(config), "--format", "json",
                             "--fail-on", "never", *args], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _ids(report: dict, target: str) -> set[tuple[str, str]]:
    # Findings that describe the schema and settings; connection latency and pool use differ by route.
    return {(f["check"], f["object"]) for f in report["findings"]
            if f["target"] == target and f["check"].split(".")[1] not in {"connection", "pool"}}


def test_same_findings_through_the_bastion_as_direct(tmp_path, pg_db, redis_db):
    pg_db.execute("CREATE TABLE parent (id int PRIMARY KEY)")
    pg_db.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))")
    pg_db.execute("CREATE TABLE loose (v text)")
    redis_db.client.mset({f"session:{i}": "x" for i in range(20)})
    with bastion(tmp_path) as ssh:
        config = write_config(tmp_path, {
            "direct_pg": {"kind": "postgres", "url": pg_db.url},
            "tunnel_pg": {"kind": "postgres", "url": pg_db.url, **ssh},
            "direct_redis": {"kind": "redis", "url": redis_db.url},
            "tunnel_redis": {"kind": "redis", "url": redis_db.url, **ssh},
        })
        report = check(config)
    states = {t["name"]: t["state"] for t in report["targets"]}
    assert set(states.values()) == {"connected"}, report["targets"]
    direct, tunnelled = _ids(report, "direct_pg"), _ids(report, "tunnel_pg")
    assert ("postgres.fk-missing-index", "public.child") in {(c, o.split(" ")[0]) for c, o in direct} or direct
    assert direct == tunnelled and direct
    assert _ids(report, "direct_redis") == _ids(report, "tunnel_redis") and _ids(report, "direct_redis")
    # The route is not the target: what is shown is the configured URL, never the forward.
    urls = {t["name"]: t["url"] for t in report["targets"]}
    assert urls["tunnel_pg"] == urls["direct_pg"]


def test_a_bastion_that_never_answers_is_down_within_the_timeout(tmp_path, pg_db):
    silent = support.SilentServer()
    try:
        config = write_config(tmp_path, {"behind": {"kind": "postgres", "url": pg_db.url, "timeout": 2,
                                                    "ssh": f"nobody@127.0.0.1:{silent.port}"}})
        started = time.monotonic()
        report = check(config, "--check", "postgres.connection")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    [target] = report["targets"]
    assert target["state"] == "ssh_error" and "did not answer" in target["error"] or "timed out" in target["error"]
    assert elapsed < 60, elapsed  # the tunnel's own limit, then the finding: never a hang (the run allows 180 s)
    [finding] = report["findings"]
    assert finding["check"] == "postgres.connection" and finding["severity"] == "critical"


def test_a_bastion_that_refuses_is_its_own_state(tmp_path, pg_db):
    config = write_config(tmp_path, {"behind": {"kind": "postgres", "url": pg_db.url, "timeout": 2,
                                                "ssh": f"nobody@127.0.0.1:{support.refused_port()}"}})
    report = check(config, "--check", "postgres.connection")
    [target] = report["targets"]
    assert target["state"] == "ssh_error" and "refused" in target["error"].lower(), target


def test_a_malformed_bastion_is_a_config_error(tmp_path, pg_db):
    config = write_config(tmp_path, {"behind": {"kind": "postgres", "url": pg_db.url, "ssh": "user@@host:x"}})
    result = subprocess.run([sys.executable, "-m", "console", "check", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "targets.behind.ssh" in result.stderr


# --- What protects the tunnel (issue #22) ---------------------------------------------------------

@contextmanager
def protected_redis(password: str):
    """A redis-server of this test's own that requires `password`."""
    port = support.free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--requirepass", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        support.wait_for_port(port, process=process)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _is_ssh(pid: int) -> bool:
    command = _cmdline(pid)
    return bool(command) and Path(command[0]).name == "ssh"


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


class Thief:
    """Another local process, racing dbvitals for its forward. It watches for the ssh that
    dbvitals (`parent`) starts and reads the local end of every -L on its command line: a TCP port
    it binds at once (ssh binds it only after logging in to the bastion, so the thief is first)
    and records every byte sent to it; a Unix socket it notes with its directory's mode."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.ssh_commands: list[list[str]] = []
        self.squatted: list[int] = []
        self.socket_dirs: dict[str, int] = {}
        self.connections = 0
        self.received = bytearray()
        self._listeners: list[socket.socket] = []
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        seen: set[int] = set()
        while not self._stop.is_set():
            for pid in _children(self.parent):
                command = _cmdline(pid)
                if pid in seen or not command or Path(command[0]).name != "ssh":
                    continue
                seen.add(pid)
                self.ssh_commands.append(command)
                for flag, spec in zip(command, command[1:]):
                    if flag == "-L":
                        self._take(spec)
            time.sleep(0.001)

    def _take(self, spec: str) -> None:
        if spec.startswith("/"):  # local_socket:host:hostport
            directory = os.path.dirname(spec.split(":")[0])
            try:
                self.socket_dirs[directory] = stat.S_IMODE(os.stat(directory).st_mode)
            except OSError:  # already removed: dbvitals has finished
                pass
            return
        parts = spec.split(":")  # [bind_address:]port:host:hostport
        port = int(parts[1] if len(parts) == 4 else parts[0])
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            return
        listener.listen(16)
        self._listeners.append(listener)
        self.squatted.append(port)
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(3)
            try:
                while data := conn.recv(4096):
                    self.received += data
            except OSError:
                pass
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._watcher.join(5)
        for listener in self._listeners:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()


def test_a_local_process_racing_for_the_forward_never_receives_the_password(tmp_path):
    password = f"pw-{uuid.uuid4().hex}"
    with protected_redis(password) as port, bastion(tmp_path) as ssh:
        config = write_config(tmp_path, {"cache": {"kind": "redis", "url": f"redis://:{password}@127.0.0.1:{port}/0",
                                                   "timeout": 3, **ssh}})
        process = subprocess.Popen([sys.executable, "-m", "console", "targets", "--config", str(config),
                                    "--format", "json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        thief = Thief(process.pid)
        try:
            out, err = process.communicate(timeout=60)
        finally:
            thief.stop()
    assert thief.ssh_commands, "the thief never saw dbvitals' ssh: the race was not run"
    assert password.encode() not in thief.received
    assert thief.connections == 0 and not thief.received, (thief.squatted, bytes(thief.received[:200]))
    # The forward is a socket in a directory no other user may enter.
    assert all(mode == 0o700 for mode in thief.socket_dirs.values()), thief.socket_dirs
    [target] = json.loads(out)["targets"]
    assert target["state"] in {"connected", "ssh_error"}, target
    assert target["state"] == "connected", target  # through the genuine tunnel
    assert password not in out + err


def _dial(url: str) -> socket.socket:
    """A raw connection to where a driver would connect for `url` (a Unix socket or host:port)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(3)
        sock.connect(unquote(parts.path))
    else:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=3)
    sock.settimeout(3)
    return sock


def test_a_dead_server_behind_the_bastion_does_not_freeze_a_live_one(tmp_path, redis_db):
    with bastion(tmp_path) as ssh:
        settings = config_from_dict({"targets": {
            "live": {"kind": "redis", "url": redis_db.url, **ssh},
            "dead": {"kind": "redis", "url": f"redis://127.0.0.1:{support.refused_port()}/0", **ssh},
        }})
        settings, opened = open_tunnels(settings)
        try:
            [tunnel] = opened.tunnels
            assert tunnel.error is None, tunnel.error
            # Every connection to the dead server makes ssh write "channel N: open failed: ..."
            # (about 60 bytes) to its stderr: 3000 of them are nearly three pipe buffers.
            dead = settings.targets["dead"].connect_url
            for attempt in range(3000):
                with _dial(dead) as sock:
                    try:
                        closed = sock.recv(1) == b""
                    except TimeoutError:
                        closed = False
                assert closed, f"ssh stopped serving its forwards after {attempt} failed connections"
            live = redis.Redis.from_url(settings.targets["live"].connect_url, socket_timeout=3,
                                        socket_connect_timeout=3)
            assert live.ping() is True
            live.close()
            tail = tunnel.stderr_tail()
            assert "open failed" in tail and len(tail.encode()) <= tunnels.STDERR_KEPT
        finally:
            opened.close()


KILLED_PARENT = """
import json, sys, time
from checks.config import load_config
from checks.tunnels import open_tunnels

settings, opened = open_tunnels(load_config(sys.argv[1]))
print(json.dumps({"ssh": [t.process.pid for t in opened.tunnels], "errors": [t.error for t in opened.tunnels]}),
      flush=True)
time.sleep(600)
"""


def test_ssh_dies_with_dbvitals_even_on_sigkill(tmp_path, redis_db):
    with bastion(tmp_path) as ssh:
        config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url, **ssh}})
        # -c: the checks package of this tree (the current directory comes first on sys.path).
        # TMPDIR: the socket directory a killed process cannot remove stays in the test's own.
        parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(config)], cwd=ROOT,
                                  env={**os.environ, "TMPDIR": str(tmp_path)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pids: list[int] = []
        try:
            line = parent.stdout.readline()
            assert line, parent.communicate(timeout=10)[1]  # the script failed: its traceback
            opened = json.loads(line)
            pids = opened["ssh"]
            assert pids and opened["errors"] == [None], opened
            assert all(_is_ssh(pid) and not _gone(pid) for pid in pids)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            assert support.wait_until(lambda: all(_gone(pid) for pid in pids), timeout=5), \
                f"ssh {pids} still running 5 s after dbvitals was killed"
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait(10)
            for pid in pids:  # only on failure: the ssh this test's child started
                if not _gone(pid) and _is_ssh(pid):
                    os.kill(pid, signal.SIGKILL)


def test_a_tunnel_opened_by_a_worker_thread_outlives_the_thread(tmp_path, redis_db):
    # PR_SET_PDEATHSIG fires when the thread that started ssh ends, not only the process.
    with bastion(tmp_path) as ssh:
        settings = config_from_dict({"targets": {"cache": {"kind": "redis", "url": redis_db.url, **ssh}}})
        result: list = []
        worker = threading.Thread(target=lambda: result.append(open_tunnels(settings)))
        worker.start()
        worker.join(30)
        [(settings, opened)] = result
        try:
            [tunnel] = opened.tunnels
            assert tunnel.error is None, tunnel.error
            with pytest.raises(subprocess.TimeoutExpired):
                tunnel.process.wait(0.5)  # still running after its thread is gone
            client = redis.Redis.from_url(settings.targets["cache"].connect_url, socket_timeout=3)
            assert client.ping() is True
            client.close()
        finally:
            opened.close()


def test_every_engine_connects_through_the_private_socket_and_tls_urls_through_the_relay(
        tmp_path, pg_db, redis_db, mongo_db):
    with bastion(tmp_path) as ssh:
        settings = config_from_dict({"targets": {
            "pg_plain": {"kind": "postgres", "url": support.with_path(pg_db.url, pg_db.name, "sslmode=disable"),
                         **ssh},
            "pg_prefer": {"kind": "postgres", "url": pg_db.url, **ssh},  # may negotiate TLS: the relay
            "cache": {"kind": "redis", "url": redis_db.url, **ssh},
            "docs": {"kind": "mongodb", "url": mongo_db.url, **ssh},
        }})
        settings, opened = open_tunnels(settings)
        try:
            [tunnel] = opened.tunnels
            assert tunnel.error is None, tunnel.error
            command = tunnel.process.args
            locals_ = [spec.split(":")[0] for flag, spec in zip(command, command[1:]) if flag == "-L"]
            # One socket per server (the two PostgreSQL targets share theirs), all in the private directory.
            assert len(locals_) == 3 and all(Path(p).parent == opened.directory for p in locals_), command
            assert stat.S_IMODE(os.stat(opened.directory).st_mode) == 0o700
            urls = {name: t.connect_url for name, t in settings.targets.items()}
            assert urls["pg_plain"].startswith("postgresql://postgres@%2F"), urls
            assert urls["cache"].startswith("unix:///") and "%2F" in urls["docs"], urls
            relay = urlsplit(urls["pg_prefer"])
            assert relay.hostname == "127.0.0.1", urls
            [forward] = [f for f in tunnel.forwards.values() if f.relay is not None]
            assert forward.relay.port == relay.port

            async def states() -> dict[str, str]:
                found = {}
                for name, target in settings.targets.items():
                    connection = await connect(name, target)
                    await connection.close()
                    found[name] = (connection.status.state.value, connection.status.error)
                return found

            assert asyncio.run(states()) == {name: ("connected", None) for name in settings.targets}
        finally:
            opened.close()
    assert not opened.directory or not os.path.exists(opened.directory)
    assert tunnel.process.poll() is not None


@pytest.mark.parametrize("keys", [
    {"ssh": "-oProxyCommand=touch${IFS}MARKER"},
    {"ssh": "nobody@-oProxyCommand=touch${IFS}MARKER"},
    {"ssh_key": "-oProxyCommand=touch MARKER"},
    {"ssh_known_hosts": "-oProxyCommand=touch MARKER"},
], ids=["ssh", "ssh-host", "ssh_key", "ssh_known_hosts"])
def test_an_ssh_setting_that_begins_with_a_dash_is_a_config_error(tmp_path, keys):
    marker = tmp_path / "proxy-command-ran"
    password = f"pw-{uuid.uuid4().hex}"
    target = {"kind": "postgres", "url": f"postgresql://app:{password}@127.0.0.1:{support.refused_port()}/x",
              "timeout": 2, "ssh": f"nobody@127.0.0.1:{support.refused_port()}"}
    target.update({k: v.replace("MARKER", str(marker)) for k, v in keys.items()})
    config = write_config(tmp_path, {"behind": target})
    result = subprocess.run([sys.executable, "-m", "console", "check", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    [key] = keys
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and f"targets.behind.{key}:" in result.stderr, result.stderr
    assert 'must not begin with "-"' in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "" and password not in result.stderr
    assert not marker.exists()


def test_a_dropped_tunnel_is_ssh_error_then_reopened_with_backoff(tmp_path, redis_db):
    with bastion(tmp_path) as ssh:
        settings = config_from_dict({"targets": {"cache": {"kind": "redis", "url": redis_db.url, "timeout": 3, **ssh}}})
        settings, opened = open_tunnels(settings)
        target = settings.targets["cache"]

        def state() -> tuple[str, str | None]:
            async def attempt() -> tuple[str, str | None]:
                connection = await connect("cache", target)
                await connection.close()
                return connection.status.state.value, connection.status.error
            return asyncio.run(attempt())

        try:
            [tunnel] = opened.tunnels
            assert state() == ("connected", None)
            first = tunnel.process.pid
            os.kill(first, signal.SIGKILL)  # the bastion dropped the connection, or someone killed ssh
            assert support.wait_until(lambda: _gone(first), timeout=10)
            dropped, reason = state()
            assert dropped == "ssh_error" and f"ssh to {ssh['ssh']} exited" in reason, (dropped, reason)
            assert support.wait_until(lambda: state() == ("connected", None), timeout=30, step=0.2), tunnel.error
            assert tunnel.process.pid != first and _is_ssh(tunnel.process.pid)
        finally:
            opened.close()
        assert tunnel.process.poll() is not None


def test_a_bastion_that_stays_down_is_retried_later_and_later(tmp_path, redis_db):
    settings = config_from_dict({"targets": {"cache": {
        "kind": "redis", "url": redis_db.url, "timeout": 2, "ssh": f"nobody@127.0.0.1:{support.refused_port()}"}}})
    settings, opened = open_tunnels(settings)
    try:
        [tunnel] = opened.tunnels
        target = settings.targets["cache"]
        starts: list[int] = []
        deadline = time.monotonic() + 20
        while len(starts) < 3 and time.monotonic() < deadline:
            assert target.tunnel_error is not None and "refused" in target.tunnel_error.lower()
            if tunnel.process.pid not in starts:
                starts.append(tunnel.process.pid)
            time.sleep(0.05)
        # Opened once, then retried in the background after 1 s and 2 s: asking never waits for ssh.
        assert len(starts) == 3, starts
    finally:
        opened.close()


def test_record_killed_leaves_no_ssh_behind(tmp_path, redis_db):
    with bastion(tmp_path) as ssh:
        config = support.write_targets_toml(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url, **ssh}},
                                            f'journal = "{tmp_path / "journal.jsonl"}"')
        record = subprocess.Popen([sys.executable, "-m", "console", "record", "--config", str(config),
                                   "--every", "5s"], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while "snapshot " not in (line := record.stderr.readline()):  # the first one is taken
                assert line, record.communicate(timeout=10)[1]
            tunnels_of_record = [pid for pid in _children(record.pid) if _is_ssh(pid)]
            assert tunnels_of_record, "record reaches the target through an ssh tunnel of its own"
            record.send_signal(signal.SIGKILL)
            record.wait(10)
            assert support.wait_until(lambda: all(_gone(pid) for pid in tunnels_of_record), timeout=5), tunnels_of_record
        finally:
            if record.poll() is None:
                record.kill()
                record.wait(10)
