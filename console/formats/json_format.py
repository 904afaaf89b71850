from __future__ import annotations

from typing import Any

from checks.model import Report
from console.formats.jsondoc import json_text


def render(report: Report, **_: Any) -> str:
    return json_text(report.to_dict())
