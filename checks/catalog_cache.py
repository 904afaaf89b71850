"""The check catalog without importing the checks.

`dbvitals checks` must answer fast, but a check's metadata lives in its module, and importing
66 modules with their option models costs most of a second. The catalog is therefore cached in
the state directory, keyed by everything that could change it: the `dbvitals.checks` entry
points, their distributions' versions, and the size and modification time of every source file
of the packages they name. Any change, or a missing or unreadable cache, loads the registry for
real and rewrites the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from checks.state import default_cache_dir

ENTRY_POINT_GROUP = "dbvitals.checks"
CACHE_NAME = "catalog.json"


def fingerprint(points: Iterable[metadata.EntryPoint]) -> str:
    digest = hashlib.sha256()
    roots: set[str] = set()
    for point in sorted(points, key=lambda p: (p.name, p.value)):
        dist = getattr(point, "dist", None)
        digest.update(f"{point.name}={point.value}@{dist.name if dist else ''}:{dist.version if dist else ''}\n".encode())
        roots.add(point.value.split(":")[0].split(".")[0])
    for root in sorted(roots):
        for path in _source_files(root):
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _source_files(top: str) -> list[Path]:
    """Every Python file of a top-level package or module, found without importing it."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        files: list[Path] = []
        for location in spec.submodule_search_locations:
            for dirpath, _, names in os.walk(location):
                files += [Path(dirpath) / n for n in names if n.endswith(".py")]
        return sorted(files)
    return [Path(spec.origin)] if spec.origin else []


def catalog(load: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(catalog entries, plugin problems): from the cache when it still matches, else from
    `load()` (a Registry), written back to the cache."""
    points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    key = fingerprint(points)
    try:
        path: Path | None = default_cache_dir() / CACHE_NAME
    except OSError:  # nowhere private to keep it: the catalog is built each time
        path = None
    if path is not None:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("key") == key:
                return cached["checks"], cached["problems"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    registry = load()
    entries = [c.catalog_entry() for c in sorted(registry.checks.values(), key=lambda c: c.id)]
    if path is None:
        return entries, list(registry.problems)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{CACHE_NAME}.{os.getpid()}")
        temporary.write_text(json.dumps({"key": key, "checks": entries, "problems": registry.problems}),
                             encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home: the catalog still prints, just not faster next time
    return entries, list(registry.problems)
