"""SSH tunnels to targets behind a bastion, through the system's OpenSSH client.

The OpenSSH client rather than a Python SSH library: it already reads the operator's
~/.ssh/config, agent, known_hosts, ProxyJump and hardware keys, exactly as their own `ssh` does,
and adds no dependency. One `ssh -N` process per bastion carries a local forward for every
server behind it, shared by every target of those servers; targets' drivers connect to the
forward. A bastion that refuses, fails authentication or never answers makes each of its
targets' connection finding say so (state `ssh_error`) within the target's timeout; nothing is
ever tried around it. A tunnel whose ssh exits mid-run is reopened with backoff (Tunnel);
its targets are `ssh_error` meanwhile.

What protects the forward (issue #22):

- ssh listens on a Unix socket in a directory this process creates with mode 0700
  (tempfile.mkdtemp), never on a loopback TCP port. A port would have to be picked by dbvitals,
  released, and bound again by ssh once it has logged in to the bastion; a local process that
  binds it first receives the driver's first bytes, the database password among them. Nobody
  but this user can create, replace or connect to a socket in that directory.
- Drivers connect to the socket itself (asyncpg: the directory as host and `.s.PGSQL.N` in it;
  redis-py: `unix://`; pymongo: the percent-encoded path ending in `.sock`) unless the URL lets
  them speak TLS: asyncpg and redis-py never speak TLS over a Unix socket and pymongo would check
  the certificate against the path. Those targets (PostgreSQL sslmode other than disable, the
  default `prefer` included; `rediss://`; MongoDB tls/ssl options) keep their TLS by connecting
  to a loopback TCP relay in this process: a port it binds itself (port 0, never predicted) and
  holds until exit, relaying to the socket, so there is no moment at which another process can
  take it. (Other local users can connect to the relay, as to any loopback forward; they meet
  the database's own authentication.)
- ssh's stderr is read continuously by a thread that keeps only its last few KB (for the error
  message): a pipe nobody reads fills with "channel N: open failed" lines from a dead server,
  after which ssh blocks writing to it and every forward of the bastion freezes.
- ssh dies with this process, even when this process is SIGKILLed: the kernel sends it SIGTERM
  when its parent goes (PR_SET_PDEATHSIG, Linux). Only the private directory, its sockets dead,
  stays behind after a SIGKILL.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from checks.config import ConfigError, Settings, TargetBase
from checks.engines import adapter_for
from checks.processes import dies_with_parent

BASTION = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?$")
STDERR_KEPT = 4096  # bytes of ssh's stderr kept for the error message
REOPEN_FIRST_DELAY = 1.0  # seconds before the first reopen of a dropped tunnel; doubled each failure
REOPEN_MAX_DELAY = 60.0
_SOCKET_PATH_MAX = 103  # sun_path holds 108 bytes on Linux, 104 (with the NUL) on the BSDs
_LONGEST_SOCKET = "/dbvitals-ssh-12345678/.s.PGSQL.99999"  # what the private directory adds


def through(url: str, host: str, port: int) -> str:
    """The URL with its host and port replaced by the local end of a forward."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def remote_endpoint(name: str, target: TargetBase) -> tuple[str, int]:
    """The server's host and port as the bastion must reach it: one TCP host, not a socket or SRV."""
    parts = urlsplit(target.url)
    kind = str(target.kind)
    hostinfo = parts.netloc.rpartition("@")[2]
    if parts.scheme.endswith("+srv") or "," in hostinfo or not hostinfo or parts.scheme == "unix":
        raise ConfigError(f"targets.{name}.ssh: the url must name one host and port to reach through the bastion")
    try:
        port = parts.port or adapter_for(kind).default_port
    except ValueError as exc:
        raise ConfigError(f"targets.{name}.url: {exc}") from None
    if port is None:
        raise ConfigError(f"targets.{name}.ssh: the url must name the port to reach through the bastion")
    return parts.hostname or "", port


