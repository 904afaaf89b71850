"""What changed between two snapshots: findings that appeared, went or changed severity, and the
figures that moved most — the first question after a deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checks.model import Finding
from checks.snapshots.store import Snapshot

TOP = 10
MIN_CALLS = 5  # a statement needs this many calls in the window before its mean time is judged
MIN_GROWTH = 1.5  # x: mean time per call, pattern keys or memory grown at least this much


@dataclass
class FigureChange:
    target: str
    kind: str
    name: str
    change: str  # what happened, in words
    before: Any = None
    after: Any = None
    score: float = 0.0  # for ranking within a kind; larger is more notable

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "name": self.name, "change": self.change,
                "before": self.before, "after": self.after}


@dataclass
class Diff:
    before: dict[str, Any]
    after: dict[str, Any]
    new: list[Finding] = field(default_factory=list)
    resolved: list[Finding] = field(default_factory=list)
    changed: list[tuple[Finding, Finding]] = field(default_factory=list)  # severity changed
    figures: list[FigureChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "dbvitals.diff/1",
            "before": self.before,
            "after": self.after,
            "new": [f.to_dict() for f in self.new],
            "resolved": [f.to_dict() for f in self.resolved],
            "severity_changed": [{"id": b.id, "before": b.severity.value, "after": a.severity.value,
                                  "title": a.title, "target": a.target} for b, a in self.changed],
            "figures": [c.to_dict() for c in self.figures],
        }


def diff(a: Snapshot, b: Snapshot) -> Diff:
    result = Diff(before=a.info.to_dict(), after=b.info.to_dict())
    old = {f.id: f for f in a.findings}
    new = {f.id: f for f in b.findings}
    # A target that could not be read in one snapshot says nothing about its findings there.
    read_a = {t.name for t in a.targets if t.reachable}
    read_b = {t.name for t in b.targets if t.reachable}
    result.new = [f for i, f in new.items() if i not in old and f.target in read_a | _absent(a, f.target)]
    result.resolved = [f for i, f in old.items() if i not in new and f.target in read_b]
    result.changed = [(old[i], new[i]) for i in old.keys() & new.keys() if old[i].severity != new[i].severity]
    for bucket in (result.new, result.resolved):
        bucket.sort(key=lambda f: (-f.severity.rank, f.target, f.check, f.object))
    # Figures compare only where both snapshots read the target (an empty list is a reading).
    for target in sorted(read_a & read_b):
        if target in a.figures or target in b.figures:
            result.figures.extend(figure_changes(target, a.figures.get(target, {}), b.figures.get(target, {})))
    return result


def _absent(snapshot: Snapshot, target: str) -> set[str]:
    """A target added to the config after `snapshot`: its findings are all new."""
    return set() if any(t.name == target for t in snapshot.targets) else {target}


def figure_changes(target: str, before: dict[tuple[str, str], dict[str, Any]],
                   after: dict[tuple[str, str], dict[str, Any]]) -> list[FigureChange]:
    changes: list[FigureChange] = []
    for (kind, name), now in after.items():
        then = before.get((kind, name))
        judge = JUDGES.get(kind)
        if judge is not None:
            change = judge(target, kind, name, then, now)
            if change is not None:
                changes.append(change)
    for (kind, name), then in before.items():
        if (kind, name) not in after and kind in GONE_WORDS:
            changes.append(FigureChange(target, kind, name, GONE_WORDS[kind], before=_headline(kind, then),
                                        score=float("inf")))
    ranked: list[FigureChange] = []
    for kind in sorted({c.kind for c in changes}):
        ranked.extend(sorted((c for c in changes if c.kind == kind), key=lambda c: -c.score)[:TOP])
    return ranked


GONE_WORDS = {"pg.index": "index dropped", "pg.table": "table dropped", "mongo.index": "index dropped",
              "mongo.collection": "collection dropped", "redis.pattern": "no keys of this pattern left"}


def _headline(kind: str, metrics: dict[str, Any]) -> Any:
    key = {"pg.index": "scans", "pg.table": "seq_scan", "mongo.index": "ops", "mongo.collection": "documents",
           "redis.pattern": "keys"}.get(kind)
    return metrics.get(key) if key else None


def _statement(target: str, kind: str, name: str, then: dict[str, Any] | None, now: dict[str, Any]) -> FigureChange | None:
    if then is None:
        if (now.get("calls") or 0) >= MIN_CALLS:
            mean = now["total_ms"] / now["calls"]
            return FigureChange(target, kind, name, f"new statement: {now['calls']} calls, {mean:.2f} ms per call "
                                f"— {now.get('query', '')}", after=round(mean, 3), score=now["total_ms"])
        return None
    calls = (now.get("calls") or 0) - (then.get("calls") or 0)
    if calls < MIN_CALLS or not then.get("calls"):
        return None
    window_mean = ((now.get("total_ms") or 0) - (then.get("total_ms") or 0)) / calls
    mean_before = (then.get("total_ms") or 0) / then["calls"]
    if mean_before <= 0 or window_mean < mean_before * MIN_GROWTH:
        return None
    return FigureChange(target, kind, name,
                        f"mean time per call grew {window_mean / mean_before:.1f}x ({mean_before:.2f} → "
                        f"{window_mean:.2f} ms over {calls} calls) — {now.get('query', '')}",
                        before=round(mean_before, 3), after=round(window_mean, 3),
                        score=(window_mean - mean_before) * calls)


def _usage_stopped(counter: str) -> Any:
    def judge(target: str, kind: str, name: str, then: dict[str, Any] | None, now: dict[str, Any]) -> FigureChange | None:
        if then is None:
            return FigureChange(target, kind, name, "new index", after=now.get(counter), score=0.0)
        before, after = then.get(counter), now.get(counter)
        if before is None or after is None:
            return None
        if after < before:  # statistics reset or server restart: no conclusion
            return None
        if before > 0 and after == before:
            return FigureChange(target, kind, name, f"stopped being used: no scans since the earlier snapshot "
                                f"({before} before)", before=before, after=after, score=float(before))
        return None
    return judge


def _growth(counter: str, unit: str) -> Any:
    def judge(target: str, kind: str, name: str, then: dict[str, Any] | None, now: dict[str, Any]) -> FigureChange | None:
        after = now.get(counter)
        if after is None:
            return None
        before = (then or {}).get(counter)
        if not before:
            if then is None and after:
                return FigureChange(target, kind, name, f"new: {after:,} {unit}", after=after, score=float(after))
            return None
        if after >= before * MIN_GROWTH:
            return FigureChange(target, kind, name, f"grew {after / before:.1f}x: {before:,} → {after:,} {unit}",
                                before=before, after=after, score=float(after - before))
        return None
    return judge


def _seq_scans(target: str, kind: str, name: str, then: dict[str, Any] | None, now: dict[str, Any]) -> FigureChange | None:
    if then is None:
        return None
    scans = (now.get("seq_scan") or 0) - (then.get("seq_scan") or 0)
    rows = (now.get("seq_tup_read") or 0) - (then.get("seq_tup_read") or 0)
    if scans <= 0 or rows < 10_000:
        return None
    return FigureChange(target, kind, name, f"{scans:,} sequential scans reading {rows:,} rows since the earlier snapshot",
                        before=then.get("seq_scan"), after=now.get("seq_scan"), score=float(rows))


JUDGES = {
    "pg.statement": _statement,
    "pg.index": _usage_stopped("scans"),
    "pg.table": _seq_scans,
    "mongo.index": _usage_stopped("ops"),
    "mongo.collection": _growth("documents", "documents"),
    "redis.pattern": _growth("keys", "keys"),
}
