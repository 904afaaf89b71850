"""Shared test helpers: real servers, private databases, and running checks the way the CLI does.

Every test gets its own PostgreSQL database, Redis logical database (claimed, so parallel
runs never share one) or MongoDB database, and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from checks.config import Settings, config_from_dict
from checks.registry import load_registry
from checks.runner import Runner
from checks.model import Finding, Report

PG_URL = os.environ.get("DBVITALS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DBVITALS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
MONGO_URI = os.environ.get("DBVITALS_TEST_MONGO_URI")  # unset: the suite starts SecantusDB
SECANTUS_PIN = "0.7.0b3"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pg_address() -> tuple[str, int]:
    """The test PostgreSQL server's host and port (DBVITALS_TEST_PG_URL, else 127.0.0.1:5432)."""
    parts = urlsplit(PG_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def with_path(url: str, path: str, query: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + path.lstrip("/"), parts.query if query is None else query, ""))


def free_port(below: int = 65536) -> int:
    """A free loopback port under `below` (a Redis cluster node refuses one above 55535)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < below:
            return port


def wait_until(condition: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    """Whether `condition` came true within `timeout` seconds (asked every `step` seconds): a test
    waits for what it needs, never for a fixed time, and a loaded machine only makes it slower."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


async def pg_until(url: str, condition: str, *args: Any, timeout: float = 30.0) -> None:
    """Until the server says `condition` (a query of one boolean, with `args`) is true: a session
    waiting on a lock, a transaction open this long. Its own session, polled every 50 ms."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while not await conn.fetchval(condition, *args):
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout:g}s: {condition} {args}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def secantus_binary() -> str:
    candidate = Path(sys.executable).with_name("secantusd-py")
    found = str(candidate) if candidate.exists() else shutil.which("secantusd-py")
    if not found:
        raise RuntimeError(
            f"secantusd-py not found: install the test extra (pip install -e '.[test]', SecantusDB=={SECANTUS_PIN}) "
            "or set DBVITALS_TEST_MONGO_URI to a real mongod"
        )
    return found


class SecantusServer:
    """A SecantusDB process on a free loopback port, for one test session."""

    def __init__(self, *, standalone: bool = False, storage: str = ":memory:", extra: Sequence[str] = (),
                 startup_timeout: float = 30.0) -> None:
        self.port = free_port()
        args = [secantus_binary(), "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", storage,
                "--log-level", "WARNING", *extra]
        if standalone:
            args.append("--standalone")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port, timeout=startup_timeout, process=self.process)
        except RuntimeError:
            self.stop()
            raise

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def settings_for(**targets: dict[str, Any]) -> Settings:
    return config_from_dict({"targets": targets})


def mongo_scope(check: Any, url: str = "mongodb://db.internal:27017/app", **target: Any) -> Any:
    """The Scope a MongoDB check's `evaluate` gets, for pure tests: target "app" with `target`'s keys."""
    from checks.contract import Scope, resolve_options
    from checks.model import TargetState, TargetStatus

    settings = settings_for(app={"kind": "mongodb", "url": url, **target})
    config = settings.targets["app"]
    status = TargetStatus(name="app", kind="mongodb", state=TargetState.CONNECTED, url=url)
    return Scope(target="app", config=config, options=resolve_options(type(check), "app", config), status=status)


def mongo_index(name: str, key: dict[str, Any], **options: Any) -> Any:
    """An IndexSpec as listIndexes returns it."""
    from checks.mongodb._inventory import IndexSpec

    return IndexSpec.from_document({"v": 2, "key": key, "name": name, **options})


def mongo_collection(name: str, *indexes: Any, count: int = 0, size: int = 0) -> Any:
    """A CollectionInfo of database "app" with its _id index and `indexes`."""
    from checks.mongodb._inventory import CollectionInfo

    return CollectionInfo("app", name, count, size, size, (mongo_index("_id_", {"_id": 1}), *indexes))

def write_targets_toml(tmp_path: Path, targets: dict[str, dict[str, object]], *head: str) -> Path:
    """tmp_path/dbvitals.toml: the `head` lines, then a [targets.NAME] table per target (values as
    JSON, which TOML reads the same for strings, numbers, booleans and lists)."""
    lines = list(head)
    for name, keys in targets.items():
        lines.append(f"[targets.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path = tmp_path / "dbvitals.toml"
    path.write_text("\n".join(lines) + "\n")
    return path

def run_report(settings: Settings, checks: Sequence[str] | None = None, targets: Sequence[str] | None = None) -> Report:
    runner = Runner(settings, load_registry(), targets=targets, checks=checks)
    return asyncio.run(runner.run())


async def run_report_async(
    settings: Settings, checks: Sequence[str] | None = None, targets: Sequence[str] | None = None
) -> Report:
    return await Runner(settings, load_registry(), targets=targets, checks=checks).run()


def by_check(findings: Iterable[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port (its own settings, its own counters)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class SilentServer:
    """A socket that accepts TCP connections (the kernel does) but never says anything."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class HostileServer:
    """A loopback TCP server that misbehaves one way on every connection: "ok" answers +OK to
    everything, "garbage" answers anything with a few bytes of no protocol, "reset" accepts and
    resets the connection (SO_LINGER 0), "close" accepts and closes its side (a FIN, no reply)."""

    GARBAGE = b"\x17\xfe#garbage\x00\r\n"

    def __init__(self, mode: str) -> None:
        import threading

        assert mode in {"ok", "garbage", "reset", "close"}
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading

        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            try:
                if self.mode == "close":
                    conn.shutdown(socket.SHUT_WR)
                while not self.stopping:
                    try:
                        data = conn.recv(4096)
                    except socket.timeout:
                        continue
                    if not data:
                        return
                    if self.mode != "close":
                        conn.sendall(b"+OK\r\n" if self.mode == "ok" else self.GARBAGE)
            except OSError:
                pass

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def refused_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


def postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("initdb not found under /usr/lib/postgresql: run scripts/setup.sh")
    return found[-1].parent


@contextlib.contextmanager
def private_postgres(*settings: str) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port with `-c name=value` settings (the
    shared server must never be reconfigured); its URL, and removed afterwards."""
    bindir = postgres_bindir()
    data = Path(tempfile.mkdtemp(prefix="dbvitals-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db")]
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    options = " ".join([f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} -c fsync=off",
                        *(f"-c {s}" for s in settings)])
    subprocess.run([*pg_ctl, "-l", str(data / "log"), "-w", "-o", options, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


async def kill_fix_mid_build(url: str, program: str, writer_sql: str, *, end_backend: bool = True) -> None:
    """Run `program` (a `dbvitals fix` whose CREATE INDEX CONCURRENTLY waits for the writer that
    `writer_sql` starts) in a process of its own and kill -9 it once the build waits on that lock:
    its INVALID catalog entry is committed by then. With `end_backend`, end the orphaned backend
    as a server restart would (a backend notices its client is gone only when it next talks to
    it), leaving the half-built index behind; without, the backend may go on and finish it."""
    import asyncpg

    blocker = await asyncpg.connect(url)
    admin = await asyncpg.connect(url)
    writer = blocker.transaction()
    await writer.start()
    await blocker.execute(writer_sql)
    process = subprocess.Popen([sys.executable, "-c", program], cwd=Path(__file__).parents[1], env={**os.environ},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(400):
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'dbvitals fix %' AND state = 'active' "
                "AND query ILIKE '%CREATE%INDEX%' AND wait_event_type = 'Lock'")
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, process.communicate(timeout=5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if end_backend:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'dbvitals fix %'")
    finally:
        await writer.rollback()
        await blocker.close()
        await admin.close()


async def signal_fix_mid_build(url: str, program: str, writer_sql: str, signum: int, *,
                               hold_blocker_s: float = 0.0) -> tuple[int, str, str]:
    """Run `program` (a `dbvitals fix` whose CREATE INDEX CONCURRENTLY waits for the writer that
    `writer_sql` starts), send it `signum` once the build waits on that lock, and let the writer
    end once the fix's cleanup waits for it too (its DROP INDEX CONCURRENTLY does), or after
    `hold_blocker_s` seconds. Returns the process's exit code, stdout and stderr."""
    import asyncpg

    blocker = await asyncpg.connect(url)
    admin = await asyncpg.connect(url)
    writer = blocker.transaction()
    await writer.start()
    await blocker.execute(writer_sql)
    waiting_on = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND application_name LIKE 'dbvitals fix %' AND state = 'active' "
                  "AND query ILIKE $1 AND wait_event_type = 'Lock'")
    process = subprocess.Popen([sys.executable, "-c", program], cwd=Path(__file__).parents[1], env={**os.environ},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    released = False
    try:
        for _ in range(400):
            waiting = await admin.fetchval(waiting_on, "%CREATE%INDEX%")
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, process.communicate(timeout=5)
        process.send_signal(signum)
        held_since = asyncio.get_running_loop().time()
        while process.poll() is None:
            if not released and (await admin.fetchval(waiting_on, "%DROP%INDEX%") if not hold_blocker_s
                                 else asyncio.get_running_loop().time() - held_since > hold_blocker_s):
                await writer.rollback()
                released = True
            await asyncio.sleep(0.05)
        out, err = process.communicate(timeout=10)
        return process.returncode, out, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if not released:
            await writer.rollback()
        await blocker.close()
        await admin.close()