class Relay:
    """A loopback TCP port this process binds (port 0) and holds until it closes, relaying every
    connection to a forward's Unix socket: for drivers that speak TLS only over TCP."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._serve, name=f"dbvitals-relay-{self.port}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._carry, args=(client,), name="dbvitals-relay-conn", daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            if self._closed:
                client.close()
                upstream.close()
                return
            self._open.update((client, upstream))
        try:
            upstream.connect(str(self.path))
        except OSError:  # ssh is gone: the driver sees the connection closed
            self._forget(client, upstream)
            return
        back = threading.Thread(target=_pump, args=(upstream, client), name="dbvitals-relay-back", daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        self._forget(client, upstream)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)
        for sock in socks:
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            open_now = list(self._open)
        _shut(self._listener)
        self._listener.close()
        for sock in open_now:
            _shut(sock)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Bytes from source to sink until source ends (then sink's write side is closed, so the far
    end sees the same end) or either fails (then both are shut, waking the other direction)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        _shut(source)
        _shut(sink)
        return
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        _shut(source)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@dataclass
class Forward:
    """One server behind a bastion: ssh's Unix socket for it, and (when a target's URL may use
    TLS) this process's relay to that socket."""

    kind: str
    remote: tuple[str, int]
    path: Path
    relay: Relay | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spec(self) -> str:
        """ssh's -L argument: the socket, then the server as the bastion reaches it."""
        host, port = self.remote
        return f"{self.path}:{f'[{host}]' if ':' in host else host}:{port}"

    def url(self, url: str) -> str:
        """The URL a driver connects to for `url`: the socket itself, or the relay for TLS."""
        direct = adapter_for(self.kind).socket_url(url, self.path)
        if direct is not None:
            return direct
        with self._lock:
            if self.relay is None:
                self.relay = Relay(self.path)
        return through(url, "127.0.0.1", self.relay.port)

    def close(self) -> None:
        with self._lock:
            if self.relay is not None:
                self.relay.close()


