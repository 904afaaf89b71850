"""The checks registered under the `dbvitals.checks` entry point group, and the validation of
the config's per-check options against them. (Engines register in checks.engines: the config
needs them to read a target, and this module needs the config.)"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

from checks.catalog_cache import ENTRY_POINT_GROUP
from checks.config import ConfigError, Settings
from checks.contract import Check, Fact, resolve_fact_options, resolve_options
from checks.engines import engine_problems


@dataclass
class Registry:
    checks: dict[str, type[Check]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # broken plugins, reported not raised

    def facts(self) -> dict[str, type[Fact[Any]]]:
        """Every fact a registered check declares, by id."""
        return {f.id: f for check in self.checks.values() for f in check.needs}

    def select(self, patterns: Sequence[str] | None) -> list[type[Check]]:
        """Checks matching any id or glob; every pattern must match something."""
        if not patterns:
            return list(self.checks.values())
        chosen: dict[str, type[Check]] = {}
        for pattern in patterns:
            matched = [c for cid, c in self.checks.items() if fnmatch.fnmatchcase(cid, pattern)]
            if not matched:
                raise UsageError(
                    f'--check "{pattern}" matches no check (run "dbvitals checks" for the catalog)'
                )
            for check in matched:
                chosen[check.id] = check
        return list(chosen.values())

    def add(self, check: Any, source: str) -> None:
        if not (isinstance(check, type) and issubclass(check, Check)):
            self.problems.append(f"plugin {source}: {check!r} is not a dbvitals Check class")
            return
        missing = [a for a in ("id", "engine", "title", "severity", "rationale") if not hasattr(check, a)]
        if missing:
            self.problems.append(f"plugin {source}: check {check.__name__} lacks {', '.join(missing)}")
            return
        existing = self.checks.get(check.id)
        if existing is not None and existing is not check:
            self.problems.append(f"plugin {source}: check id {check.id} is already registered")
            return
        self.checks[check.id] = check


class UsageError(Exception):
    """Bad command-line input, already phrased for the user (exit code 2)."""


def load_registry(entry_points: Iterable[metadata.EntryPoint] | None = None) -> Registry:
    """Every check registered under the `dbvitals.checks` entry point group.

    An entry point names a Check class, a list of them, or a module with `CHECKS`. A plugin
    that fails to import is reported in `problems`, and the others still load.
    """
    registry = Registry()
    if entry_points is None:  # what is installed: a broken engine package is a plugin problem too
        registry.problems += engine_problems()
    points = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
    for point in sorted(points, key=lambda p: (p.value.split(":")[0].split(".")[0] != "checks", p.name)):
        source = f"{point.name} = {point.value}"
        try:
            loaded = point.load()
        except Exception as exc:  # a broken third-party plugin must not take the tool down
            registry.problems.append(f"plugin {source} failed to load: {type(exc).__name__}: {exc}")
            continue
        if isinstance(loaded, ModuleType):
            loaded = getattr(loaded, "CHECKS", [])
        items = loaded if isinstance(loaded, (list, tuple)) else [loaded]
        for item in items:
            registry.add(item, source)
    return registry


def validate_check_options(settings: Settings, registry: Registry) -> None:
    """Unknown check ids and bad options in the config are errors, found before any I/O."""
    try:
        _validate_check_options(settings, registry)
    except ConfigError as exc:
        origin = settings.model_config.get("config_file")  # set by load_config: name the file, like every config error
        if origin:
            raise ConfigError(f"{origin}: {exc}") from None
        raise


def _validate_check_options(settings: Settings, registry: Registry) -> None:
    for name, target in settings.targets.items():
        for check_id in target.checks:
            check = registry.checks.get(check_id)
            if check is None:
                raise ConfigError(
                    f'targets.{name}.checks."{check_id}": no such check (run "dbvitals checks" for the catalog)'
                )
            if check.engine != target.kind:
                raise ConfigError(
                    f'targets.{name}.checks."{check_id}": a {check.engine} check on a {target.kind} target'
                )
            resolve_options(check, name, target)
        facts = registry.facts()
        for fact_id in target.facts:
            fact = facts.get(fact_id)
            if fact is None:
                known = ", ".join(sorted(facts)) or "none"
                raise ConfigError(f'targets.{name}.facts."{fact_id}": no such fact (known: {known})')
            if fact.engine != target.kind:
                raise ConfigError(
                    f'targets.{name}.facts."{fact_id}": a {fact.engine} fact on a {target.kind} target'
                )
            resolve_fact_options(fact, name, target)
