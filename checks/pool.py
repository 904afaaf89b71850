"""What every engine's `<engine>.pool` check shares: the capacity arithmetic, the pool budget
(application instances × pool size against what the server allows) and the findings for
client settings the target's URL leaves at the driver's defaults."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, model_validator

from checks.contract import Check, CheckOptions, Scope
from checks.model import FixAvailability, Finding, Severity

BUDGET_OBJECT = "app_pool"


class PoolOptions(CheckOptions):
    capacity_warn: float = Field(
        default=0.8, gt=0, le=1,
        description="Share of the server's usable connections in use at which capacity is a medium finding.",
    )
    capacity_critical: float = Field(
        default=0.95, gt=0, le=1,
        description="Share of the server's usable connections in use at which capacity is a high finding.",
    )
    budget_warn: float = Field(
        default=0.8, gt=0, le=1,
        description="Share of the server's usable connections the application's pools may take before the "
        "budget is a medium finding (above 1 it is high: the application alone can exhaust the server).",
    )
    check_url: bool = Field(
        default=True,
        description="Judge the pool and timeout parameters of the target's URL; false when the application "
        "configures its driver elsewhere.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PoolOptions:
        if self.capacity_warn > self.capacity_critical:
            raise ValueError("capacity_warn must not exceed capacity_critical")
        return self


@dataclass(frozen=True)
class UrlSetting:
    """A client parameter the URL leaves at a driver default unfit for production."""

    parameter: str  # as written in the URL, e.g. "connect_timeout"
    current: str | None  # the URL's value; None when absent
    driver_default: str  # what the driver does without it, in words
    recommended: str  # the value to write in the URL
    reason: str
    severity: Severity


@dataclass(frozen=True)
class Capacity:
    """Connections the server allows to ordinary clients, and how many are open now.

    `usable` is None when the server does not say (then capacity is "unknown", never "full").
    """

    usable: int | None
    in_use: int
    evidence: dict[str, Any]

    @property
    def share(self) -> float | None:
        if not self.usable:
            return None
        return self.in_use / self.usable


class PoolCheck(Check):
    """Engine subclasses gather facts and call the helpers below from `evaluate`."""

    severity: ClassVar[Severity] = Severity.HIGH
    fix_availability: ClassVar[FixAvailability] = FixAvailability.SOMETIMES
    runs_when_server_full: ClassVar[bool] = True
    Options = PoolOptions

    def capacity_findings(self, scope: Scope, capacity: Capacity, *, object: str, setting: str) -> list[Finding]:
        """A finding when the connections in use come near what the server allows."""
        options: PoolOptions = scope.options
        share = capacity.share
        if share is None or share < options.capacity_warn:
            return []
        severity = Severity.HIGH if share >= options.capacity_critical else Severity.MEDIUM
        free = max(0, (capacity.usable or 0) - capacity.in_use)
        return [
            self.finding(
                scope,
                object=object,
                title="Server connections nearly exhausted" if severity is Severity.HIGH else "Server connections running low",
                message=f"{capacity.in_use} of {capacity.usable} usable connections ({share:.0%}) are open; "
                f"{free} remain before new clients are refused. Raise {setting}, or shrink the pools and "
                "close idle connections.",
                evidence={
                    **capacity.evidence,
                    "in_use": capacity.in_use,
                    "usable": capacity.usable,
                    "share": round(share, 3),
                    "threshold": options.capacity_critical if severity is Severity.HIGH else options.capacity_warn,
                },
                severity=severity,
                key="capacity",
            )
        ]

    def budget_findings(
        self,
        scope: Scope,
        *,
        per_instance: int | None,
        per_instance_source: str,
        usable: int | None,
        server_evidence: dict[str, Any],
        setting: str,
    ) -> list[Finding]:
        """app_pool.instances × pool size against the connections the server allows."""
        app_pool = scope.config.app_pool
        if app_pool is None or per_instance is None or not usable:
            return []
        options: PoolOptions = scope.options
        demand = app_pool.instances * per_instance
        share = demand / usable
        if share < options.budget_warn:
            return []
        exhausts = demand > usable
        evidence = {
            **server_evidence,
            "instances": app_pool.instances,
            "pool_size": per_instance,
            "pool_size_from": per_instance_source,
            "demand": demand,
            "usable": usable,
            "arithmetic": f"{app_pool.instances} instances × {per_instance} = {demand} connections "
            f"{'>' if exhausts else '≤'} {usable} usable",
            "threshold": options.budget_warn,
        }
        fitting = max(1, math.floor(usable * options.budget_warn / app_pool.instances))
        advice = (
            f"Keep instances × pool size under {math.floor(usable * options.budget_warn)} (for example a pool of "
            f"{fitting} per instance), put a connection pooler in front, or raise {setting}."
        )
        if exhausts:
            return [
                self.finding(
                    scope,
                    object=BUDGET_OBJECT,
                    title="Application pools can exhaust the server",
                    message=f"At full pools the application opens {demand} connections ({app_pool.instances} "
                    f"instances × {per_instance}) but the server allows {usable}: under load new connections "
                    f"are refused, for this application and every other client. {advice}",
                    evidence=evidence,
                    severity=Severity.HIGH,
                    key="budget",
                )
            ]
        return [
            self.finding(
                scope,
                object=BUDGET_OBJECT,
                title="Application pools leave little headroom",
                message=f"At full pools the application opens {demand} connections ({app_pool.instances} "
                f"instances × {per_instance}), {share:.0%} of the {usable} the server allows: a deploy that "
                f"briefly runs old and new instances side by side, or any other client, can exhaust it. {advice}",
                evidence=evidence,
                severity=Severity.MEDIUM,
                key="budget",
            )
        ]

    def url_findings(self, scope: Scope, settings: Iterable[UrlSetting]) -> list[Finding]:
        """One finding per URL parameter, so each id is stable and can be suppressed on its own."""
        options: PoolOptions = scope.options
        if not options.check_url:
            return []
        findings = []
        for setting in settings:
            where = "absent from the URL" if setting.current is None else f"{setting.parameter}={setting.current}"
            findings.append(
                self.finding(
                    scope,
                    object=f"url:{setting.parameter}",
                    title=f"URL leaves {setting.parameter} at the driver default",
                    message=f"{setting.parameter} is {where}: {setting.driver_default}. {setting.reason} "
                    f"Add {setting.parameter}={setting.recommended} to the application's URL.",
                    evidence={
                        "parameter": setting.parameter,
                        "current": setting.current,
                        "driver_default": setting.driver_default,
                        "recommended": setting.recommended,
                        "url": scope.status.url,
                    },
                    severity=setting.severity,
                    key=setting.parameter,
                )
            )
        return findings

    def unknown_finding(self, scope: Scope, *, object: str, title: str, message: str, evidence: dict[str, Any]) -> Finding:
        """A figure the server does not give: said plainly, never guessed at."""
        return self.finding(scope, object=object, title=title, message=message, evidence=evidence,
                            severity=Severity.INFO, key="unknown")


def parse_number(value: str | None) -> float | None:
    """A numeric URL parameter, or None when absent or not a number (the driver rejects those itself)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
