"""Disposable PostgreSQL, Redis and SecantusDB (MongoDB wire protocol) servers on free loopback
ports, with their data in one directory. Never touches servers the user already runs, and stops
and removes only what it can show it started (console/demo/ownership.py)."""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from checks.processes import dies_with_parent
from console.demo import ownership
from console.demo.ownership import DemoRefused  # noqa: F401 - re-exported for the command

STATE_FILE = "demo-state.json"


class DemoError(Exception):
    """A demo set-up failure, phrased for the user."""


@dataclass
class Server:
    name: str
    port: int
    pid: int
    url: str
    start_time: int  # /proc/PID/stat field 22 once listening: tells the server from a successor on its pid
    exe: str
    cmdline: list[str]

    def as_record(self) -> dict:
        return {"name": self.name, "port": self.port, "pid": self.pid, "url": self.url,
                "start_time": self.start_time, "exe": self.exe, "cmdline": self.cmdline}


@dataclass
class Playground:
    directory: Path  # a real path (no symlink in it)
    token_sha256: str
    servers: list[Server] = field(default_factory=list)
    pg_home: Path | None = None  # PostgreSQL's home outside the directory (run as root)
    device: int = 0
    inode: int = 0
    record_file: Path | None = None  # dbvitals' record of it, fixed when it starts or is verified
    kept: bool = False  # `--keep`: the servers outlive this process; otherwise they end with it
    _token: str = field(default="", repr=False)  # known only to the process that started it
    _children: dict[int, subprocess.Popen] = field(default_factory=dict, repr=False)

    def url(self, name: str) -> str:
        return next(s.url for s in self.servers if s.name == name)

    def save(self) -> None:
        """dbvitals' own record (what `--stop` trusts), then the state file for people to read."""
        if self.record_file is None:
            self.record_file = ownership.record_path(self.directory)
        ownership.write_record(self.record_file, {
            "magic": ownership.RECORD_MAGIC, "directory": str(self.directory), "device": self.device,
            "inode": self.inode, "token_sha256": self.token_sha256,
            "pg_home": str(self.pg_home) if self.pg_home else None,
            "servers": [s.as_record() for s in self.servers],
        })
        state = {
            "note": "for reading only: `dbvitals demo --stop` goes by dbvitals' own record, not this file",
            "directory": str(self.directory),
            "servers": [{"name": s.name, "port": s.port, "pid": s.pid, "url": s.url} for s in self.servers],
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def verified(cls, given: str) -> Playground:
        """The playground at `given` as dbvitals recorded it; DemoRefused unless dbvitals created
        it (see console/demo/ownership.py). Nothing is read from the directory's state file."""
        directory, record = ownership.verify_directory(given)
        servers = [Server(**{key: s[key] for key in Server.__dataclass_fields__}) for s in record["servers"]]
        return cls(directory, record["token_sha256"], servers, Path(record["pg_home"]) if record["pg_home"] else None,
                   record["device"], record["inode"], ownership.record_path(directory))

    def stop(self) -> list[str]:
        """Stop the servers (this process's own children directly, others only when /proc shows
        they are still this playground's), then remove the directory and PostgreSQL's home after
        checking their markers. One line per thing done or left."""
        lines = []
        for server in reversed(self.servers):
            child = self._children.pop(server.pid, None)
            if child is None:
                lines.append(ownership.stop_server(server.as_record(), self.directory, self.pg_home))
            elif child.poll() is not None:
                lines.append(f"{server.name} (pid {server.pid}) was not running")
            else:
                _kill_child(child)
                lines.append(f"stopped {server.name} (pid {server.pid}, port {server.port})")
        self.servers.clear()
        if self.pg_home is not None:
            lines.append(ownership.remove_tree(self.pg_home, self.token_sha256))
        lines.append(ownership.remove_tree(self.directory, self.token_sha256))
        if not os.path.lexists(self.directory) and self.record_file is not None:
            ownership.forget_record(self.record_file)
        return lines


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


def _kill_child(process: subprocess.Popen) -> None:
    """Stop a server that is this process's own child (unreaped: its pid cannot have been reused)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # PostgreSQL: fast shutdown; Redis and SecantusDB stop too
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _spawn(args: list[str], log: Path, *, user: str | None = None, kept: bool = False) -> subprocess.Popen:
    """A server in a session of its own (a Ctrl-C reaches dbvitals, which stops it in order).
    Unless kept, the kernel stops it (SIGINT: PostgreSQL's fast shutdown) when dbvitals dies,
    even by SIGKILL, so a killed demo leaves no server running."""
    with open(log, "ab") as handle:
        kwargs: dict = {"stdout": handle, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL,
                        "start_new_session": True,
                        "preexec_fn": None if kept else dies_with_parent(signal.SIGINT)}
        if user is not None:
            kwargs["user"] = user
        return subprocess.Popen(args, **kwargs)


def _launch(playground: Playground, name: str, label: str, args: list[str], log: Path, port: int, url: str,
            *, user: str | None = None) -> Server:
    """Start a server, wait until it listens, and record who it is (/proc) before anything else."""
    process = _spawn(args, log, user=user, kept=playground.kept)
    try:
        _wait_for_port(port, process, label, log)
        identity = ownership.read_identity(process.pid)
        if identity is None:
            raise DemoError(f"{label} exited at start-up; its log: {log}")
    except BaseException:
        _kill_child(process)
        raise
    server = Server(name, port, process.pid, url, identity.start_time, identity.exe, identity.cmdline)
    playground.servers.append(server)
    playground._children[process.pid] = process
    playground.save()
    return server


def postgres_bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise DemoError("PostgreSQL server binaries not found (initdb); run scripts/setup.sh (Debian package postgresql)")


def start_postgres(playground: Playground) -> Server:
    bin_dir = postgres_bin_dir()
    home = playground.directory
    user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as the packaged postgres user, in a directory
        # of its own (the playground's parents may not be traversable by that user). The home
        # stays root's, with the playground's marker; only what PostgreSQL writes is postgres's.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise DemoError("running as root needs the 'postgres' system user (Debian package postgresql)") from None
        user = "postgres"
        home = Path(os.path.realpath(tempfile.mkdtemp(prefix=ownership.PG_HOME_PREFIX)))
        os.chmod(home, 0o755)
        ownership.write_marker(home, playground._token)
        playground.pg_home = home
        playground.save()
    data = home / "postgres"
    socket_dir = home / "pg-socket"
    for path in (data, socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(path, user, user)
    log = home / "postgres.log"
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, user=user,
    )
    if init.returncode != 0:
        raise DemoError(f"initdb failed: {init.stderr.strip()[-400:]}")
    port = free_port()
    return _launch(
        playground, "postgres", "PostgreSQL",
        [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(socket_dir),
         "-c", "listen_addresses=127.0.0.1", "-c", "shared_preload_libraries=pg_stat_statements",
         "-c", "fsync=off", "-c", "max_connections=60"],
        log, port, f"postgresql://postgres@127.0.0.1:{port}/postgres", user=user,
    )


def _redis_keeps_its_command_line(binary: str) -> list[str]:
    """`--set-proc-title no` where Redis knows it (6.2+): /proc then shows the command line it was
    started with, --dir included, for `--stop` to check."""
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    match = re.search(r"v=(\d+)\.(\d+)", version)
    return ["--set-proc-title", "no"] if match and (int(match[1]), int(match[2])) >= (6, 2) else []


def start_redis(playground: Playground) -> Server:
    binary = shutil.which("redis-server")
    if not binary:
        raise DemoError("redis-server not found; run scripts/setup.sh (Debian package redis-server)")
    directory = playground.directory
    port = free_port()
    # A mixed cache under allkeys-lfu (redis.memory-policy, redis.hot-keys have a case), the latency
    # monitor on and DEBUG SLEEP allowed on loopback: the seed provokes one slow command on purpose.
    return _launch(
        playground, "redis", "Redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--daemonize", "no", "--maxmemory", "256mb",
         "--maxmemory-policy", "allkeys-lfu", "--latency-monitor-threshold", "25",
         "--enable-debug-command", "local", *_redis_keeps_its_command_line(binary)],
        directory / "redis.log", port, f"redis://127.0.0.1:{port}",
    )


def start_mongodb(playground: Playground) -> Server:
    candidate = Path(sys.executable).with_name("secantusd-py")
    binary = str(candidate) if candidate.exists() else shutil.which("secantusd-py")
    if not binary:
        raise DemoError("SecantusDB not installed: pip install 'dbvitals[demo]' (or run scripts/setup.sh)")
    directory = playground.directory
    port = free_port()
    return _launch(
        playground, "mongodb", "SecantusDB",
        [binary, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(directory / "mongodb"),
         "--log-level", "WARNING"],
        directory / "secantus.log", port, f"mongodb://127.0.0.1:{port}",
    )


def _claim(directory: Path) -> Path:
    """The real path of `directory`, new or empty: the demo removes it when it stops, so it never
    takes a directory holding anything else."""
    if os.path.islink(directory):
        raise DemoError(f"{directory} is a symbolic link; give a new or empty directory")
    if directory.exists():
        if not directory.is_dir():
            raise DemoError(f"{directory} is not a directory")
        if any(directory.iterdir()):
            raise DemoError(f"{directory} is not empty: the demo removes its directory when it stops, "
                            "so it takes only a new or empty one")
        if directory.stat().st_uid != os.geteuid():
            raise DemoError(f"{directory} belongs to another user")
    else:
        directory.mkdir(parents=True)
    return Path(os.path.realpath(directory))


def start_playground(directory: Path, *, keep: bool = False) -> Playground:
    """The three servers in `directory`; with `keep` they outlive this process (`--keep`)."""
    try:
        real = _claim(directory)
    except OSError as exc:
        raise DemoError(f"{directory}: {exc.strerror or exc}") from None
    token = secrets.token_hex(32)
    ownership.write_marker(real, token)
    info = os.lstat(real)
    playground = Playground(real, ownership.token_digest(token), device=info.st_dev, inode=info.st_ino,
                            kept=keep, _token=token)
    try:
        playground.save()
        for start in (start_postgres, start_redis, start_mongodb):
            start(playground)
    except BaseException:
        playground.stop()
        raise
    return playground
