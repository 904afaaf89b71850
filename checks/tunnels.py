"""SSH tunnels to targets behind a bastion, through the system's OpenSSH client.

The OpenSSH client rather than a Python SSH library: it already reads the operator's
~/.ssh/config, agent, known_hosts, ProxyJump and hardware keys, exactly as their own `ssh` does,
and adds no dependency. One `ssh -N` process per bastion carries a local forward (on a free
loopback port) for every server behind it, shared by every target of those servers; targets'
drivers connect to the forward. A bastion that refuses, fails authentication or never answers
makes each of its targets' connection finding say so (state `ssh_error`) within the target's
timeout; nothing is ever tried around it.

ssh's stderr is read continuously by a thread that keeps only its last few KB (for the error
message): a pipe nobody reads fills with "channel N: open failed" lines from a dead server, after
which ssh blocks writing to it and every forward of the bastion freezes.

ssh dies with this process, even when this process is SIGKILLed: the kernel sends it SIGTERM when
its parent goes (PR_SET_PDEATHSIG, Linux).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from checks.config import ConfigError, Settings, TargetBase

DEFAULT_PORTS = {"postgres": 5432, "mongodb": 27017, "redis": 6379}
BASTION = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?$")
STDERR_KEPT = 4096  # bytes of ssh's stderr kept for the error message
PR_SET_PDEATHSIG = 1


def through(url: str, host: str, port: int) -> str:
    """The URL with its host and port replaced by the local end of a forward."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def remote_endpoint(name: str, target: TargetBase) -> tuple[str, int]:
    """The server's host and port as the bastion must reach it: one TCP host, not a socket or SRV."""
    parts = urlsplit(target.url)
    kind = str(target.kind)  # type: ignore[attr-defined]
    hostinfo = parts.netloc.rpartition("@")[2]
    if parts.scheme.endswith("+srv") or "," in hostinfo or not hostinfo or parts.scheme == "unix":
        raise ConfigError(f"targets.{name}.ssh: the url must name one host and port to reach through the bastion")
    try:
        port = parts.port or DEFAULT_PORTS[kind]
    except ValueError as exc:
        raise ConfigError(f"targets.{name}.url: {exc}") from None
    return parts.hostname or "", port


