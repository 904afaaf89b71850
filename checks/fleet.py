"""Targets at fleet size: selecting them by group and tag, and discovering the databases a
server holds.

A target with `databases = "*"` (or names and globs) stands for every database on its server it
may reach: it is replaced by one target per database, named `TARGET/DB`, each a copy of it
with the database in its URL. A server that cannot be asked keeps the target as configured, so
its connection finding says why.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence
from typing import Any

from checks.budget import ServerBudgets
from checks.config import Settings, TargetBase
from checks.connectors import connect
from checks.engines import adapter_for


class SelectionError(Exception):
    """A --group or --tag that selects nothing, phrased for the user."""


def select(settings: Settings, *, groups: Sequence[str] = (), tags: Sequence[str] = ()) -> Settings:
    """The settings with only the targets in one of `groups` and carrying every one of `tags`.

    A tag `key=value` matches that tag; a bare `key` matches a tag `key` or any `key=...`."""
    if not groups and not tags:
        return settings
    chosen = {
        name: target for name, target in settings.targets.items()
        if (not groups or target.group in groups) and all(_has_tag(target, tag) for tag in tags)
    }
    if not chosen:
        wanted = ", ".join([*(f"--group {g}" for g in groups), *(f"--tag {t}" for t in tags)])
        known_groups = sorted({t.group for t in settings.targets.values() if t.group})
        known_tags = sorted({tag for t in settings.targets.values() for tag in t.tags})
        raise SelectionError(f"{wanted} selects no target (groups: {', '.join(known_groups) or 'none'}; "
                             f"tags: {', '.join(known_tags) or 'none'})")
    return settings.model_copy(update={"targets": chosen})


def _has_tag(target: TargetBase, wanted: str) -> bool:
    if "=" in wanted:
        return wanted in target.tags
    return any(tag == wanted or tag.startswith(wanted + "=") for tag in target.tags)


# --- discovery ------------------------------------------------------------------------------------

async def discover(settings: Settings, budgets: ServerBudgets | None = None) -> Settings:
    """Every target with `databases` replaced by one target per database it names.

    Listing keeps the server budget and the free-slot floor as a run does: at most the budget's
    sessions on a server at once, and on a server below the floor only the first listing (on the
    session that read the free slots): its other targets stay as configured, for the run to
    report the server full."""
    templates = {name: t for name, t in settings.targets.items() if t.databases is not None}
    if not templates:
        return settings
    budgets = budgets if budgets is not None else ServerBudgets()
    found = await asyncio.gather(*(_databases(name, t, settings, budgets) for name, t in templates.items()))
    targets: dict[str, Any] = {}
    for name, target in settings.targets.items():
        if name not in templates:
            targets[name] = target
            continue
        databases = found[list(templates).index(name)]
        if databases is None:
            targets[name] = target  # the server could not be asked: its connection finding says why
            continue
        for database in _matching(databases, target.databases):
            targets[f"{name}/{database}"] = target.model_copy(
                update={"url": adapter_for(target.kind).database_url(target.url, database), "databases": None}
            )
    return settings.model_copy(update={"targets": targets})


def _matching(databases: list[str], wanted: str | list[str] | None) -> list[str]:
    patterns = [wanted] if isinstance(wanted, str) else list(wanted or ["*"])
    return [db for db in databases if any(fnmatch.fnmatchcase(db, p) for p in patterns)]


async def _databases(name: str, target: TargetBase, settings: Settings, budgets: ServerBudgets) -> list[str] | None:
    budget = budgets.for_target(name, settings)
    guard = budgets.guard(budget.server)
    async with budget:
        first = await guard.take_turn()
        if not first and guard.full:
            return None
        connection = None
        try:
            connection = await connect(name, target)
            if connection.session is None:
                return None
            adapter = adapter_for(target.kind)
            if first:
                await guard.read_free_slots(adapter.free_slots(connection.session), target.call_deadline, settings)
            return await asyncio.wait_for(adapter.list_databases(connection.session), target.call_deadline)
        except Exception:  # listing refused (permissions): keep the target as configured
            return None
        finally:
            if first:
                guard.decide()
            if connection is not None:
                await connection.close()
