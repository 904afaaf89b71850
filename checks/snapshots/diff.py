"""What changed between two snapshots: findings that appeared, went or changed severity, and the
figures that moved most — the first question after a deploy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checks.engines import engines
from checks.model import Finding
from checks.snapshots import figures_for
from checks.snapshots.store import Snapshot

TOP = 10
MIN_GROWTH = 1.5  # x: mean time per call, pattern keys or memory grown at least this much
# "Stopped being used" means something only over a window in which the object would have been
# used: no scans in 5 seconds says nothing about an index.
MIN_USAGE_WINDOW = dt.timedelta(hours=1)

Judge = Callable[[str, str, str, "dict[str, Any] | None", "dict[str, Any]"], "FigureChange | None"]


@dataclass
class FigureChange:
    target: str
    kind: str
    name: str
    change: str  # what happened, in words
    before: Any = None
    after: Any = None
    score: float = 0.0  # for ranking within a kind; larger is more notable
    stopped: bool = False  # a judgement that the object stopped being used: needs a long enough window
    ref: str | None = None  # the figure's own key when `name` is a label for it (a statement's queryid)

    def to_dict(self) -> dict[str, Any]:
        out = {"target": self.target, "kind": self.kind, "name": self.name, "change": self.change,
               "before": self.before, "after": self.after}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


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


@dataclass(frozen=True)
class FigureKind:
    """How `diff` reads one kind of figure an engine's figures module takes ("pg.index"): the judge
    of a figure in both snapshots (or new in the later one), and the words and headline metric
    for an object gone from the later one. Each engine's figures module lists its own in `KINDS`."""

    judge: Judge
    gone: str | None = None
    headline: str | None = None


def figure_kinds() -> dict[str, FigureKind]:
    """The figure kinds of every registered engine."""
    kinds: dict[str, FigureKind] = {}
    for kind in engines():
        kinds.update(getattr(figures_for(kind), "KINDS", {}))
    return kinds


def diff(a: Snapshot, b: Snapshot, *, min_usage_window: dt.timedelta = MIN_USAGE_WINDOW,
         now: dt.datetime | None = None) -> Diff:
    """`b` may be a snapshot taken now (its taken_at is "now"): `now` is then its time."""
    result = Diff(before=a.info.to_dict(), after=b.info.to_dict())
    window = _taken(b.info.taken_at, now) - _taken(a.info.taken_at, now)
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
            changes = figure_changes(target, a.figures.get(target, {}), b.figures.get(target, {}))
            result.figures.extend(_judged_usage(target, changes, window, min_usage_window))
    return result


def _taken(taken_at: str, now: dt.datetime | None) -> dt.datetime:
    if taken_at == "now":
        return now or dt.datetime.now(dt.timezone.utc)
    when = dt.datetime.fromisoformat(taken_at)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _judged_usage(target: str, changes: list[FigureChange], window: dt.timedelta,
                  minimum: dt.timedelta) -> list[FigureChange]:
    """Over a window shorter than `minimum`, "stopped being used" is no judgement: the objects
    not used in it are counted in one line that says the window was too short."""
    if window >= minimum:
        return changes
    kept = [c for c in changes if not c.stopped]
    unjudged = [c for c in changes if c.stopped]
    for kind in sorted({c.kind for c in unjudged}):
        count = sum(1 for c in unjudged if c.kind == kind)
        kept.append(FigureChange(
            target, kind, "(usage)",
            f"window too short to judge usage ({_span(window)} between the snapshots, at least {_span(minimum)} "
            f"needed): {count} not used in it, not judged", score=0.0))
    return kept


def _span(delta: dt.timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _absent(snapshot: Snapshot, target: str) -> set[str]:
    """A target added to the config after `snapshot`: its findings are all new."""
    return set() if any(t.name == target for t in snapshot.targets) else {target}


def figure_changes(target: str, before: dict[tuple[str, str], dict[str, Any]],
                   after: dict[tuple[str, str], dict[str, Any]]) -> list[FigureChange]:
    kinds = figure_kinds()
    changes: list[FigureChange] = []
    for (kind, name), now in after.items():
        then = before.get((kind, name))
        judged = kinds.get(kind)
        if judged is not None:
            change = judged.judge(target, kind, name, then, now)
            if change is not None:
                changes.append(change)
    for (kind, name), then in before.items():
        judged = kinds.get(kind)
        if (kind, name) not in after and judged is not None and judged.gone:
            changes.append(FigureChange(target, kind, name, judged.gone,
                                        before=then.get(judged.headline) if judged.headline else None,
                                        score=float("inf")))
    ranked: list[FigureChange] = []
    for kind in sorted({c.kind for c in changes}):
        ranked.extend(sorted((c for c in changes if c.kind == kind), key=lambda c: -c.score)[:TOP])
    return ranked


def usage_stopped(counter: str) -> Any:
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
                                f"({before} before)", before=before, after=after, score=float(before), stopped=True)
        return None
    return judge


def growth(counter: str, unit: str) -> Any:
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
