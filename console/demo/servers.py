"""Disposable PostgreSQL, Redis and SecantusDB (MongoDB wire protocol) servers on free loopback
ports, with their data in one directory. Never touches servers the user already runs."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "demo-state.json"


class DemoError(Exception):
    """A demo set-up failure, phrased for the user."""


@dataclass
class Server:
    name: str
    port: int
    pid: int
    url: str
    data_dir: str | None = None  # kept outside the playground directory (PostgreSQL run as root)


@dataclass
class Playground:
    directory: Path
    servers: list[Server] = field(default_factory=list)

    def url(self, name: str) -> str:
        return next(s.url for s in self.servers if s.name == name)

    def save(self) -> None:
        state = {"directory": str(self.directory), "servers": [asdict(s) for s in self.servers]}
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Playground:
        state = json.loads((directory / STATE_FILE).read_text())
        return cls(Path(state["directory"]), [Server(**s) for s in state["servers"]])

    def stop(self, *, remove: bool = True) -> None:
        for server in reversed(self.servers):
            _terminate(server.pid)
            if remove and server.data_dir:
                shutil.rmtree(server.data_dir, ignore_errors=True)
        self.servers.clear()
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{name} exited at start-up (code {process.returncode}); its log: {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise DemoError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s; its log: {log}")


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGINT)  # PostgreSQL: fast shutdown; the others stop on SIGINT too
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _spawn(args: list[str], log: Path, *, user: str | None = None) -> subprocess.Popen:
    handle = open(log, "ab")
    kwargs: dict = {"stdout": handle, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL,
                    "start_new_session": True}
    if user is not None:
        kwargs["user"] = user
    return subprocess.Popen(args, **kwargs)


def postgres_bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise DemoError("PostgreSQL server binaries not found (initdb); run scripts/setup.sh (Debian package postgresql)")


def start_postgres(directory: Path) -> Server:
    bin_dir = postgres_bin_dir()
    home = directory
    user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as the packaged postgres user, in a directory
        # of its own (the playground's parents may not be traversable by that user).
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise DemoError("running as root needs the 'postgres' system user (Debian package postgresql)") from None
        user = "postgres"
        home = Path(tempfile.mkdtemp(prefix="dbvitals-demo-pg-"))
        shutil.chown(home, user, user)
    data = home / "postgres"
    socket_dir = home / "pg-socket"
    for path in (data, socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(path, user, user)
    log = home / "postgres.log"
    if user:
        log.touch()
        shutil.chown(log, user, user)
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, user=user,
    )
    if init.returncode != 0:
        if home != directory:
            shutil.rmtree(home, ignore_errors=True)
        raise DemoError(f"initdb failed: {init.stderr.strip()[-400:]}")
    port = free_port()
    process = _spawn(
        [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(socket_dir),
         "-c", "listen_addresses=127.0.0.1", "-c", "shared_preload_libraries=pg_stat_statements",
         "-c", "fsync=off", "-c", "max_connections=60"],
        log, user=user,
    )
    server = Server("postgres", port, process.pid, f"postgresql://postgres@127.0.0.1:{port}/postgres",
                    data_dir=str(home) if home != directory else None)
    try:
        _wait_for_port(port, process, "PostgreSQL", log)
    except DemoError:
        _terminate(process.pid)
        if server.data_dir:
            shutil.rmtree(server.data_dir, ignore_errors=True)
        raise
    return server


def start_redis(directory: Path) -> Server:
    binary = shutil.which("redis-server")
    if not binary:
        raise DemoError("redis-server not found; run scripts/setup.sh (Debian package redis-server)")
    port = free_port()
    log = directory / "redis.log"
    # A mixed cache under allkeys-lfu (redis.memory-policy, redis.hot-keys have a case), the latency
    # monitor on and DEBUG SLEEP allowed on loopback: the seed provokes one slow command on purpose.
    process = _spawn([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                      "--dir", str(directory), "--daemonize", "no", "--maxmemory", "256mb",
                      "--maxmemory-policy", "allkeys-lfu", "--latency-monitor-threshold", "25",
                      "--enable-debug-command", "local"], log)
    _wait_for_port(port, process, "Redis", log)
    return Server("redis", port, process.pid, f"redis://127.0.0.1:{port}")


def start_mongodb(directory: Path) -> Server:
    candidate = Path(sys.executable).with_name("secantusd-py")
    binary = str(candidate) if candidate.exists() else shutil.which("secantusd-py")
    if not binary:
        raise DemoError("SecantusDB not installed: pip install 'dbvitals[demo]' (or run scripts/setup.sh)")
    port = free_port()
    log = directory / "secantus.log"
    storage = directory / "mongodb"
    process = _spawn([binary, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage),
                      "--log-level", "WARNING"], log)
    _wait_for_port(port, process, "SecantusDB", log)
    return Server("mongodb", port, process.pid, f"mongodb://127.0.0.1:{port}")


def start_playground(directory: Path) -> Playground:
    directory.mkdir(parents=True, exist_ok=True)
    playground = Playground(directory)
    try:
        for start in (start_postgres, start_redis, start_mongodb):
            playground.servers.append(start(directory))
            playground.save()
    except BaseException:
        playground.stop()
        raise
    return playground
