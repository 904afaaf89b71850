"""Where a finding id points, without running the fleet.

A finding id is a hash of its check, target and object: stable across runs, but it does not
say where to look. Two ways to know, so that `dbvitals fix ID` runs one check on one target:

- A reference that carries them: `TARGET/CHECK/ID` (`forum/postgres.fk-missing-index/84b7853a`;
  the id part may be any unique prefix of 6 or more characters).
- The index of the last report of this config, kept in the state directory beside the journal
  (one small JSON file per config, mode 0600): finding id -> target and check. It holds ids,
  target names and check ids only, never an object name, a URL or a secret. Every report a
  command writes refreshes it: the pairs of target and check that ran are replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from checks.model import Report

SCHEMA = "dbvitals.finding-index/1"
MIN_PREFIX = 6


@dataclass(frozen=True)
class Location:
    """Where a finding can be found: run `check` on `target` and look for `finding_id` (an id or
    a unique prefix of one)."""

    target: str
    check: str
    finding_id: str


def parse_reference(text: str) -> Location | None:
    """TARGET/CHECK/ID as a Location; None for a bare id. Check ids and finding ids contain no
    "/", so the split is from the right: a discovered target is named SERVER/DATABASE."""
    parts = text.strip().rsplit("/", 2)
    if len(parts) != 3 or not all(parts) or any(not p for p in parts[0].split("/")):
        return None
    return Location(target=parts[0], check=parts[1], finding_id=parts[2])


def matches(finding_id: str, wanted: str) -> bool:
    return finding_id == wanted or (len(wanted) >= MIN_PREFIX and finding_id.startswith(wanted))


class FindingIndex:
    """The last report's finding ids of one config, with the target and check of each."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_config(cls, state_dir: Path, config_path: str | os.PathLike[str] | None) -> FindingIndex:
        """One file per config, named after the config file's absolute path (so two configs
        sharing a state directory never see each other's findings)."""
        key = str(Path(config_path).resolve()) if config_path else "(no config file)"
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return cls(state_dir / "findings" / f"{digest}.json")

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no index yet, or one cut short by a crash: as if no report had run
        found = data.get("findings") if isinstance(data, dict) and data.get("schema") == SCHEMA else None
        if not isinstance(found, dict):
            return {}
        return {k: v for k, v in found.items() if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)}

    def lookup(self, wanted: str) -> list[Location]:
        """Where the id (or a unique prefix of 6+ characters) was last reported; [] if nowhere,
        several if the prefix is ambiguous."""
        entries = self._load()
        if wanted in entries:
            target, check = entries[wanted]
            return [Location(target, check, wanted)]
        if len(wanted) < MIN_PREFIX:
            return []
        return [Location(t, c, i) for i, (t, c) in entries.items() if i.startswith(wanted)]

    def record(self, report: Report) -> None:
        """Fold a report in: what it ran replaces what the index knew of those pairs of target
        and check; findings of checks it did not run stay."""
        ran = {(c["target"], c["check"]) for c in report.checks if isinstance(c, dict) and "target" in c}
        kept = {i: tc for i, tc in self._load().items() if tuple(tc) not in ran}
        kept.update({f.id: [f.target, f.check] for f in report.findings})
        self._write(kept)

    def _write(self, entries: dict[str, list[str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps({"schema": SCHEMA, "findings": entries}, separators=(",", ":")) + "\n"
        # A new file beside the old, then a rename: a reader never sees half an index.
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(temporary, self.path)


def group_by_target(locations: Iterable[Location]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for location in locations:
        checks = grouped.setdefault(location.target, [])
        if location.check not in checks:
            checks.append(location.check)
    return grouped
