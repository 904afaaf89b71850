"""Every screen's footer: its keys whole at any width, on as many lines as they need, instead
of Textual's one-line footer that cuts what does not fit at 80 columns. It reads the same
bindings as `?` and the README (console/keys.py); keys of the app that the screen wants in view
(`h`, `r`) are named by action, so each key is still bound in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual.widget import Widget

from console.keys import KEY_NAMES

# Textual's own key names, shown as on the keyboard.
_SYMBOLS = {**KEY_NAMES, "enter": "⏎"}


class KeysBar(Widget):
    COMPONENT_CLASSES = {"keys-bar--key", "keys-bar--off"}
    DEFAULT_CSS = """
    KeysBar { dock: bottom; height: auto; max-height: 3; background: $footer-background; color: $footer-foreground; }
    KeysBar > .keys-bar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
    KeysBar > .keys-bar--off { color: $text-disabled; }
    """

    def __init__(self, *, also: Iterable[str] = (), why_off: Callable[[str], str | None] | None = None,
                 **kwargs: Any) -> None:
        """`why_off(action)`: why a key does nothing here and now (shown beside it, dimmed), or None."""
        super().__init__(**kwargs)
        self.also = frozenset(also)
        self.why_off = why_off

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh(layout=True))

    def items(self) -> list[tuple[str, str, bool]]:
        """(keys, word, enabled) for each action shown, in binding order; a group's keys share one word."""
        shown: dict[str, tuple[str, str, bool]] = {}
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not (binding.show or binding.action in self.also):
                continue
            key = _SYMBOLS.get(binding.key, binding.key)
            group = binding.group.description if binding.group else None
            slot = f"group:{group}" if group else binding.action
            if slot in shown:
                keys, word, on = shown[slot]
                if group:
                    shown[slot] = (keys + key, word, on or enabled)
                continue
            word = group or binding.description
            off = self.why_off(binding.action) if self.why_off else None
            shown[slot] = (key, f"{word}: {off}" if off else word, enabled and not off)
        return list(shown.values())

    def lines(self, width: int) -> list[Text]:
        key_style = self.get_component_rich_style("keys-bar--key")
        off_style = self.get_component_rich_style("keys-bar--off")
        lines: list[Text] = [Text()]
        for keys, word, enabled in self.items():
            item = Text.assemble(" ", (keys, key_style if enabled else off_style),
                                 (f" {word} ", "" if enabled else off_style))
            if lines[-1].cell_len and lines[-1].cell_len + item.cell_len > width:
                lines.append(Text())
            lines[-1].append_text(item)
        return lines

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Text:
        return Text("\n").join(self.lines(self.size.width))
