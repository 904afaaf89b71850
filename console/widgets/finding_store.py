"""The findings the console holds, and the filter the findings table shows them through.

Results stream in check by check: each (target, check) slot is replaced whole, so a re-run
never duplicates a finding. Each slot remembers when its check last confirmed it; when a
target goes down (or a check fails) its findings stay, marked stale with that time, because
the last thing known about a dead server is often what killed it. Everything the filter needs
per finding (a lower-cased search text, its fields) is computed once on arrival, so a keypress costs one pass of cheap tests, not a
re-render of ten thousand rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from checks.display import display_finding
from checks.model import Finding, Severity
from console.filtering import Field, Query

SORT_KEYS = ("severity", "target", "check", "object", "title")
_SEVERITY_SYNONYMS = {"crit": "critical", "med": "medium"}
STATES = ("fresh", "stale")


def finding_fields(targets: Iterable[str], engines: Iterable[str]) -> tuple[Field, ...]:
    """What the findings box filters on; severities, states, targets and engines are few, so a
    value outside them is a typo the box reports."""
    return (
        Field("severity", ("sev", "s"), frozenset(s.value for s in Severity), _SEVERITY_SYNONYMS),
        Field("target", ("t",), frozenset(t.lower() for t in targets)),
        Field("engine", ("e",), frozenset(e.lower() for e in engines)),
        Field("check", ("c",)),
        Field("object", ("o",)),
        Field("title"),
        Field("state", (), frozenset(STATES)),
    )


def _urgency(finding: Finding, down: frozenset[str], production: frozenset[str],
             stale: set[tuple[str, str]]) -> int:
    """0: what a down target's checks still report (that it cannot be reached); 1: production's
    findings (a down target's earlier ones too); 2: the rest."""
    if finding.target in down and (finding.target, finding.check) not in stale:
        return 0
    return 1 if finding.target in production else 2


def _sort_key(name: str, store: FindingStore):
    if name == "severity":  # the urgency order
        down, production, stale = store.down, store.production, store.stale
        return lambda f: (_urgency(f, down, production, stale), -f.severity.rank, f.target, f.check, f.object)
    if name == "target":
        return lambda f: (f.target, -f.severity.rank, f.check, f.object)
    if name == "check":
        return lambda f: (f.check, -f.severity.rank, f.target, f.object)
    if name == "object":
        return lambda f: (f.object, -f.severity.rank, f.target, f.check)
    return lambda f: (f.title, -f.severity.rank, f.target, f.object)


@dataclass
class FindingStore:
    slots: dict[tuple[str, str], list[Finding]] = field(default_factory=dict)
    _search: dict[str, str] = field(default_factory=dict)
    _fields: dict[str, dict[str, str]] = field(default_factory=dict)
    _ordered: dict[tuple[str, bool], list[Finding]] = field(default_factory=dict)
    confirmed: dict[tuple[str, str], float] = field(default_factory=dict)  # slot -> epoch seconds
    stale: set[tuple[str, str]] = field(default_factory=set)
    # The urgency order: findings of targets down first, then production's.
    down: frozenset[str] = frozenset()
    production: frozenset[str] = frozenset()
    version: int = 0

    def replace(self, target: str, check: str, findings: Iterable[Finding], *, at: float | None = None) -> None:
        # Names from databases reach the screen only terminal-safe (an ESC in a key name would
        # otherwise drive the operator's terminal).
        found = [display_finding(f) for f in findings]
        slot = (target, check)
        for old in self.slots.pop(slot, ()):
            self._search.pop(old.id, None)
            self._fields.pop(old.id, None)
        self.stale.discard(slot)
        self.confirmed.pop(slot, None)
        if found:
            self.slots[slot] = found
            self.confirmed[slot] = time.time() if at is None else at
            for f in found:
                self._search[f.id] = "\n".join((f.target, f.check, f.object, f.title, f.message)).lower()
                self._fields[f.id] = {"severity": f.severity.value, "target": f.target.lower(),
                                      "engine": f.check.partition(".")[0].lower(), "check": f.check.lower(),
                                      "object": f.object.lower(), "title": f.title.lower()}
        self._changed()

    def keep_only(self, target: str, checks: Iterable[str]) -> None:
        """Drop the target's findings of checks that did not run this time."""
        ran = set(checks)
        for slot in [s for s in self.slots if s[0] == target and s[1] not in ran]:
            self.replace(*slot, ())

    def mark_stale(self, target: str, check: str | None = None, *, keep: Iterable[str] = ()) -> None:
        """The target's findings (or one check's) can no longer be confirmed: keep them, stale,
        except those of the checks in `keep`, which just answered."""
        fresh = set(keep)
        slots = [s for s in self.slots if s[0] == target and (check is None or s[1] == check) and s[1] not in fresh]
        if slots and not self.stale.issuperset(slots):
            self.stale.update(slots)
            self._changed()

    def rank_targets(self, down: Iterable[str], production: Iterable[str]) -> bool:
        """Which targets are down and which production, for the urgency order; whether that
        changed."""
        ranks = frozenset(down), frozenset(production)
        if ranks == (self.down, self.production):
            return False
        self.down, self.production = ranks
        self._changed()
        return True

    def is_stale(self, finding: Finding) -> bool:
        return (finding.target, finding.check) in self.stale

    def confirmed_at(self, finding: Finding) -> float | None:
        return self.confirmed.get((finding.target, finding.check))

    def remove(self, finding_id: str) -> Finding | None:
        for slot, findings in self.slots.items():
            for f in findings:
                if f.id == finding_id:
                    self.replace(*slot, [x for x in findings if x.id != finding_id])
                    return f
        return None

    def _changed(self) -> None:
        self.version += 1
        self._ordered.clear()

    def __len__(self) -> int:
        return len(self._search)

    def ordered(self, sort: str = "severity", reverse: bool = False) -> list[Finding]:
        """All findings sorted; cached until the next change, so filtering never re-sorts."""
        key = (sort, reverse)
        if key not in self._ordered:
            everything = [f for findings in self.slots.values() for f in findings]
            self._ordered[key] = sorted(everything, key=_sort_key(sort, self), reverse=reverse)
        return self._ordered[key]

    def select(self, query: Query, sort: str = "severity", reverse: bool = False) -> list[Finding]:
        rows = self.ordered(sort, reverse)
        if not query.active:
            return rows
        search, fields, stale = self._search, self._fields, self.stale
        return [
            f for f in rows
            if query.matches({**fields[f.id], "state": STATES[(f.target, f.check) in stale]}, search[f.id])
        ]

    def counts_for(self, target: str) -> Counter[Severity]:
        counts: Counter[Severity] = Counter()
        for (slot_target, _), findings in self.slots.items():
            if slot_target == target:
                counts.update(f.severity for f in findings)
        return counts

    def checks(self) -> list[str]:
        return sorted({check for _, check in self.slots})


def severity_counts(findings: Iterable[Finding]) -> Counter[Severity]:
    return Counter(f.severity for f in findings)