@dataclass
class Tunnel:
    """One ssh process to one bastion, with its forwards: (remote host, port) -> local port."""

    bastion: str
    key: Path | None
    known_hosts: Path | None
    batch: bool
    timeout: float
    forwards: dict[tuple[str, int], int] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    error: str | None = None
    _stderr: bytes = b""
    _drain: threading.Thread | None = None

    def command(self, ssh: str) -> list[str]:
        match = BASTION.match(self.bastion)
        assert match is not None  # validated by open_tunnels
        args = [ssh, "-N", "-T",
                "-o", "ExitOnForwardFailure=yes",
                "-o", f"ConnectTimeout={max(1, int(self.timeout))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
                "-o", f"BatchMode={'yes' if self.batch else 'no'}"]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        if self.key is not None:
            args += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        if match["port"]:
            args += ["-p", match["port"]]
        for (host, port), local in self.forwards.items():
            args += ["-L", f"127.0.0.1:{local}:{host}:{port}"]
        destination = match["host"].strip("[]")
        # "--": the destination is never an option, whatever it looks like (the config refuses "-" too).
        args += ["--", f"{match['user']}@{destination}" if match["user"] else destination]
        return args

    def start(self, ssh: str) -> None:
        self.process = _spawn(self.command(ssh))
        self._drain = threading.Thread(target=self._read_stderr, name=f"dbvitals-ssh-stderr-{self.process.pid}",
                                       daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        """Until ssh closes its stderr: read everything, keep the tail."""
        assert self.process is not None and self.process.stderr is not None
        stream = self.process.stderr
        try:
            while chunk := stream.read1(65536):
                self._stderr = (self._stderr + chunk)[-STDERR_KEPT:]
        except (OSError, ValueError):  # closed under us
            pass

    def stderr_tail(self) -> str:
        """The last few KB ssh wrote to its stderr."""
        return self._stderr.decode("utf-8", "replace")

    def wait_ready(self) -> None:
        """Until every local end accepts, ssh exits (refused, auth, forward failure) or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + self.timeout + 1
        pending = set(self.forwards.values())
        while pending:
            if self.process.poll() is not None:
                if self._drain is not None:
                    self._drain.join(2)  # ssh has exited: its stderr ends at once
                message = _last_line(self.stderr_tail()) or f"exit {self.process.returncode}"
                self.error = f"ssh to {self.bastion} failed: {message}"
                return
            for port in list(pending):
                if _accepts(port):
                    pending.discard(port)
            if time.monotonic() > deadline:
                self.error = f"ssh to {self.bastion}: no tunnel within {self.timeout:g}s (the bastion did not answer)"
                self.close()
                return
            time.sleep(0.05)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._drain is not None:
            self._drain.join(2)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()


@dataclass
class Tunnels:
    tunnels: list[Tunnel] = field(default_factory=list)

    def close(self) -> None:
        for tunnel in self.tunnels:
            tunnel.close()


def open_tunnels(settings: Settings) -> tuple[Settings, Tunnels]:
    """Forwards for every target with `ssh`, its targets pointed at them (or at the failure)."""
    behind = {name: t for name, t in settings.targets.items() if t.ssh}
    opened = Tunnels()
    if not behind:
        return settings, opened
    ssh = shutil.which("ssh")
    by_bastion: dict[tuple[str, Path | None, Path | None, bool], Tunnel] = {}
    endpoints: dict[str, tuple[Tunnel, tuple[str, int]]] = {}
    for name, target in behind.items():
        assert target.ssh is not None
        if not BASTION.match(target.ssh):
            raise ConfigError(f'targets.{name}.ssh: expected "user@bastion[:port]" (got {target.ssh!r})')
        key = (target.ssh, target.ssh_key, target.ssh_known_hosts, target.ssh_batch_mode)
        tunnel = by_bastion.get(key)
        if tunnel is None:
            tunnel = by_bastion[key] = Tunnel(target.ssh, target.ssh_key, target.ssh_known_hosts,
                                              target.ssh_batch_mode, target.timeout)
        tunnel.timeout = min(tunnel.timeout, target.timeout)
        remote = remote_endpoint(name, target)
        if remote not in tunnel.forwards:
            tunnel.forwards[remote] = _free_port()
        endpoints[name] = (tunnel, remote)
    for tunnel in by_bastion.values():
        if ssh is None:
            tunnel.error = "no ssh client on this machine (Debian package openssh-client)"
            continue
        tunnel.start(ssh)
        opened.tunnels.append(tunnel)
    for tunnel in opened.tunnels:
        tunnel.wait_ready()
    targets: dict[str, Any] = {}
    for name, target in settings.targets.items():
        if name in endpoints:
            tunnel, remote = endpoints[name]
            target = target.model_copy()
            if tunnel.error:
                target._tunnel_error = tunnel.error
            else:
                target._forward = ("127.0.0.1", tunnel.forwards[remote])
        targets[name] = target
    atexit.register(opened.close)
    return settings.model_copy(update={"targets": targets}), opened


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# --- ssh dies with this process -----------------------------------------------------------------

def _dies_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGTERM the child when this process dies, however it dies
    (PR_SET_PDEATHSIG); None where there is no prctl. libc is looked up here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # it does not fail for a valid signal
        if os.getppid() != parent:  # the parent died before the request: no signal will come
            os._exit(1)

    return preexec


def _popen(args: list[str]) -> subprocess.Popen:
    # A session of its own: a Ctrl-C at the terminal reaches dbvitals, which closes the tunnel
    # itself, rather than killing ssh under a running check.
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_dies_with_parent())


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(args: list[str]) -> subprocess.Popen:
    """ssh, started by a thread that lives as long as the process: PR_SET_PDEATHSIG fires when the
    *thread* that forked the child ends, so a worker thread that opened the tunnel and returned
    would take its ssh with it. The main thread lives until exit; other callers go through one
    spawner thread that does too."""
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return _popen(args)
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbvitals-ssh-spawner")
    return _spawner.submit(_popen, args).result()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
