from __future__ import annotations

import json
from typing import Any

from checks.model import Report


def render(report: Report, **_: Any) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str, ensure_ascii=False) + "\n"
