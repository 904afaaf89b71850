"""How urgent a capacity finding is: graded by the days left before it runs out, not the share
used. A sequence at 99 % that gains a value a month has years; one at 60 % drawing a million a
minute has hours. The rate behind the days must come from evidence (two readings, or a count over
a known period); when there is none the days are unknown, the finding says "runway unknown",
and the share-based severity stands.
"""

from __future__ import annotations

from checks.model import Severity

CRITICAL_DAYS = 7
HIGH_DAYS = 30
LOW_AFTER_DAYS = 365


def grade(days_left: float | None, by_share: Severity) -> Severity:
    """Under 7 days critical, under 30 high, within a year medium, beyond a year low; unknown:
    `by_share`, the grade by share used."""
    if days_left is None:
        return by_share
    if days_left < CRITICAL_DAYS:
        return Severity.CRITICAL
    if days_left < HIGH_DAYS:
        return Severity.HIGH
    if days_left <= LOW_AFTER_DAYS:
        return Severity.MEDIUM
    return Severity.LOW


def runway_text(days_left: float | None, *, at_least: bool = False, event: str = "runs out") -> str:
    """"runs out in 3.2 days", "… in 9.6 years", "runway unknown"; `at_least` when the rate
    behind it is an upper bound; `event` what happens then ("reaches 1 GiB")."""
    if days_left is None:
        return "runway unknown"
    more = "in more than" if at_least else "in"
    if days_left < 2:
        return f"{event} {more} {days_left * 24:.1f} hours"
    if days_left < 2 * LOW_AFTER_DAYS:
        return f"{event} {more} {days_left:.1f} days"
    if days_left >= 100 * LOW_AFTER_DAYS:
        return f"{event} in more than a century"
    return f"{event} {more} {days_left / LOW_AFTER_DAYS:.1f} years"
