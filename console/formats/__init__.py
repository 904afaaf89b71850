"""Renderers for a Report. Each format is a module with `render(report, **options) -> str`,
imported only when asked for. Every renderer is handed the report with its secrets already
masked, so each format escapes masked text and its output stays valid (JSON, XML)."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

from checks.model import Report
from checks.secrets import mask_tree

FORMATS = ("text", "json", "sarif", "junit", "markdown")
# Bidi controls and line separators, valid in a JSON string but shown by viewers (a code-scanning
# page, a terminal) as reordered or broken text: written as \u escapes. json.dumps puts them
# inside strings only, so replacing them in its output cannot touch the structure.
_INVISIBLE = re.compile("[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(document: Any) -> str:
    """A JSON document as dbvitals writes it: UTF-8 kept readable, invisible controls escaped."""
    text = json.dumps(document, indent=2, default=str, ensure_ascii=False)
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def render(report: Report, fmt: str, **options: Any) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    module = importlib.import_module(f"console.formats.{fmt}_format")
    return module.render(mask_tree(report), **options)
