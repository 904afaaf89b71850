"""A finding's evidence as a two-column table: what a skeptical DBA reads first."""

from __future__ import annotations

import json
from typing import Any

from textual.widgets import DataTable


def evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """Flatten one level of nesting (`index.columns`), render the rest as compact JSON."""
    rows: list[tuple[str, str]] = []
    for key, value in evidence.items():
        if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            rows.extend((f"{key}.{k}", _cell(v)) for k, v in value.items())
        else:
            rows.append((str(key), _cell(value)))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    return json.dumps(value, default=str, ensure_ascii=False)


class EvidenceTable(DataTable):
    DEFAULT_CSS = "EvidenceTable { height: auto; max-height: 16; }"

    def __init__(self, evidence: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.evidence = evidence

    def on_mount(self) -> None:
        self.add_column("Evidence", key="key")
        self.add_column("Value", key="value")
        self.add_rows(evidence_rows(self.evidence) or [("(none)", "")])
