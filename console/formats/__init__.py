"""Renderers for a Report. Each format is a module with `render(report, **options) -> str`,
imported only when asked for."""

from __future__ import annotations

import importlib
from typing import Any

from checks.model import Report

FORMATS = ("text", "json", "sarif", "junit", "markdown")


def render(report: Report, fmt: str, **options: Any) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    module = importlib.import_module(f"console.formats.{fmt}_format")
    return module.render(report, **options)
