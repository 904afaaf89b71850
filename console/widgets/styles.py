"""Rich styles taken from the current theme's variables, for cells that DataTable renders
itself (it cannot use CSS per cell). Every colour still comes from the theme."""

from __future__ import annotations

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError

from checks.model import Severity
from themes import FALLBACK_VARIABLES

SEVERITY_LABELS = {
    Severity.CRITICAL: "CRIT",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MED",
    Severity.LOW: "LOW",
    Severity.INFO: "INFO",
}


def theme_style(app: App, variable: str, *, bold: bool = False, reverse: bool = False) -> Style:
    value = app.theme_variables.get(variable) or FALLBACK_VARIABLES.get(variable)
    try:
        color = Color.parse(value).rich_color if value else None
    except ColorParseError:
        color = None
    return Style(color=color, bold=bold, reverse=reverse)

