"""Showing names from a database on a terminal or in a document, safely.

A key, table or collection name is data: it may hold an ESC byte that would recolour or move
the operator's terminal, or a newline that forges a line of a report or a script comment.
`terminal_safe` is the one place that decides how such characters are shown; the text report,
Markdown, the console, the journal display and script comments all go through it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import Any

from checks.model import Finding

# Bidirectional overrides and isolates reorder what follows them ("Trojan Source").
_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(char: str) -> bool:
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F or code in _BIDI:
        return True
    return code > 0x7F and unicodedata.category(char) in {"Zl", "Zp", "Cs", "Cc"}


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """The text with every control character (C0, DEL, C1, line and paragraph separators,
    bidi overrides) written as a visible escape such as \\x1b, \\n or \\u202e. With
    `keep_newlines`, "\\n" stays a line break (for multi-line text dbvitals itself wrote)."""
    if text.isprintable() and not any(ord(c) in _BIDI for c in text):
        return text  # the common case, without a per-character loop
    out = []
    for char in text:
        if keep_newlines and char == "\n":
            out.append(char)
        elif _unsafe(char):
            code = ord(char)
            out.append(_NAMED.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"))
        else:
            out.append(char)
    return "".join(out)


def _safe_value(value: Any) -> Any:
    if isinstance(value, str):
        return terminal_safe(value)
    if isinstance(value, dict):
        return {_safe_value(k): _safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_safe_value(v) for v in value)
    return value


def display_finding(finding: Finding) -> Finding:
    """The finding as a screen shows it: every text from the database terminal-safe. Its id
    and fix steps stay as they are (a fix is planned again from the id; steps are rendered by
    their adapter, which escapes names for their language)."""
    fix = finding.fix
    if fix is not None:
        fix = replace(fix, summary=terminal_safe(fix.summary), lock=fix.lock and terminal_safe(fix.lock),
                      notes=fix.notes and terminal_safe(fix.notes))
    return replace(finding, object=terminal_safe(finding.object), title=terminal_safe(finding.title),
                   message=terminal_safe(finding.message), evidence=_safe_value(finding.evidence), fix=fix)
