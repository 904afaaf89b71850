"""SQL text for PostgreSQL fix steps: a quoted name or string holding a control character is
written in PostgreSQL's U&"..." form, which names the same object with printable characters only."""

from __future__ import annotations

from checks.display import terminal_safe


def _printable(char: str) -> bool:
    return terminal_safe(char) == char


def sql_text(sql: str) -> str:
    """The statement with each quoted name or string that holds a control character rewritten
    in PostgreSQL's Unicode-escape form (U&"..." / U&'...'), which names the same object with
    only printable characters: nothing in it can end a comment, a line or move the terminal."""
    # dbvitals' own line breaks and tabs stay; inside a quoted name or string they are the
    # name's, and a raw one there could forge a line of the preview (a second "step").
    if all(_printable(c) or (c in "\n\t" and '"' not in sql and "'" not in sql) for c in sql):
        return sql
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "\"'":
            end = i + 1
            body: list[str] = []
            while end < n:
                if sql[end] == char:
                    if end + 1 < n and sql[end + 1] == char:
                        body.append(char)
                        end += 2
                        continue
                    break
                body.append(sql[end])
                end += 1
            value = "".join(body)
            if all(_printable(c) for c in value):
                out.append(sql[i:end + 1])
            else:
                out.append(_unicode_escaped(value, char))
            i = end + 1
            continue
        out.append(char if _printable(char) or char in "\n\t" else " ")
        i += 1
    return "".join(out)


def _unicode_escaped(value: str, quote: str) -> str:
    parts = []
    for char in value:
        if char == "\\":
            parts.append("\\\\")
        elif char == quote:
            parts.append(quote * 2)
        elif _printable(char):
            parts.append(char)
        elif ord(char) <= 0xFFFF:
            parts.append(f"\\{ord(char):04x}")
        else:
            parts.append(f"\\+{ord(char):06x}")
    return f"U&{quote}{''.join(parts)}{quote}"
