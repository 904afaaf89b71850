"""Text for a terminal of any width that never breaks a word: tables and messages.

Rich squeezes a table into the terminal by folding cells mid-word ("environ/ment",
"postgres.fk-/missin/g-inde/x"). Here every column gets at least its longest word (the
whole value, for identifiers); when that does not fit, the least needed columns give way,
and when even the essential ones do not fit, each row is printed as a short record of
"column value" lines instead of a table.

Messages (what fix, undo and activity say, errors) are wrapped between words at the width of
the terminal they go to; a word longer than a whole line is the only thing ever cut. Widths:
`--width N` ($DBVITALS_WIDTH) first, then $COLUMNS, then the terminal's; when piped, tables are
160 columns, the report 120, and a message stays one line per line written (for grep).
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

# Piped output keeps its rows on one line for grep; COLUMNS overrides both.
PIPED_WIDTH = 160
# `--width N` sets it (and COLUMNS): the width of everything, piped or not.
WIDTH_VARIABLE = "DBVITALS_WIDTH"


@dataclass(frozen=True)
class Column:
    name: str
    keep: int = 0  # higher is kept longer when the width shrinks; 9 is never dropped
    words: bool = True  # free text that may wrap between words; False: an identifier, never wrapped


def terminal_width(default: int = PIPED_WIDTH) -> int:
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size((default, 24)).columns if sys.stdout.isatty() else default


def message_width(stream: TextIO) -> int | None:
    """The width to wrap a message for `stream` at; None when it is piped and no width is set
    (an exported $COLUMNS alone does not wrap what a script reads)."""
    if os.environ.get(WIDTH_VARIABLE, "").isdigit():
        return int(os.environ[WIDTH_VARIABLE])
    if not stream.isatty():
        return None
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size((PIPED_WIDTH, 24)).columns


class _WholeWords(textwrap.TextWrapper):
    """textwrap fills the rest of a line with the start of a word too long for any line; here
    such a word starts a line of its own first, and is cut only at the full width."""

    def _handle_long_word(self, reversed_chunks: list[str], cur_line: list[str], cur_len: int, width: int) -> None:
        if not cur_line:
            super()._handle_long_word(reversed_chunks, cur_line, cur_len, width)


def wrap_words(text: str, width: int | None) -> str:
    """Each line of `text` wrapped between words at `width`; a continuation is indented two
    spaces more than its line. Only a word longer than the room on a line is cut."""
    if width is None:
        return text
    lines: list[str] = []
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        continuation = " " * min(indent + 2, width // 2)
        wrapper = _WholeWords(width=width, subsequent_indent=continuation, break_on_hyphens=False,
                              replace_whitespace=False)
        lines += wrapper.wrap(line) or [line]
    return "\n".join(lines)


def write_message(text: str, stream: TextIO) -> None:
    stream.write(wrap_words(text, message_width(stream)) + "\n")
    stream.flush()


def terminal_console(**options) -> Console:
    return Console(highlight=False, width=terminal_width(), **options)


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _need(column: Column, cells: Sequence[str | Text]) -> int:
    """The narrowest the column may be without breaking a word (or an identifier)."""
    values = [column.name, *(_plain(c) for c in cells)]
    if column.words:
        return max((cell_len(word) for value in values for word in value.split()), default=1)
    return max((cell_len(line) for value in values for line in value.splitlines() or [""]), default=1)


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], width: int) -> list[int] | None:
    """The indexes of the columns to show at this width, or None when even the essential ones do not fit."""
    shown = list(range(len(columns)))
    needs = [_need(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    while sum(needs[i] for i in shown) + 2 * (len(shown) - 1) > width:
        droppable = [i for i in shown if columns[i].keep < 9]
        if not droppable:
            return None
        shown.remove(min(droppable, key=lambda i: (columns[i].keep, -i)))
    return shown


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], width: int) -> RenderableType:
    shown = fit_columns(columns, rows, width)
    if shown is None:
        return _records(columns, rows)
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    for i in shown:
        column = columns[i]
        need = _need(column, [r[i] for r in rows])
        table.add_column(column.name, min_width=need, no_wrap=not column.words, overflow="fold")
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def _records(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]]) -> RenderableType:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold", ratio=1)
    for number, row in enumerate(rows):
        if number:
            grid.add_row("", "")
        for column, cell in zip(columns, row):
            if _plain(cell):
                grid.add_row(column.name, cell)
    return grid


def print_fitted(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], console: Console | None = None) -> None:
    console = console or terminal_console()
    console.print(fitted(columns, rows, console.width))
