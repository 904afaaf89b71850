"""Console themes as validated data: TOML files → a pydantic model → a Textual `Theme`.

The built-in themes live beside this module; users add their own as
`$XDG_CONFIG_HOME/dbvitals/themes/*.toml` (default `~/.config/dbvitals/themes`). A user theme
that fails to parse or validate is collected as a problem for the console to report: a typo
in a colour must never keep the console from opening during an incident.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "dbvitals-dark"
BUILTIN_DIR = Path(__file__).parent
SEVERITIES = ("critical", "high", "medium", "low", "info")

# Variables every widget may use: a theme that omits one falls back to these.
FALLBACK_VARIABLES = {
    "severity-critical": "#ff4d6d",
    "severity-high": "#ff8c42",
    "severity-medium": "#f2c94c",
    "severity-low": "#6fb7ff",
    "severity-info": "#9aa5b1",
    "production": "#ff4d6d",
    "state-up": "#4ec07a",
    "state-down": "#ff5c5c",
    "state-pending": "#9aa5b1",
}


def _color(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ValueError(f"not a colour: {value!r} ({exc})") from None
    return value


class SeverityColors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: str = Field(default=FALLBACK_VARIABLES["severity-critical"])
    high: str = Field(default=FALLBACK_VARIABLES["severity-high"])
    medium: str = Field(default=FALLBACK_VARIABLES["severity-medium"])
    low: str = Field(default=FALLBACK_VARIABLES["severity-low"])
    info: str = Field(default=FALLBACK_VARIABLES["severity-info"])

    @field_validator("*")
    @classmethod
    def _colors(cls, value: str) -> str:
        return _color(value)


class ThemeFile(BaseModel):
    """One theme file. Colours are anything Textual parses: "#rrggbb", "rgb(…)", "ansi_red"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="The name --theme and `theme =` use.")
    dark: bool = True
    ansi: bool = Field(default=False, description="Draw in the terminal's own ANSI palette (16-colour terminals).")
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    severity: SeverityColors = Field(default_factory=SeverityColors)
    variables: dict[str, str] = Field(default_factory=dict, description="Any other Textual theme variable.")

    @field_validator(
        "primary", "secondary", "accent", "warning", "error", "success",
        "foreground", "background", "surface", "panel", "boost",
    )
    @classmethod
    def _colors(cls, value: str | None) -> str | None:
        return None if value is None else _color(value)

    def to_theme(self) -> Theme:
        severity = {f"severity-{level}": getattr(self.severity, level) for level in SEVERITIES}
        return Theme(
            name=self.name,
            primary=self.primary,
            secondary=self.secondary,
            accent=self.accent,
            warning=self.warning,
            error=self.error,
            success=self.success,
            foreground=self.foreground,
            background=self.background,
            surface=self.surface,
            panel=self.panel,
            boost=self.boost,
            dark=self.dark,
            ansi=self.ansi,
            variables={**FALLBACK_VARIABLES, **severity, **self.variables},
        )


def load_theme_file(path: Path) -> Theme:
    """Raises ValueError with a message fit to show the user."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None


def user_theme_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dbvitals" / "themes"


@dataclass
class ThemeSet:
    themes: dict[str, Theme] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def load_themes(user_dir: Path | None = None) -> ThemeSet:
    """The built-in themes, then the user's (which may override a built-in by name)."""
    found = ThemeSet()
    for directory, is_builtin in ((BUILTIN_DIR, True), (user_dir or user_theme_dir(), False)):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                if is_builtin:
                    raise  # a broken built-in theme is our bug, caught by the tests
                found.problems.append(str(exc))
                continue
            found.themes[theme.name] = theme
    return found
