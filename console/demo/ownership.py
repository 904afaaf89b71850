"""What `dbvitals demo --stop DIR` may signal and delete, decided without trusting DIR's files.

A playground directory holds a marker file with a random token. dbvitals also writes a record of
the playground into its own state directory (`$XDG_STATE_HOME/dbvitals/demo-playgrounds`, mode
0700, which only the user writes): the directory's real path and inode, the SHA-256 of the token,
each server's pid with the start time, executable and command line read from /proc once it was
listening, and the PostgreSQL home kept outside the directory when dbvitals runs as root.

`--stop DIR` acts only when DIR is a real directory (not a symlink) owned by the user, its marker's
token hashes to the record's and the record names DIR's real path and inode. It signals a pid only
when /proc still shows the recorded process (start time, session, executable, command line) and
that process names this playground (its data directory and port). It removes DIR, and the
recorded PostgreSQL home after checking that home's own marker, with a walk that never follows a
symlink. The playground's state file (demo-state.json) is for people to read: nothing in it
decides what is signalled or deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from checks.state import default_state_dir

MARKER = ".dbvitals-demo"
MARKER_MAGIC = "dbvitals demo playground v1"
RECORD_MAGIC = "dbvitals.demo-playground/1"
PG_HOME_PREFIX = "dbvitals-demo-pg-"


class DemoRefused(Exception):
    """`--stop` will not act on this directory; phrased for the user."""


# --- the marker in the playground -------------------------------------------------------------

def write_marker(directory: Path, token: str) -> None:
    fd = os.open(directory / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{MARKER_MAGIC}\n{token}\n")


def read_marker(directory: Path) -> str | None:
    """The token of the directory's marker, or None when there is no valid marker of ours."""
    try:
        fd = os.open(directory / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_size > 4096:
            return None
        lines = handle.read(4096).decode("ascii", errors="replace").splitlines()
    if len(lines) != 2 or lines[0] != MARKER_MAGIC or len(lines[1]) != 64:
        return None
    return lines[1]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def marker_matches(directory: Path, digest: str) -> bool:
    token = read_marker(directory)
    return token is not None and hmac.compare_digest(token_digest(token), digest)


# --- the record in dbvitals' own state directory -------------------------------------------------

def registry_dir() -> Path:
    return default_state_dir() / "demo-playgrounds"


def record_path(directory: Path) -> Path:
    return registry_dir() / f"{hashlib.sha256(os.fsencode(directory)).hexdigest()[:40]}.json"


def write_record(target: Path, record: dict) -> None:
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    temporary = folder / f".{target.name}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=2)
    os.replace(temporary, target)


def forget_record(target: Path) -> None:
    try:
        target.unlink()
    except FileNotFoundError:
        pass


def read_record(directory: Path) -> dict | None:
    """dbvitals' record of the playground at `directory` (a real path), or None. Only a record in a
    folder and file the user owns and nobody else can write is believed."""
    folder = registry_dir()
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        return None
    try:
        fd = os.open(record_path(directory), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None
        try:
            record = json.loads(handle.read(1 << 20))
        except ValueError:
            return None
    if not isinstance(record, dict) or record.get("magic") != RECORD_MAGIC:
        return None
    return record


# --- processes ----------------------------------------------------------------------------------

@dataclass
class Identity:
    """What /proc says about a process."""

    state: str
    session: int
    start_time: int  # /proc/PID/stat field 22, clock ticks after boot
    exe: str
    cmdline: list[str]
    cwd: str


def read_identity(pid: int) -> Identity | None:
    """/proc's view of `pid`, or None when there is no such process (or only its zombie).
    PermissionError when it belongs to someone whose process this user cannot inspect."""
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # fields[0] is field 3 (state): field n is fields[n - 3]
    state, session, start_time = fields[0], int(fields[3]), int(fields[19])
    if state in ("Z", "X"):
        return None
    try:
        exe = os.readlink(f"{base}/exe").removesuffix(" (deleted)")  # an upgraded binary still running
        with open(f"{base}/cmdline", "rb") as handle:
            parts = handle.read().split(b"\0")
        cwd = os.readlink(f"{base}/cwd").removesuffix(" (deleted)")  # its directory removed under it
    except (FileNotFoundError, ProcessLookupError):
        return None
    while parts and parts[-1] == b"":
        parts.pop()
    return Identity(state, session, start_time, exe, [os.fsdecode(p) for p in parts], cwd)


def _option(cmdline: list[str], name: str) -> str | None:
    for index, word in enumerate(cmdline[:-1]):
        if word == name:
            return cmdline[index + 1]
    return None


def _is_kind(name: str, identity: Identity) -> bool:
    exe = Path(identity.exe).name
    if name == "postgres":
        return exe == "postgres"
    if name == "redis":
        return exe.startswith("redis-")  # Debian's redis-server is a link to redis-check-rdb
    if name == "mongodb":
        return exe.startswith("python") and any(Path(w).name == "secantusd-py" for w in identity.cmdline[:2])
    return False


def _names_playground(server: dict, identity: Identity, directory: Path, pg_home: Path | None) -> bool:
    cmdline, port = identity.cmdline, str(server["port"])
    if server["name"] == "postgres":
        return _option(cmdline, "-D") == str((pg_home or directory) / "postgres") and _option(cmdline, "-p") == port
    if server["name"] == "redis":
        # Redis chdirs into --dir; an old Redis retitles itself "redis-server 127.0.0.1:PORT".
        titled = len(cmdline) == 1 and cmdline[0].endswith(f" 127.0.0.1:{port}")
        by_port = _option(cmdline, "--port") == port or titled
        return identity.cwd == str(directory) and _option(cmdline, "--dir") in (None, str(directory)) and by_port
    if server["name"] == "mongodb":
        return _option(cmdline, "--storage-path") == str(directory / "mongodb") and _option(cmdline, "--port") == port
    return False


def check_server(server: dict, directory: Path, pg_home: Path | None) -> tuple[str, str]:
    """("running", "") when the recorded pid is still this playground's server; ("gone", "") when
    no process has that pid; ("foreign", why) when some other process has it."""
    pid = server["pid"]
    try:
        identity = read_identity(pid)
    except PermissionError:
        return "foreign", "a process this user cannot inspect"
    except (OSError, ValueError, IndexError) as exc:
        return "foreign", f"its /proc entry is unreadable: {exc}"
    if identity is None:
        return "gone", ""
    if identity.start_time != server["start_time"]:
        return "foreign", "started at another time: the pid was reused"
    if identity.session != pid:
        return "foreign", "not the leader of its own session, as the demo's servers are"
    if identity.exe != server["exe"] or not _is_kind(server["name"], identity):
        return "foreign", f"runs {identity.exe}"
    if identity.cmdline != server["cmdline"] or not _names_playground(server, identity, directory, pg_home):
        return "foreign", "its command line does not name this playground"
    return "running", ""


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (signals through it reach that very process, never a successor), or None
    when the kernel has none to give; ProcessLookupError when there is no such process."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise
    except (AttributeError, OSError):
        return None


def _send(pidfd: int | None, pid: int, signum: int) -> None:
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_gone(pidfd: int | None, server: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    while time.monotonic() < deadline:
        _reap(server["pid"])
        try:
            identity = read_identity(server["pid"])
        except OSError:
            identity = None
        if identity is None or identity.start_time != server["start_time"]:
            return True
        time.sleep(0.05)
    return False


def stop_server(server: dict, directory: Path, pg_home: Path | None) -> str:
    """Stop the recorded server if, and only if, /proc shows it is still this playground's."""
    name, pid = server["name"], server["pid"]
    try:
        pidfd = _pidfd(pid)
    except ProcessLookupError:
        return f"{name} (pid {pid}) was not running"
    try:
        verdict, why = check_server(server, directory, pg_home)  # after the pidfd: it holds that process
        if verdict == "gone":
            return f"{name} (pid {pid}) was not running"
        if verdict == "foreign":
            return f"pid {pid} is not the demo's {name} ({why}): not signalled"
        _send(pidfd, pid, signal.SIGINT)  # PostgreSQL: fast shutdown; Redis and SecantusDB stop too
        if not _wait_gone(pidfd, server, 20):
            _send(pidfd, pid, signal.SIGKILL)
            _wait_gone(pidfd, server, 10)
        _reap(pid)
        return f"stopped {name} (pid {pid}, port {server['port']})"
    finally:
        if pidfd is not None:
            os.close(pidfd)


# --- directories --------------------------------------------------------------------------------

def remove_tree(path: Path, digest: str) -> str:
    """Remove `path` when it is a real directory holding the marker whose token hashes to
    `digest`; never follows a symlink, neither `path` nor any inside it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"{path} was already gone"
    except OSError as exc:
        return f"left {path} in place: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"left {path} in place: it is a symbolic link"
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return f"left {path} in place: not a directory of this user's"
    if not marker_matches(path, digest):
        return f"left {path} in place: its {MARKER} marker is missing or not this playground's"
    if not shutil.rmtree.avoids_symlink_attacks:
        return f"left {path} in place: this platform cannot remove a tree without following symlinks"
    try:
        shutil.rmtree(path)  # fd-based: a symlink inside is unlinked, never followed
    except OSError as exc:
        return f"left {path} in place: {exc.strerror or exc}"
    return f"removed {path}"


def verify_directory(given: str) -> tuple[Path, dict]:
    """The real path of the playground directory `given` and dbvitals' record of it; DemoRefused
    unless `given` is a playground this user's dbvitals created. Reads nothing from the state file."""
    if not os.path.exists("/proc/self/stat"):
        raise DemoRefused("telling the demo's servers from other processes needs Linux's /proc")
    stripped = given.rstrip("/") or given[:1]  # "link/" would stat the link's target; "" stays ""
    try:
        info = os.lstat(stripped)
    except FileNotFoundError:
        raise DemoRefused("no such directory") from None
    except OSError as exc:
        raise DemoRefused(exc.strerror or str(exc)) from None
    if stat.S_ISLNK(info.st_mode):
        raise DemoRefused("it is a symbolic link; give the playground's own path")
    if not stat.S_ISDIR(info.st_mode):
        raise DemoRefused("not a directory")
    real = Path(os.path.realpath(stripped))
    try:
        same = os.path.samestat(info, os.lstat(real))
    except OSError:
        same = False
    if not same:
        raise DemoRefused("its path leads through a symbolic link to somewhere else")
    if info.st_uid != os.geteuid():
        raise DemoRefused("the directory belongs to another user")
    token = read_marker(real)
    if token is None:
        raise DemoRefused(f"not a dbvitals demo playground (no valid {MARKER} marker)")
    record = read_record(real)
    if record is None:
        raise DemoRefused(f"dbvitals has no record of starting a demo in {real} (records: {registry_dir()})")
    if (record.get("directory") != str(real) or record.get("device") != info.st_dev
            or record.get("inode") != info.st_ino
            or not hmac.compare_digest(str(record.get("token_sha256", "")), token_digest(token))):
        raise DemoRefused(f"its marker does not match dbvitals' record of the playground at {real}")
    if not _well_formed(record):
        raise DemoRefused(f"dbvitals' record of the playground at {real} is damaged ({record_path(real)})")
    return real, record


def _well_formed(record: dict) -> bool:
    servers = record.get("servers")
    if not isinstance(servers, list) or not isinstance(record.get("pg_home"), (str, type(None))):
        return False
    for server in servers:
        if not (isinstance(server, dict) and server.get("name") in ("postgres", "redis", "mongodb")
                and all(type(server.get(key)) is int and server[key] > 0 for key in ("port", "pid", "start_time"))
                and isinstance(server.get("exe"), str) and isinstance(server.get("url"), str)
                and isinstance(server.get("cmdline"), list) and all(isinstance(w, str) for w in server["cmdline"])):
            return False
    return True
