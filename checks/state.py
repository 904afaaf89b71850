"""Where dbvitals reads its config from and keeps what it writes between runs: the XDG base
directories, systemd's directories for a service (StateDirectory=, CacheDirectory=), and for a
user with no home directory a private directory of its own under the temporary directory."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

APP = "dbvitals"


def config_dir() -> Path | None:
    """$XDG_CONFIG_HOME/dbvitals, else ~/.config/dbvitals; None without a home directory."""
    base = os.environ.get("XDG_CONFIG_HOME")
    if base:
        return Path(base) / APP
    home = _home()
    return home / ".config" / APP if home is not None else None


def default_state_dir() -> Path:
    """The journal, snapshots and the demo's records: $XDG_STATE_HOME/dbvitals, else systemd's
    $STATE_DIRECTORY, else ~/.local/state/dbvitals, else a private temporary directory."""
    return _first("XDG_STATE_HOME", "STATE_DIRECTORY", (".local", "state"), "state")


def default_cache_dir() -> Path:
    """What can be rebuilt (the check catalog): $XDG_CACHE_HOME/dbvitals, else systemd's
    $CACHE_DIRECTORY, else ~/.cache/dbvitals, else a private temporary directory."""
    return _first("XDG_CACHE_HOME", "CACHE_DIRECTORY", (".cache",), "cache")


def _first(xdg: str, systemd: str, under_home: tuple[str, ...], kind: str) -> Path:
    base = os.environ.get(xdg)
    if base:
        return Path(base) / APP
    service = os.environ.get(systemd)  # the unit's own directory itself (a list: the first)
    if service:
        return Path(service.split(":")[0])
    home = _home()
    if home is not None and os.access(home, os.W_OK):
        return home.joinpath(*under_home, APP)
    return _private_temporary() / kind


def _home() -> Path | None:
    """The home directory, if there is one: HOME unset with no passwd entry, or naming a
    directory that does not exist (a service account), is none."""
    try:
        home = Path.home()
    except RuntimeError:
        return None
    return home if home.is_dir() else None


def _private_temporary() -> Path:
    """$TMPDIR/dbvitals-UID, made mode 0700; one that another user made first, or that others
    may write in, is refused rather than written to."""
    root = Path(tempfile.gettempdir()) / f"{APP}-{os.geteuid()}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PermissionError(f"{root} is not a private directory of this user: set XDG_STATE_HOME "
                              "(no home directory to keep dbvitals' state in)")
    return root
