"""The migration report in each format. Names from the SQL and the database are data: every format
escapes them (terminal_safe for text, the formats' own escaping for the others), and the whole
document is masked for known secrets before it is rendered."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from checks.display import terminal_safe
from checks.secrets import known_secrets, mask_tree
from console.formats.junit_format import _CONTROL
from console.formats.markdown_format import markdown_escape
from console.version import version

FORMATS = ("text", "json", "sarif", "junit", "markdown")
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def render(doc: dict[str, Any], fmt: str, *, width: int = 80) -> str:
    doc = mask_tree(doc, known_secrets())
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(doc), indent=2, ensure_ascii=False) + "\n"
    if fmt == "junit":
        return junit(doc)
    if fmt == "markdown":
        return markdown(doc)
    return text(doc, width=width)


def _one_line(sql: str, limit: int) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def text(doc: dict[str, Any], *, width: int = 80) -> str:
    out: list[str] = []

    def wrap(body: str, indent: str, rest: str | None = None) -> None:
        safe = terminal_safe(body)
        rest = rest if rest is not None else indent + "  "
        out.extend(textwrap.wrap(safe, width=width, initial_indent=indent, subsequent_indent=rest,
                                 break_long_words=True, break_on_hyphens=False) or [indent])

    wrap(f"Migration of {', '.join(doc['files'])} against {doc['target']} (not executed: catalog and "
         "statistics reads only)", "")
    for s in doc["statements"]:
        out.append("")
        wrap(f"{s['file']}:{s['line']}  {_one_line(s['sql'], 200)}", "")
        if s["lock"]:
            wrap(f"lock: {s['lock']} on {', '.join(s['tables'])} (blocks {s['blocks']})", "  ")
            effect = ("rewrites the table" if s["rewrites"] else "scans the table" if s["scans"] else
                      "no rewrite, no scan")
            wrap(f"{effect}; estimate {s['estimate_seconds']}s ({s['estimate_basis']})", "  ")
        for why in s.get("why", []):
            wrap(why, "    - ", "      ")
        for w in s["waits_behind"]:
            wrap(f"waits behind pid {w['pid']} ({w['application'] or '?'}, {w['state']}, {w['mode']}, "
                 f"transaction {w['xact_age_seconds']}s): {_one_line(w['query'], 120)}", "  ")
        for f in s["findings"]:
            wrap(f"{f['severity'].upper()} {f['rule']}: {f['message']}", "  ")
            wrap(f"safer: {f['fix']}", "    ")
        for note in s.get("notes", []):
            wrap(f"note: {note}", "  ")
    after = doc.get("after", [])
    if after or doc.get("after_notes"):
        out.append("")
        wrap(f"Schema after the migration: {len(after)} new finding(s)", "")
    for f in after:
        st = f["statement"]
        wrap(f"{f['severity'].upper()} {f['check']}: {f['message']}", "  ")
        wrap(f"added by {st['file']}:{st['line']}  {_one_line(st['sql'], 120)}", "    ")
    for note in doc.get("after_notes", []):
        wrap(f"note: {note}", "  ")
    for e in doc["errors"]:
        wrap(f"error: {e}", "")
    counts: dict[str, int] = {}
    for s in doc["statements"]:
        for f in s["findings"]:
            counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    out.append("")
    summary = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items(), key=lambda kv: _rank(kv[0]))) or "none"
    wrap(f"{len(doc['statements'])} statements; findings: {summary}", "")
    return "\n".join(out) + "\n"


def _rank(severity: str) -> int:
    return ("critical", "high", "medium", "low", "info").index(severity)


def sarif(doc: dict[str, Any]) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for s in doc["statements"]:
        for f in s["findings"]:
            rules.setdefault(f["rule"], {
                "id": f["rule"],
                "shortDescription": {"text": f["rule"]},
                "help": {"text": f["fix"]},
            })
            results.append({
                "ruleId": f["rule"],
                "level": LEVELS.get(f["severity"], "warning"),
                "message": {"text": f"{f['message']} Safer: {f['fix']}"},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": Path(s["file"]).as_posix()},
                        "region": {"startLine": max(1, int(s["line"]))},
                    },
                }],
                "properties": {"severity": f["severity"], "lock": s["lock"], "tables": s["tables"]},
            })
    for f in doc.get("after", []):
        rules.setdefault(f["check"], {"id": f["check"], "shortDescription": {"text": f["title"]}})
        results.append({
            "ruleId": f["check"],
            "level": LEVELS.get(f["severity"], "warning"),
            "message": {"text": f"After this statement: {f['message']}"},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": Path(f["statement"]["file"]).as_posix()},
                    "region": {"startLine": max(1, int(f["statement"]["line"]))},
                },
            }],
            "properties": {"severity": f["severity"], "object": f["object"]},
        })
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "dbvitals", "version": version(), "rules": list(rules.values())}},
            "results": results,
            "invocations": [{
                "executionSuccessful": not doc["errors"],
                "toolExecutionNotifications": [{"message": {"text": str(e)}, "level": "error"} for e in doc["errors"]],
            }],
        }],
    }



def junit(doc: dict[str, Any]) -> str:
    root = ET.Element("testsuites", name="dbvitals migration")
    suite = ET.SubElement(root, "testsuite", name=f"migration against {doc['target']}")
    failures = 0
    for s in doc["statements"]:
        case = ET.SubElement(suite, "testcase", classname=s["file"], name=f"{s['file']}:{s['line']} "
                             + _one_line(s["sql"], 100))
        if s["findings"]:
            failures += 1
            worst = min(s["findings"], key=lambda f: _rank(f["severity"]))
            failure = ET.SubElement(case, "failure", type=worst["rule"],
                                    message=f"{worst['severity']}: {worst['message']}")
            failure.text = "\n".join(f"{f['severity']} {f['rule']}: {f['message']}\nSafer: {f['fix']}"
                                     for f in s["findings"])
        out = ET.SubElement(case, "system-out")
        out.text = f"lock: {s['lock']} ({s['blocks']}); estimate {s['estimate_seconds']}s"
    after = doc.get("after", [])
    if after:
        case = ET.SubElement(suite, "testcase", classname="schema after", name="schema after the migration")
        failures += 1
        failure = ET.SubElement(case, "failure", type="schema-after", message=f"{len(after)} new finding(s)")
        failure.text = "\n".join(f"{f['severity']} {f['check']}: {f['message']} (added by "
                                 f"{f['statement']['file']}:{f['statement']['line']})" for f in after)
    tests = len(doc["statements"]) + (1 if after else 0)
    for key, value in (("tests", tests), ("failures", failures), ("errors", len(doc["errors"]))):
        suite.set(key, str(value))
        root.set(key, str(value))
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    xml = _CONTROL.sub(lambda m: terminal_safe(m.group()), xml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n"


def markdown(doc: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return markdown_escape(str(value)).replace("|", "\\|").replace("\n", " ")

    lines = [f"## Migration check against {cell(doc['target'])}", "",
             "| Statement | Lock | Blocks | Rewrite/scan | Estimate | Waits behind | Findings |",
             "|---|---|---|---|---|---|---|"]
    for s in doc["statements"]:
        effect = "rewrite" if s["rewrites"] else "scan" if s["scans"] else "–"
        findings = "<br>".join(f"**{cell(f['severity'])}** {cell(f['rule'])}: {cell(f['message'])} "
                               f"Safer: {cell(f['fix'])}" for f in s["findings"]) or "–"
        waits = ", ".join(f"pid {w['pid']} ({cell(w['application'])})" for w in s["waits_behind"]) or "–"
        lines.append(f"| {cell(s['file'])}:{s['line']} {cell(_one_line(s['sql'], 80))} | {cell(s['lock'] or '–')} "
                     f"| {cell(s['blocks'] or '–')} | {effect} | {s['estimate_seconds']}s | {waits} | {findings} |")
    after = doc.get("after", [])
    if after:
        lines += ["", "### Schema after the migration", "", "| Added by | Check | Severity | Finding |",
                  "|---|---|---|---|"]
        lines += [f"| {cell(f['statement']['file'])}:{f['statement']['line']} | {cell(f['check'])} "
                  f"| {cell(f['severity'])} | {cell(f['message'])} |" for f in after]
    for note in doc.get("after_notes", []):
        lines.append(f"\n> {cell(note)}")
    for e in doc["errors"]:
        lines.append(f"\n> error: {cell(e)}")
    return "\n".join(lines) + "\n"
