"""Keys are registered once (console/keys.py): `?`, the footer and the README come from the
screens' own BINDINGS, and no list of screens is kept by hand."""

from __future__ import annotations

from pathlib import Path

from textual.screen import Screen

import console.app
from console.app import DbVitalsApp
from console.keys import KeySection, key_sections, readme_section, readme_table
from console.screens.help import HelpScreen

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_key_table_is_the_generated_one():
    """Run `scripts/readme_keys.py --write` after changing a binding."""
    assert readme_section(README.read_text(encoding="utf-8")) == readme_table(DbVitalsApp)


def test_every_console_screen_with_keys_is_registered():
    def screens(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *screens(sub))]

    listed = {keys.owner for keys in key_sections(DbVitalsApp)}
    for screen in screens(Screen):
        if screen.__module__.startswith("console.") and vars(screen).get("BINDINGS"):
            assert isinstance(vars(screen).get("KEYS"), KeySection), f"{screen.__name__} declares no KEYS"
            assert screen in listed
    assert console.app.HelpScreen is HelpScreen  # `?` lists what the registry gives it, no list of its own
