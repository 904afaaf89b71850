"""The check contract, the plugin registry and the concurrent runner."""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from checks.budget import FreeSlots, ServerBudgets, ServerGuard, floor_for
from checks.catalog_cache import ENTRY_POINT_GROUP
from checks.config import ConfigError, Settings, TargetBase
from checks.model import (
    CheckError,
    Engine,
    Finding,
    Fix,
    FixAvailability,
    Report,
    Severity,
    TargetState,
    TargetStatus,
    finding_id,
)
from checks.secrets import mask_text


class CheckOptions(BaseModel):
    """Per-target options of a check: `[targets.NAME.checks."<check id>"]`. Subclass to add
    thresholds; every field needs a default and a description (config.example.toml shows them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(default=True, description="Run this check on this target.")


class FactOptions(BaseModel):
    """Options of a shared fact: `[targets.NAME.facts."<fact id>"]`. Same rules as CheckOptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


@dataclass(frozen=True)
class FactRequest:
    """One check of this run that declared the fact, with its options for the target."""

    check: type[Check]
    options: Any


@dataclass(frozen=True)
class FactContext:
    """What a fact's `compute` may know: the target, its own options, and which checks of this
    run asked for it (so one pass can read what each of them needs, and no more)."""

    target: str
    config: TargetBase
    status: TargetStatus
    options: Any
    requests: tuple[FactRequest, ...]

    def request(self, check_id: str) -> FactRequest | None:
        return next((r for r in self.requests if r.check.id == check_id), None)


T = TypeVar("T")


class Fact(Generic[T]):
    """Something several checks read from a target, such as a catalog snapshot or a keyspace scan.

    A check lists the facts it reads in `needs` and gets one with `await self.fact(F, session,
    scope)`; the runner computes each fact once per target and run, however many checks ask,
    and drops it when the run ends (nothing is cached across runs).
    """

    id: ClassVar[str]
    engine: ClassVar[Engine]
    description: ClassVar[str]
    Options: ClassVar[type[FactOptions]] = FactOptions

    async def compute(self, session: Any, context: FactContext) -> T:
        raise NotImplementedError


class FactStore:
    """The facts of one target in one run: each computed at most once, shared by its readers.

    A computation outlives a reader that is cancelled (a check's timeout); `close` cancels what
    is left when the target's run ends. A Scope built without a runner (tests) gets a store of
    its own, in which the asking check is the only request.
    """

    def __init__(self, requests: Mapping[str, tuple[FactRequest, ...]] | None = None) -> None:
        self._requests = dict(requests or {})
        self._tasks: dict[str, asyncio.Future[Any]] = {}

    async def get(self, fact: type[Fact[T]], session: Any, scope: Scope, requester: type[Check]) -> T:
        task = self._tasks.get(fact.id)
        if task is None:
            requests = self._requests.get(fact.id) or (FactRequest(requester, scope.options),)
            context = FactContext(
                target=scope.target,
                config=scope.config,
                status=scope.status,
                options=resolve_fact_options(fact, scope.target, scope.config),
                requests=requests,
            )
            task = asyncio.ensure_future(fact().compute(session, context))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
            self._tasks[fact.id] = task
        return await asyncio.shield(task)

    def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()


@dataclass(frozen=True)
class Scope:
    """What `evaluate` may know besides the gathered facts: pure data, no I/O. `facts` is for
    `gather` only (through Check.fact)."""

    target: str
    config: TargetBase
    options: Any
    status: TargetStatus
    facts: FactStore = field(default_factory=FactStore, compare=False, repr=False)
    # The fix journal (settings.journal, or the default): a check may read it in `gather` to say
    # which dbvitals fix left what it finds (an interrupted index build's INVALID index).
    journal: Path | None = None


