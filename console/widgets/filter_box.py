"""The filter box every table of the console shares: a one-line input, and beside it what is
wrong with its text (an unknown field or value, a broken expression), so nothing typed is
silently ignored. Its text is the whole filter (console/filtering.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Static

from console.filtering import Field, Query, parse
from console.keys import KeySection


def literal(text: str) -> str:
    """`text` shown as typed inside Textual markup: a backslash before each `[` (rich's `escape`
    lets through a `[` that is never closed, as in a regular expression being typed). Put no tag
    right after it: a trailing backslash would escape the tag."""
    return text.replace("[", "\\[")


class FilterBox(Horizontal):
    KEYS = KeySection("filter box", 15)
    DEFAULT_CSS = """
    FilterBox { height: 1; background: $boost; }
    FilterBox Input, FilterBox Input:focus { width: 1fr; height: 1; border: none; padding: 0 1; background: $boost; }
    FilterBox #filter-problem { width: auto; max-width: 50%; height: 1; padding: 0 1; color: $error; }
    """
    BINDINGS: ClassVar = [
        Binding("escape", "clear", "Clear", tooltip="Clear the filter and leave the box"),
        Binding("enter", "close", "Apply", show=False, tooltip="Keep the filter and go back to the table"),
    ]

    @dataclass
    class Changed(Message):
        """The box's text changed; `query` is all the filter there is."""

        box: FilterBox
        query: Query

    @dataclass
    class Closed(Message):
        """The box gave the focus back (Enter or Esc)."""

        box: FilterBox

    def __init__(self, fields: Callable[[], Sequence[Field]], *, placeholder: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields = fields
        self.placeholder = placeholder
        self.query_now = Query()

    def compose(self) -> ComposeResult:
        yield Input(placeholder=self.placeholder, select_on_focus=False)  # `/` adds to what keys put there
        yield Static("", id="filter-problem", markup=False)

    def on_mount(self) -> None:
        self.display = False

    @property
    def text(self) -> str:
        return self.query_one(Input).value

    def open(self) -> None:
        box = self.query_one(Input)
        if box.value and not box.value.endswith(" "):
            with box.prevent(Input.Changed):  # what is typed next is a term of its own
                box.value += " "
        box.cursor_position = len(box.value)
        self.display = True
        box.focus()

    def set_text(self, text: str) -> None:
        """Put `text` in the box (a key that filters) and apply it."""
        box = self.query_one(Input)
        with box.prevent(Input.Changed):
            box.value = text
        box.cursor_position = len(text)
        self._apply(text)
        if not box.has_focus:
            self.display = bool(text)

    def reparse(self) -> None:
        """Parse the same text again: the fields (the targets, the columns) changed."""
        self._apply(self.text)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._apply(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_close()

    def action_close(self) -> None:
        self.display = bool(self.text)
        self.post_message(self.Closed(self))

    def action_clear(self) -> None:
        self.set_text("")
        self.display = False
        self.post_message(self.Closed(self))

    def _apply(self, text: str) -> None:
        self.query_now = parse(text, self.fields())
        self.query_one("#filter-problem", Static).update("; ".join(self.query_now.problems))
        self.post_message(self.Changed(self, self.query_now))
