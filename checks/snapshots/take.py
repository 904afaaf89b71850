"""Taking a snapshot: the checks' report, then per reachable target its figures and what is
running, over one extra session; every text masked with the target's secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.activity import for_engine
from checks.budget import ServerBudgets
from checks.config import Settings
from checks.connectors import connect
from checks.model import Report
from checks.registry import Registry
from checks.runner import Runner
from checks.secrets import mask_text, mask_tree
from checks.snapshots import Figure, figures_for


@dataclass
class Taken:
    report: Report
    figures: dict[str, list[Figure]] = field(default_factory=dict)
    activity: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # figures a target could not give, said plainly


async def take(
    settings: Settings,
    registry: Registry,
    *,
    targets: Sequence[str] | None = None,
    checks: Sequence[str] | None = None,
    with_activity: bool = True,
) -> Taken:
    budgets = ServerBudgets()
    runner = Runner(settings, registry, targets=targets, checks=checks, budgets=budgets)
    report = await runner.run()
    taken = Taken(report)
    reachable = [t.name for t in report.targets if t.reachable]

    async def extras(name: str) -> None:
        async with budgets.for_target(name, settings):  # the same sessions-per-server budget as the checks
            await _extras(settings, name, taken, with_activity)

    await asyncio.gather(*(extras(name) for name in reachable))
    return taken


async def _extras(settings: Settings, name: str, taken: Taken, with_activity: bool) -> None:
    target = settings.targets[name]
    engine = target.kind
    secrets = target.secret_values()
    connection = await connect(name, target)
    if connection.session is None:
        taken.problems.append(f"{name}: figures not taken: {connection.status.error}")
        return
    try:
        try:
            figures = await asyncio.wait_for(figures_for(engine).gather(connection.session), target.check_timeout)
            taken.figures[name] = [(kind, mask_text(n, secrets), mask_tree(m, secrets)) for kind, n, m in figures]
        except Exception as exc:  # figures are context: a failure is said, the snapshot still saves
            taken.problems.append(mask_text(f"{name}: figures not taken: {type(exc).__name__}: {exc}", secrets)[:500])
        if with_activity:
            try:
                sample = await asyncio.wait_for(for_engine(engine).read(connection.session, name, None), target.call_deadline)
                taken.activity[name] = mask_tree(sample.to_dict(), secrets)
            except Exception as exc:
                taken.problems.append(mask_text(f"{name}: activity not read: {type(exc).__name__}: {exc}", secrets)[:500])
    finally:
        await connection.close()