@dataclass
class Tunnel:
    """One ssh process to one bastion, with its forwards: (kind, remote host, port) -> Forward.

    A tunnel whose ssh exits mid-run (killed, the bastion restarted) is reopened: `current_error`,
    asked before each connect, notices it, says why (its targets are `ssh_error`, not `refused`)
    and starts a reopen in the background once its delay has passed: 1 s, then doubled after each
    failure up to a minute (one process per bastion: no herd to spread, so no jitter). A tunnel
    that failed when first opened is retried the same way."""

    bastion: str
    key: Path | None
    known_hosts: Path | None
    batch: bool
    timeout: float
    forwards: dict[tuple[str, str, int], Forward] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    error: str | None = None
    _ssh: str | None = None
    _stderr: bytes = b""
    _drain: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = False
    _failures: int = 0
    _reopen_at: float = 0.0
    _reopening: bool = False

    def command(self, ssh: str) -> list[str]:
        match = BASTION.match(self.bastion)
        assert match is not None  # validated by open_tunnels
        args = [ssh, "-N", "-T",
                "-o", "ExitOnForwardFailure=yes",
                "-o", f"ConnectTimeout={max(1, int(self.timeout))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
                "-o", f"BatchMode={'yes' if self.batch else 'no'}",
                # The sockets: owner-only (the directory is too), and never one already there.
                "-o", "StreamLocalBindMask=0177", "-o", "StreamLocalBindUnlink=no"]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        if self.key is not None:
            args += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        if match["port"]:
            args += ["-p", match["port"]]
        for forward in self.forwards.values():
            args += ["-L", forward.spec()]
        destination = match["host"].strip("[]")
        # "--": the destination is never an option, whatever it looks like (the config refuses "-" too).
        args += ["--", f"{match['user']}@{destination}" if match["user"] else destination]
        return args

    def start(self, ssh: str) -> None:
        self._ssh = ssh
        with self._lock:
            if self._closed:
                return
            self._start_locked(ssh)

    def _start_locked(self, ssh: str) -> None:
        # A socket left by an ssh that was killed would be taken for the new one's (and stop it
        # binding): only this process writes in the private directory, so it may go.
        for forward in self.forwards.values():
            if _our_socket(forward.path):
                forward.path.unlink()
        self._stderr = b""
        self.process = _spawn(self.command(ssh))
        self._drain = threading.Thread(target=self._read_stderr, name=f"dbvitals-ssh-stderr-{self.process.pid}",
                                       daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        """Until ssh closes its stderr: read everything, keep the tail."""
        assert self.process is not None and self.process.stderr is not None
        stream = self.process.stderr
        try:
            while chunk := os.read(stream.fileno(), 65536):
                self._stderr = (self._stderr + chunk)[-STDERR_KEPT:]
        except (OSError, ValueError):  # closed under us
            pass

    def stderr_tail(self) -> str:
        """The last few KB ssh wrote to its stderr."""
        return self._stderr.decode("utf-8", "replace")

    def wait_ready(self) -> None:
        """Until every forward's socket is there, ssh exits (refused, auth, forward failure) or
        time runs out."""
        if self.process is None:  # closed before it started
            self.error = self.error or f"ssh to {self.bastion}: the tunnel is closed"
            return
        process = self.process
        deadline = time.monotonic() + self.timeout + 1
        while True:
            if process.poll() is not None:
                self.error = f"ssh to {self.bastion} failed: {self._exit_reason(process)}"
                return
            if all(_our_socket(forward.path) for forward in self.forwards.values()):
                self.error = None
                return
            if time.monotonic() > deadline:
                self.error = f"ssh to {self.bastion}: no tunnel within {self.timeout:g}s (the bastion did not answer)"
                self._stop_process()
                return
            time.sleep(0.02)

    def _exit_reason(self, process: subprocess.Popen) -> str:
        drain = self._drain
        if drain is not None:
            drain.join(2)  # ssh has exited: its stderr ends at once
        return _last_line(self.stderr_tail()) or f"exit {process.returncode}"

    def current_error(self) -> str | None:
        """Why the tunnel cannot carry a connection now (None: it can). A tunnel whose ssh has
        exited since it was up is noticed here, and a due reopen is started in the background."""
        with self._lock:
            process = self.process
            if self._closed or process is None or self._ssh is None:
                return self.error
            if self.error is None and process.poll() is not None:
                self.error = f"ssh to {self.bastion} exited: {self._exit_reason(process)}; reopening the tunnel"
                self._failures = 0
                self._reopen_at = time.monotonic() + REOPEN_FIRST_DELAY
            elif self.error is not None and not self._reopening and self._reopen_at == 0.0:
                self._reopen_at = time.monotonic() + self._delay()  # it failed when first opened
            if self.error is not None and not self._reopening and time.monotonic() >= self._reopen_at:
                self._reopening = True
                threading.Thread(target=self._reopen, name=f"dbvitals-ssh-reopen-{self.bastion}",
                                 daemon=True).start()
            return self.error

    def _delay(self) -> float:
        return min(REOPEN_MAX_DELAY, REOPEN_FIRST_DELAY * 2 ** self._failures)

    def _reopen(self) -> None:
        """One attempt: a new ssh for the same forwards; on failure the next one waits longer."""
        try:
            with self._lock:
                if self._closed or self._ssh is None:
                    return
                self._stop_process()
                self._start_locked(self._ssh)
            self.wait_ready()
        finally:
            with self._lock:
                self._failures = self._failures + 1 if self.error is not None else 0
                self._reopen_at = time.monotonic() + self._delay()
                self._reopening = False

    def _stop_process(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._drain is not None:
            self._drain.join(2)
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for forward in self.forwards.values():
                forward.close()
            self._stop_process()


@dataclass
class Tunnels:
    tunnels: list[Tunnel] = field(default_factory=list)
    directory: Path | None = None  # the private directory that holds every forward's socket

    def close(self) -> None:
        for tunnel in self.tunnels:
            tunnel.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def open_tunnels(settings: Settings) -> tuple[Settings, Tunnels]:
    """Forwards for every target with `ssh`, its targets pointed at them (or at the failure)."""
    behind = {name: t for name, t in settings.targets.items() if t.ssh}
    opened = Tunnels()
    if not behind:
        return settings, opened
    ssh = shutil.which("ssh")
    by_bastion: dict[tuple[str, Path | None, Path | None, bool], Tunnel] = {}
    endpoints: dict[str, tuple[Tunnel, tuple[str, str, int]]] = {}
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
        kind = str(target.kind)
        remote = (kind, *remote_endpoint(name, target))
        endpoints[name] = (tunnel, remote)
    opened.directory = _private_directory()
    atexit.register(opened.close)
    count = 0
    for tunnel, remote in endpoints.values():
        if remote not in tunnel.forwards:
            count += 1
            kind, host, port = remote
            name = adapter_for(kind).socket_name(count)
            tunnel.forwards[remote] = Forward(kind, (host, port), opened.directory / name)
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
            target._tunnel = tunnel
            target._forward = tunnel.forwards[remote]
        targets[name] = target
    return settings.model_copy(update={"targets": targets}), opened


def _private_directory() -> Path:
    """A new directory only this user may enter (mkdtemp: mode 0700), short enough for the
    socket paths in it."""
    base = tempfile.gettempdir()
    if len(base) + len(_LONGEST_SOCKET) > _SOCKET_PATH_MAX:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="dbvitals-ssh-", dir=base))


def _our_socket(path: Path) -> bool:
    """ssh's socket is there: a socket, owned by this user (in a directory only we may write)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISSOCK(info.st_mode) and info.st_uid == os.geteuid()


# --- ssh dies with this process -----------------------------------------------------------------

def _popen(args: list[str]) -> subprocess.Popen:
    # A session of its own: a Ctrl-C at the terminal reaches dbvitals, which closes the tunnel
    # itself, rather than killing ssh under a running check.
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=dies_with_parent())


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
