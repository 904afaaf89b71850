"""Where dbvitals keeps what it writes between runs (journal, snapshots, caches)."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state"
    return root / "dbvitals"
