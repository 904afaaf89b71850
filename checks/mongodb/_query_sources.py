"""Where mongodb.missing-index finds the application's queries without the profiler, and how
each source's reply becomes the profiler-like entries the shape grouping reads.

- the slow-query log: mongod (4.4+) writes every operation slower than slowms (100 ms by
  default) as a structured JSON line, `"msg":"Slow query"`, with the namespace, the command,
  planSummary, keysExamined, docsExamined, nreturned and durationMillis; `getLog: "global"`
  returns the most recent 1024 lines;
- `$queryStats` (MongoDB 6.0.7+/7.0.12+ where enabled): per query shape, execCount and sums of
  documents examined and returned; literals are already replaced by "?type" placeholders;
- `currentOp`: operations running now, with their planSummary (a COLLSCAN in progress).

Every function here is pure: the replies come in, entries go out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

SLOW_QUERY = "Slow query"
OWN_APP = "dbvitals"
# $queryStats placeholders, replaced by a value of the type for explain (which needs literals).
_PLACEHOLDERS: dict[str, Any] = {
    "?string": "", "?number": 0, "?bool": True, "?null": None, "?date": dt.datetime(2000, 1, 1),
    "?array": [], "?object": {}, "?binData": b"", "?timestamp": 0, "?minKey": 0, "?maxKey": 0,
}


@dataclass(frozen=True)
class SlowLog:
    entries: list[dict[str, Any]]  # profiler-shaped, one per slow operation
    lines: int  # lines the server returned
    structured: bool  # whether they are mongod's JSON lines (4.4+); SecantusDB's are plain text


def _extended_json(text: str) -> Any:
    from bson import json_util

    return json_util.loads(text)


def parse_slow_log(lines: list[str]) -> SlowLog:
    """The "Slow query" lines of a getLog reply as profiler-shaped entries; other lines, and
    lines whose command the server truncated, are skipped."""
    entries: list[dict[str, Any]] = []
    structured = False
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = _extended_json(line)
        except (ValueError, TypeError):
            continue
        structured = True
        attr = record.get("attr") if isinstance(record, dict) else None
        if record.get("msg") != SLOW_QUERY or not isinstance(attr, dict) or not isinstance(attr.get("command"), dict):
            continue
        if "truncated" in attr:  # the command was cut at maxLogSizeKB: its filter is not whole
            continue
        kind = str(attr.get("type", "command"))
        entries.append({
            "op": {"command": _command_op(attr["command"]), "update": "update", "remove": "remove"}.get(kind, kind),
            "ns": attr.get("ns", ""),
            "command": attr["command"],
            "appName": attr.get("appName"),
            "millis": attr.get("durationMillis", 0),
            "planSummary": attr.get("planSummary"),
            **{k: attr[k] for k in ("docsExamined", "keysExamined", "nreturned", "nMatched", "ndeleted") if k in attr},
            **({"queryShapeHash": attr["queryShapeHash"]} if "queryShapeHash" in attr else {}),
        })
    return SlowLog(entries, len(lines), structured)


def _command_op(command: dict[str, Any]) -> str:
    return "query" if "find" in command else "command"


def representative(value: Any) -> Any:
    """A $queryStats shape with each "?type" placeholder replaced by a literal of that type, so
    the shape can be explained ("?array<?number>" becomes [0])."""
    if isinstance(value, dict):
        return {k: representative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [representative(v) for v in value]
    if isinstance(value, str) and value.startswith("?"):
        if value.startswith("?array<") and value.endswith(">"):
            return [representative(value[len("?array<"):-1])]
        return _PLACEHOLDERS.get(value, value)
    return value


def query_stats_entries(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """$queryStats documents as profiler-shaped entries, each standing for execCount executions."""
    entries = []
    for doc in documents:
        key = doc.get("key") or {}
        shape = key.get("queryShape") or {}
        ns = shape.get("cmdNs") or {}
        client = ((key.get("client") or {}).get("application") or {}).get("name")
        metrics = doc.get("metrics") or {}
        if not ns.get("db") or not ns.get("coll") or key.get("collectionType", "collection") != "collection":
            continue
        command: dict[str, Any]
        if shape.get("command") == "find":
            command = {"find": ns["coll"], "filter": representative(shape.get("filter") or {})}
            if shape.get("sort"):
                command["sort"] = shape["sort"]
        elif shape.get("command") == "aggregate":
            command = {"aggregate": ns["coll"], "pipeline": representative(shape.get("pipeline") or [])}
        elif shape.get("command") == "distinct":
            command = {"distinct": ns["coll"], "query": representative(shape.get("query") or {})}
        else:
            continue
        entry: dict[str, Any] = {
            "op": "query" if "find" in command else "command",
            "ns": f"{ns['db']}.{ns['coll']}",
            "command": command,
            "appName": client,
            "executions": int(metrics.get("execCount") or 0) or 1,
            "millis": int((metrics.get("totalExecMicros") or {}).get("sum") or 0) // 1000,
        }
        for source, target in (("docsExamined", "docsExamined"), ("keysExamined", "keysExamined"),
                               ("docsReturned", "nreturned")):
            if isinstance(metrics.get(source), dict) and "sum" in metrics[source]:
                entry[target] = int(metrics[source]["sum"])
        if metrics.get("hasSortStage"):
            entry["planSummary"] = "SORT (hasSortStage)"
        entries.append(entry)
    return entries


def current_op_entries(inprog: list[dict[str, Any]], min_seconds: int) -> list[dict[str, Any]]:
    """Operations running now that scan a collection, or have run for min_seconds or more."""
    entries = []
    for op in inprog:
        plan = str(op.get("planSummary") or "")
        if op.get("op") not in ("query", "command", "update", "remove", "getmore") or not op.get("command"):
            continue
        if "COLLSCAN" not in plan and int(op.get("secs_running") or 0) < min_seconds:
            continue
        client = (op.get("clientMetadata") or {}).get("application") or {}
        entries.append({
            "op": op["op"], "ns": op.get("ns", ""), "command": op["command"], "appName": op.get("appName") or client.get("name"),
            "millis": int(op.get("microsecs_running") or 0) // 1000, "planSummary": plan or None,
        })
    return entries
