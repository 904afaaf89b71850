"""Renderers for a Report. Each format is a module with `render(report, **options) -> str`.
Every renderer is handed the report with its secrets already masked, so each format escapes
masked text and its output stays valid (JSON, XML)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from checks.model import Report
from checks.secrets import mask_tree
from console.formats import json_format, junit_format, markdown_format, sarif_format, text_format
from console.formats.jsondoc import json_text  # noqa: F401 - re-exported: the formats' JSON writer

_MODULES: dict[str, ModuleType] = {
    "text": text_format,
    "json": json_format,
    "sarif": sarif_format,
    "junit": junit_format,
    "markdown": markdown_format,
}
FORMATS = tuple(_MODULES)


def render(report: Report, fmt: str, **options: Any) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    return _MODULES[fmt].render(mask_tree(report), **options)
