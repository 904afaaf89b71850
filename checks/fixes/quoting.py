"""Comments in fix scripts: names come from the database and are data, never code. Each engine
quotes its own step language (checks.<engine>.quoting); a comment, in any of them, never
holds a raw line break or control character (`comment`, through `terminal_safe`), so a name
cannot end it.
"""

from __future__ import annotations

from typing import Any

from checks.display import terminal_safe


def comment(text: Any) -> str:
    """Text fit for a comment line in any of the languages: control characters escaped."""
    return terminal_safe(str(text))