class Check:
    """A check: metadata as class attributes, `gather` for I/O, `evaluate` for judgement.

    `gather(session, scope)` reads the database (never writes) and returns typed facts;
    `evaluate(facts, scope)` is pure and returns findings. Tests drive `evaluate` with plain
    data and `run` against real servers.
    """

    id: ClassVar[str]
    engine: ClassVar[Engine]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    rationale: ClassVar[str]
    fix_availability: ClassVar[FixAvailability] = FixAvailability.NEVER
    # Only connection checks run against a target that could not be reached.
    runs_when_unreachable: ClassVar[bool] = False
    # Connection and pool checks still run (on the one session open) on a server nearly out of slots.
    runs_when_server_full: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = CheckOptions
    # Shared facts this check reads (see Fact); the runner computes each once per target and run.
    needs: ClassVar[tuple[type[Fact[Any]], ...]] = ()

    async def gather(self, session: Any, scope: Scope) -> Any:
        raise NotImplementedError

    def evaluate(self, facts: Any, scope: Scope) -> list[Finding]:
        raise NotImplementedError

    async def run(self, session: Any, scope: Scope) -> list[Finding]:
        facts = await self.gather(session, scope)
        # Off the event loop: judging ten thousand objects takes seconds, and meanwhile the other
        # checks' replies must still be read (a server blocked on a full socket hits statement_timeout).
        return await asyncio.to_thread(self.evaluate, facts, scope)

    async def fact(self, fact: type[Fact[T]], session: Any, scope: Scope) -> T:
        """A shared fact this check declared in `needs`, computed once for the target and run."""
        if fact not in type(self).needs:
            raise LookupError(f"{self.id} reads the fact {fact.id} without declaring it in `needs`")
        return await scope.facts.get(fact, session, scope, type(self))

    def finding(
        self,
        scope: Scope,
        *,
        object: str,
        title: str,
        message: str,
        evidence: dict[str, Any] | None = None,
        severity: Severity | None = None,
        fix: Fix | None = None,
        key: str = "",
    ) -> Finding:
        """A finding of this check; `key` tells apart several findings on one object."""
        return Finding(
            id=finding_id(self.id, scope.target, object, key),
            check=self.id,
            severity=severity or self.severity,
            target=scope.target,
            object=object,
            title=title,
            message=message,
            evidence=evidence or {},
            fix=fix,
        )

    @classmethod
    def catalog_entry(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "engine": cls.engine.value,
            "severity": cls.severity.value,
            "title": cls.title,
            "rationale": cls.rationale,
            "fix": cls.fix_availability.value,
            "needs": [f.id for f in cls.needs],
            "options": {
                name: {"default": _jsonable(f.default), "description": f.description}
                for name, f in cls.Options.model_fields.items()
                if name != "enabled"
            },
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


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


def resolve_options(check: type[Check], target_name: str, target: TargetBase) -> CheckOptions:
    return _validated_options(check.Options, target.checks.get(check.id, {}), f'targets.{target_name}.checks."{check.id}"')


def resolve_fact_options(fact: type[Fact[Any]], target_name: str, target: TargetBase) -> FactOptions:
    return _validated_options(fact.Options, target.facts.get(fact.id, {}), f'targets.{target_name}.facts."{fact.id}"')


def _validated_options(options: Any, raw: dict[str, Any], where: str) -> Any:
    """`options(**raw)`; a problem is one ConfigError naming `where` and every bad key."""
    try:
        return options(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(table)'}: "
            + (
                f"unknown option (expected one of: {', '.join(options.model_fields)})"
                if e["type"] == "extra_forbidden"
                else e["msg"].removeprefix("Value error, ")
            )
            for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


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
            if check.engine.value != target.kind:  # type: ignore[attr-defined]
                raise ConfigError(
                    f'targets.{name}.checks."{check_id}": a {check.engine.value} check on a {target.kind} target'  # type: ignore[attr-defined]
                )
            resolve_options(check, name, target)
        facts = registry.facts()
        for fact_id in target.facts:
            fact = facts.get(fact_id)
            if fact is None:
                known = ", ".join(sorted(facts)) or "none"
                raise ConfigError(f'targets.{name}.facts."{fact_id}": no such fact (known: {known})')
            if fact.engine.value != target.kind:  # type: ignore[attr-defined]
                raise ConfigError(
                    f'targets.{name}.facts."{fact_id}": a {fact.engine.value} fact on a {target.kind} target'  # type: ignore[attr-defined]
                )
            resolve_fact_options(fact, name, target)


@dataclass(frozen=True)
class CheckResult:
    target: str
    check: str
    findings: list[Finding]
    error: CheckError | None
    duration_ms: float

    def summary(self) -> dict[str, Any]:
        outcome = self.error.kind if self.error else ("findings" if self.findings else "ok")
        return {
            "target": self.target,
            "check": self.check,
            "outcome": outcome,
            "findings": len(self.findings),
            "duration_ms": round(self.duration_ms, 1),
        }


TargetCallback = Callable[[TargetStatus], Awaitable[None] | None]
ResultCallback = Callable[[CheckResult], Awaitable[None] | None]


async def _notify(callback: Callable[[Any], Any] | None, value: Any) -> None:
    if callback is None:
        return
    outcome = callback(value)
    if asyncio.iscoroutine(outcome):
        await outcome


def select_targets(settings: Settings, names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(settings.targets)
    unknown = [n for n in names if n not in settings.targets]
    if unknown:
        known = ", ".join(settings.targets) or "none configured"
        raise UsageError(f"unknown target {', '.join(unknown)} (configured: {known})")
    return list(dict.fromkeys(names))


class KeptConnections:
    """Check connections kept open from one run to the next: a fix's find, re-check and verify
    use one connection per target. Each run sees it afresh (the adapter's `refresh`: a session of
    a new identity, what it read at connect read again), so nothing one run learnt leaks into the
    next; one that no longer answers is replaced by a new connection."""

    def __init__(self) -> None:
        self._held: dict[str, Any] = {}

    async def reuse(self, name: str, target: TargetBase) -> Any | None:
        from checks.adapters import adapter_for

        held = self._held.pop(name, None)
        if held is None:
            return None
        try:
            fresh = await asyncio.wait_for(adapter_for(target.kind).refresh(held), target.timeout)  # type: ignore[attr-defined]
        except Exception:  # dropped meanwhile (a fix may restart a server): connect anew
            await held.close()
            return None
        self._held[name] = fresh
        return fresh

    def keep(self, name: str, connection: Any) -> None:
        if connection.session is not None:
            self._held[name] = connection

    def holds(self, connection: Any) -> bool:
        return any(held is connection for held in self._held.values())

    async def close(self) -> None:
        held, self._held = list(self._held.values()), {}
        for connection in held:
            await connection.close()


class Runner:
    """Runs the selected checks on the selected targets, all concurrently, within each server's
    session budget (checks.budget).

    Each check runs under its own timeout; one that raises or times out becomes a CheckError
    and the others go on. A target that cannot be reached yields its connection finding
    and nothing else. Pass `budgets` to share server budgets between runs (the console does).
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        targets: Sequence[str] | None = None,
        checks: Sequence[str] | None = None,
        on_target: TargetCallback | None = None,
        on_result: ResultCallback | None = None,
        budgets: ServerBudgets | None = None,
        kept: KeptConnections | None = None,
    ) -> None:
        self.settings = settings
        self.kept = kept
        from checks.actions.journal import Journal

        self._journal = Journal.for_settings(settings).path
        self.registry = registry
        self.target_names = select_targets(settings, targets)
        self.selected = registry.select(checks)
        self.on_target = on_target
        self.on_result = on_result
        self.budgets = budgets if budgets is not None else ServerBudgets()
        validate_check_options(settings, registry)

    async def run(self) -> Report:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(self.run_target(name) for name in self.target_names))
        statuses = [status for status, _ in outcomes]
        results = [r for _, target_results in outcomes for r in target_results]
        findings = sort_findings(f for r in results for f in r.findings)
        errors = [r.error for r in results if r.error is not None]
        return Report(
            targets=statuses,
            findings=findings,
            errors=errors,
            duration_ms=(time.perf_counter() - started) * 1000,
            checks=[r.summary() for r in results],
        )

    async def run_target(self, name: str) -> tuple[TargetStatus, list[CheckResult]]:
        target = self.settings.targets[name]
        engine = Engine(target.kind)  # type: ignore[attr-defined]
        checks = [c for c in self.selected if c.engine is engine]
        enabled = [(c, opts) for c in checks if (opts := resolve_options(c, name, target)).enabled]
        budget = self.budgets.for_target(name, self.settings)
        guard = self.budgets.guard(budget.server)
        async with budget:
            first = not guard.claimed
            guard.claimed = True
            if not first:
                assert guard.decided is not None
                await guard.decided.wait()  # no second session before the first has read the free slots
                if guard.full:
                    return await self._skip_target(name, target, guard, budget.server)
            connection = await self._connect(name, target)
            try:
                if first:
                    try:
                        if connection.status.reachable:
                            await self._read_free_slots(engine, connection.session, target, guard)
                    finally:
                        guard.decide()
                await _notify(self.on_target, connection.status)
                runnable = [
                    (c, o) for c, o in enabled if connection.status.reachable or c.runs_when_unreachable
                ]
                if guard.full:
                    runnable = [(c, o) for c, o in runnable if c.runs_when_server_full]
                facts = FactStore(_fact_requests(runnable))
                try:
                    results = list(await asyncio.gather(
                        *(self._run_one(check, options, name, target, connection, facts)
                          for check, options in runnable)
                    ))
                finally:
                    facts.close()
                if guard.full:
                    ran = {c.id for c, _ in runnable}
                    skipped = [c.id for c, _ in enabled if c.id not in ran]
                    results = await self._report_skip(name, target, guard, budget.server, skipped, results,
                                                       connection.status)
            finally:
                if self.kept is None or not self.kept.holds(connection):
                    await connection.close()
        return connection.status, results

    async def _connect(self, name: str, target: TargetBase) -> Any:
        from checks.connectors import connect, failed

        if self.kept is not None:
            again = await self.kept.reuse(name, target)
            if again is not None:
                return again
        try:
            # Drivers bound their own connects; this guards against one that does not.
            connection = await asyncio.wait_for(connect(name, target), target.timeout * 2 + 2)
        except TimeoutError as exc:
            connection = failed(name, target, exc)
        if self.kept is not None:
            self.kept.keep(name, connection)
        return connection

    async def _read_free_slots(self, engine: Engine, session: Any, target: TargetBase, guard: ServerGuard) -> None:
        from checks.adapters import adapter_for

        try:
            slots = await asyncio.wait_for(adapter_for(engine).free_slots(session), target.timeout)
        except Exception as exc:  # unknown is not full: the pool check reports what it can read
            slots = FreeSlots(None, None, f"could not be read: {type(exc).__name__}")
        guard.slots = slots
        if slots.usable is not None:
            guard.floor = floor_for(slots.usable, self.settings)

    def _skip_finding(self, name: str, target: TargetBase, guard: ServerGuard, server: str,
                      skipped: list[str], ran_here: bool) -> Finding:
        slots = guard.slots
        assert slots is not None and slots.free is not None
        check_id = f"{target.kind}.connection"  # type: ignore[attr-defined]
        where = ("ran only the connection and pool checks on the one session it had open"
                 if ran_here else "did not connect to this target")
        return Finding(
            id=finding_id(check_id, name, server, "server-guard"),
            check=check_id,
            severity=Severity.HIGH,
            target=name,
            object=server,
            title="Checks skipped: the server is nearly out of connection slots",
            message=f"{server} has {slots.free} of {slots.usable} connection slots free, below the floor of "
            f"{guard.floor}; dbvitals {where} and skipped the rest so as not to take the last slots. Close idle "
            "connections or shrink the application's pools (or raise the server's limit), then check again.",
            evidence={
                "server": server,
                "usable": slots.usable,
                "in_use": slots.in_use,
                "free": slots.free,
                "floor": guard.floor,
                "floor_rule": f"the larger of free_slots_floor ({self.settings.free_slots_floor}) and "
                f"free_slots_floor_percent ({self.settings.free_slots_floor_percent:g} %) of usable",
                "source": slots.source,
                "skipped_checks": skipped,
            },
        )

    async def _report_skip(self, name: str, target: TargetBase, guard: ServerGuard, server: str,
                           skipped: list[str], results: list[CheckResult], status: TargetStatus) -> list[CheckResult]:
        finding = self._skip_finding(name, target, guard, server, skipped, ran_here=True)
        for i, result in enumerate(results):
            if result.check == finding.check:  # folded into the connection check's result
                results[i] = CheckResult(name, result.check, [*result.findings, finding], result.error,
                                         result.duration_ms)
                await _notify(self.on_result, results[i])
                return results
        extra = CheckResult(name, finding.check, [finding], None, 0.0)
        await _notify(self.on_result, extra)
        return [*results, extra]

    async def _skip_target(self, name: str, target: TargetBase, guard: ServerGuard,
                           server: str) -> tuple[TargetStatus, list[CheckResult]]:
        engine = Engine(target.kind)  # type: ignore[attr-defined]
        status = TargetStatus(
            name=name,
            kind=engine,
            state=TargetState.SKIPPED,
            error="not checked: its server is nearly out of connection slots",
            environment=target.environment,
            url=target.masked_url,
        )
        await _notify(self.on_target, status)
        skipped = [c.id for c in self.selected if c.engine is engine and resolve_options(c, name, target).enabled]
        finding = self._skip_finding(name, target, guard, server, skipped, ran_here=False)
        result = CheckResult(name, finding.check, [finding], None, 0.0)
        await _notify(self.on_result, result)
        return status, [result]

    async def _run_one(
        self, check_cls: type[Check], options: CheckOptions, name: str, target: TargetBase, connection: Any,
        facts: FactStore | None = None,
    ) -> CheckResult:
        scope = Scope(target=name, config=target, options=options, status=connection.status,
                      facts=facts if facts is not None else FactStore(), journal=self._journal)
        started = time.perf_counter()
        error: CheckError | None = None
        findings: list[Finding] = []
        try:
            findings = await asyncio.wait_for(check_cls().run(connection.session, scope), target.check_timeout)
        except TimeoutError:
            error = CheckError(check_cls.id, name, "timeout", f"did not finish within {target.check_timeout:g}s")
        except Exception as exc:  # a failing check is reported, and the others go on
            message = mask_text(f"{type(exc).__name__}: {exc}", target.secret_values())
            error = CheckError(check_cls.id, name, "error", message[:1000])
        result = CheckResult(name, check_cls.id, findings, error, (time.perf_counter() - started) * 1000)
        await _notify(self.on_result, result)
        return result


def _fact_requests(runnable: Iterable[tuple[type[Check], CheckOptions]]) -> dict[str, tuple[FactRequest, ...]]:
    """Which checks of this target's run declared each fact."""
    requests: dict[str, list[FactRequest]] = {}
    for check, options in runnable:
        for fact in check.needs:
            requests.setdefault(fact.id, []).append(FactRequest(check, options))
    return {fact_id: tuple(r) for fact_id, r in requests.items()}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.target, f.check, f.object))

