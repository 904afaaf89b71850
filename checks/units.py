"""Figures in words a DBA reads at a glance, shared by every pack."""

from __future__ import annotations

from collections.abc import Sequence
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


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """3 -> "3 statements", 1 -> "1 statement" (`plural` where adding an s is wrong: "indexes")."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def percent(share: float, decimals: int = 0) -> str:
    """A share as a percentage that never reads 100% (or 0%) when it is not: with no decimals,
    0.97 -> "97%", but 0.9998 -> "99.98%", 0.0004 -> "0.04%", and closer still ">99.99%"."""
    most = decimals + 2
    for shown in range(decimals, most + 1):
        text = f"{share:.{shown}%}"
        value = float(text[:-1])
        if not ((share < 1 and value >= 100) or (share > 0 and value == 0)):
            return text
    step = 10 ** -most
    return f">{100 - step:.{most}f}%" if share < 1 and share > 0.5 else f"<{step:.{most}f}%"


def listed(noun: str, names: Sequence[str], plural: str | None = None) -> str:
    """["a"] -> "column a", ["a", "b"] -> "columns a, b"."""
    return f"{noun if len(names) == 1 else plural or noun + 's'} {', '.join(names)}"
