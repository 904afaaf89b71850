"""dbvitals's own version, as installed (reports name the tool that wrote them)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("dbvitals")
    except metadata.PackageNotFoundError:
        return "unknown"
