"""Figures in words a DBA reads at a glance, shared by every pack."""

from __future__ import annotations

from typing import Any, overload


@overload
def human_bytes(size: float) -> str: ...
@overload
def human_bytes(size: None) -> None: ...
def human_bytes(size: float | None) -> str | None:
    """1536 -> "1.5 kB" (binary multiples, PostgreSQL's pg_size_pretty units); None stays None."""
    if size is None:
        return None
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable: the last unit always returns")


def int_or_none(value: Any) -> int | None:
    """A server's figure as an int; None when it is missing or not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
