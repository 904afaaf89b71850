"""A fix's steps as their engine's language: SQL for psql, MongoDB commands for mongosh, Redis
commands for redis-cli, each rendered by the engine's adapter exactly as the CLI preview, the
scripts and the reports render it. The same text is what `c` copies, so what is shown is
exactly what is copied."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.widgets import Static

from checks.engines import adapter_for_language, step_text
from checks.model import Fix, FixSafety, FixStep

SAFETY_WORDS = {
    FixSafety.SAFE: "safe: no data change, no long lock",
    FixSafety.UNSAFE: "UNSAFE: changes data or takes a blocking lock",
    FixSafety.MANUAL: "manual: shown for a human to adapt and run; dbvitals never applies it",
}
SAFETY_VARIABLES = {FixSafety.SAFE: "success", FixSafety.UNSAFE: "error", FixSafety.MANUAL: "warning"}
_BLOCKING = re.compile(r"ACCESS EXCLUSIVE|\bwait\b|\bblock", re.I)
_FIRST_SENTENCE = re.compile(r"(?<=[.;])\s+(?=[A-Z(])")


def safety_reason(fix: Fix) -> str:
    """Why this fix has its safety class, in one line: the blocking lock it takes, else what
    its notes warn of, else its impact. A generic phrase would contradict a lock line that
    says reads and writes go on."""
    if fix.safety is not FixSafety.UNSAFE:
        return SAFETY_WORDS[fix.safety]
    lock = fix.lock or ""
    if _BLOCKING.search(lock):
        # The lock line beside it names the lock; this says what it means for the application.
        return "UNSAFE: takes a lock that makes the application's queries wait"
    if fix.notes:
        return "UNSAFE: " + _first(fix.notes)
    if lock:
        return "UNSAFE: " + _first(lock)
    return "UNSAFE: changes data or settings the application relies on"


def _first(text: str) -> str:
    return _FIRST_SENTENCE.split(" ".join(text.split()), maxsplit=1)[0].rstrip(".")


def _comment(step: FixStep) -> str:
    return adapter_for_language(step.language).comment


def _notes(step: FixStep) -> list[str]:
    notes = []
    if step.description:
        notes.append(step.description)
    if step.database:
        notes.append(f"database: {step.database}")
    if not step.transactional:
        notes.append("runs outside a transaction")
    return notes


def step_summary(step: FixStep) -> str:
    """A step in a line or two: the lock it takes, in short (its first clause), and what it
    does (its description's first sentence, else its command's first line). The confirmation
    lists these so that every step and the inverse fit one screen; the full text is a key away."""
    command = step_text(step).strip()
    if step.description:
        what = _first(step.description)
    else:
        first, _, more = command.partition("\n")
        what = first + (" …" if more.strip() else "") if command else step.language
    lock = adapter_for_language(step.language).step_lock(step)
    short_lock = re.split(r"[:;(]", lock, maxsplit=1)[0].strip() if lock else ""
    # The lock first: a long description is cut at the end, and the lock must stay in view.
    return (f"[{short_lock}] " if short_lock else "") + " ".join(what.split())


def steps_text(steps: Iterable[FixStep]) -> str:
    """Plain text of the steps, with descriptions as comments: what the clipboard gets."""
    blocks = []
    for step in steps:
        lines = [f"{_comment(step)} {note}" for note in _notes(step)]
        lines.append(step_text(step))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def fix_text(fix: Fix) -> str:
    """What `c` copies. The inverse is commented out line by line: pasted into psql,
    mongosh or redis-cli, the fix runs and its undo does not."""
    mark = _comment(fix.steps[0]) if fix.steps else "#"
    parts = [f"{mark} {fix.summary} ({fix.safety.value})"]
    if fix.lock:
        parts.append(f"{mark} lock/impact: {fix.lock}")
    parts.append(steps_text(fix.steps))
    if fix.inverse:
        parts.append(f"\n{mark} inverse (undo), commented out so that pasting never runs it:")
        parts += [f"{mark} {line}" if line else mark for line in steps_text(fix.inverse).splitlines()]
    return "\n".join(parts) + "\n"


def render_steps(steps: Iterable[FixStep], *, dark: bool) -> RenderableType:
    syntax_theme = "ansi_dark" if dark else "ansi_light"
    items: list[RenderableType] = []
    for number, step in enumerate(steps, 1):
        notes = _notes(step)
        items.append(Text(f"{number}. " + (" · ".join(notes) if notes else step.language), style="italic"))
        items.append(
            Syntax(step_text(step), adapter_for_language(step.language).lexer, theme=syntax_theme,
                   background_color="default", word_wrap=True, padding=(0, 0, 0, 3))
        )
    return Group(*items)


class StepsView(Static):
    """Fix steps, highlighted in the colours of the terminal's own palette."""

    DEFAULT_CSS = "StepsView { height: auto; }"

    def __init__(self, steps: Iterable[FixStep], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps = tuple(steps)

    def on_mount(self) -> None:
        self._draw()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    def _draw(self) -> None:
        self.update(render_steps(self.steps, dark=self.app.current_theme.dark))
