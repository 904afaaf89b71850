"""The concurrent runner: the selected checks on the selected targets, inside each server's
session budget, with a timeout per check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from checks.actions.journal import Journal
from checks.budget import ServerBudgets, ServerGuard
from checks.config import Settings, TargetBase
from checks.connectors import connect
from checks.contract import Check, CheckOptions, FactRequest, FactStore, Scope, resolve_options
from checks.engines import adapter_for
from checks.model import CheckError, Finding, Report, Severity, Skipped, TargetState, TargetStatus, finding_id
from checks.registry import Registry, UsageError, validate_check_options
from checks.secrets import mask_text


@dataclass(frozen=True)
class CheckResult:
    target: str
    check: str
    findings: list[Finding]
    error: CheckError | None
    duration_ms: float
    # What the check did not examine (Scope.skipped): a budget or a sample cut-off stopped it.
    skipped: tuple[Skipped, ...] = ()

    @property
    def outcome(self) -> str:
        if self.error:
            return self.error.kind
        if self.skipped:
            return "partial"
        return "findings" if self.findings else "ok"

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "target": self.target,
            "check": self.check,
            "outcome": self.outcome,
            "findings": len(self.findings),
            "duration_ms": round(self.duration_ms, 1),
        }
        if self.skipped and not self.error:
            row["skipped"] = [s.to_dict() for s in self.skipped]
        return row


# What a callback returns is awaited when it is a coroutine and otherwise ignored.
TargetCallback = Callable[[TargetStatus], Awaitable[None] | object]
ResultCallback = Callable[[CheckResult], Awaitable[None] | object]


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
    next; one that no longer answers is replaced by a new connection.

    Kept connections count against their server's budget: before a run opens a new session on a
    server, idle kept connections of other targets there are closed until the sessions open,
    opening and closing on it leave room for it (a fix looked up across fifty targets of one
    server holds at most max_sessions_per_server sessions there, not one per target)."""

    def __init__(self) -> None:
        self._held: dict[str, Any] = {}
        self._server: dict[str, str] = {}  # target -> server_key, for what is held
        self._busy: set[str] = set()  # targets whose run uses its connection now
        self._opening: dict[str, int] = {}  # server -> sessions being opened
        self._closing: dict[str, int] = {}  # server -> evicted sessions not closed yet
        self._changed = asyncio.Condition()

    async def reuse(self, name: str, target: TargetBase) -> Any | None:
        held = self._held.get(name)
        if held is None:
            return None
        self._busy.add(name)  # counted on its server while refreshed, and never evicted meanwhile
        try:
            fresh = await asyncio.wait_for(adapter_for(target.kind).refresh(held), target.call_deadline)
        except Exception:  # dropped meanwhile (a fix may restart a server): connect anew
            self._held.pop(name, None)
            self._server.pop(name, None)
            await held.close()
            return None
        self._held[name] = fresh
        return fresh

    async def make_room(self, name: str, server: str, limit: int) -> None:
        """Wait until a new session of `name` fits in `server`'s budget of `limit` sessions,
        closing idle kept connections of other targets there; the room is taken (call opened)."""
        async with self._changed:
            while True:
                on_server = sum(1 for t, s in self._server.items() if s == server and t in self._held)
                used = on_server + self._opening.get(server, 0) + self._closing.get(server, 0)
                if used < limit:
                    self._opening[server] = self._opening.get(server, 0) + 1
                    self._busy.add(name)
                    return
                idle = next((t for t, s in self._server.items()
                             if s == server and t in self._held and t not in self._busy and t != name), None)
                if idle is None:
                    await self._changed.wait()
                    continue
                evicted = self._held.pop(idle)
                self._server.pop(idle, None)
                self._closing[server] = self._closing.get(server, 0) + 1
                try:
                    await evicted.close()
                finally:
                    self._closing[server] -= 1
                    self._changed.notify_all()

    async def opened(self, name: str, server: str, connection: Any) -> None:
        """The session make_room made room for is open (or failed): keep it when it answered."""
        async with self._changed:
            self._opening[server] -= 1
            if connection.session is not None:
                self._held[name] = connection
                self._server[name] = server
            self._changed.notify_all()

    async def done(self, name: str) -> None:
        """The run of `name` no longer uses its connection: it may be closed to make room."""
        async with self._changed:
            self._busy.discard(name)
            self._changed.notify_all()

    def keep(self, name: str, connection: Any, server: str | None = None) -> None:
        if connection.session is not None:
            self._held[name] = connection
            if server is not None:
                self._server[name] = server

    def holds(self, connection: Any) -> bool:
        return any(held is connection for held in self._held.values())

    async def release_except(self, name: str) -> None:
        """Close every kept connection but `name`'s: once a fix knows its target, the others'
        sessions are nobody's to hold."""
        others = [t for t in self._held if t != name and t not in self._busy]
        for other in others:
            connection = self._held.pop(other)
            self._server.pop(other, None)
            await connection.close()

    async def close(self) -> None:
        held, self._held = list(self._held.values()), {}
        self._server.clear()
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
        engine = target.kind
        checks = [c for c in self.selected if c.engine == engine]
        enabled = [(c, opts) for c in checks if (opts := resolve_options(c, name, target)).enabled]
        budget = self.budgets.for_target(name, self.settings)
        guard = self.budgets.guard(budget.server)
        async with budget:
            first = await guard.take_turn()
            if not first and guard.full:
                return await self._skip_target(name, target, guard, budget.server)
            connection = await self._connect(name, target, budget.server, budget.limit)
            try:
                if first:
                    try:
                        if connection.status.reachable:
                            await guard.read_free_slots(adapter_for(engine).free_slots(connection.session),
                                                        target.call_deadline, self.settings)
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
                if self.kept is not None:
                    await self.kept.done(name)
        return connection.status, results

    async def _connect(self, name: str, target: TargetBase, server: str, limit: int) -> Any:
        if self.kept is not None:
            again = await self.kept.reuse(name, target)
            if again is not None:
                return again
            await self.kept.make_room(name, server, limit)
        connection = None
        try:
            connection = await connect(name, target)
        finally:
            if self.kept is not None:
                await self.kept.opened(name, server, connection if connection is not None else _NOT_OPENED)
        return connection

    def _skip_finding(self, name: str, target: TargetBase, guard: ServerGuard, server: str,
                      skipped: list[str], ran_here: bool) -> Finding:
        slots = guard.slots
        assert slots is not None and slots.free is not None
        check_id = f"{target.kind}.connection"
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
                                         result.duration_ms, result.skipped)
                await _notify(self.on_result, results[i])
                return results
        extra = CheckResult(name, finding.check, [finding], None, 0.0)
        await _notify(self.on_result, extra)
        return [*results, extra]

    async def _skip_target(self, name: str, target: TargetBase, guard: ServerGuard,
                           server: str) -> tuple[TargetStatus, list[CheckResult]]:
        engine = target.kind
        status = TargetStatus(
            name=name,
            kind=engine,
            state=TargetState.SKIPPED,
            error="not checked: its server is nearly out of connection slots",
            environment=target.environment,
            url=target.masked_url,
        )
        await _notify(self.on_target, status)
        skipped = [c.id for c in self.selected if c.engine == engine and resolve_options(c, name, target).enabled]
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
        result = CheckResult(name, check_cls.id, findings, error, (time.perf_counter() - started) * 1000,
                             tuple(scope.cut_short))
        await _notify(self.on_result, result)
        return result


class _NotOpened:
    session = None


_NOT_OPENED = _NotOpened()


def _fact_requests(runnable: Iterable[tuple[type[Check], CheckOptions]]) -> dict[str, tuple[FactRequest, ...]]:
    """Which checks of this target's run declared each fact."""
    requests: dict[str, list[FactRequest]] = {}
    for check, options in runnable:
        for fact in check.needs:
            requests.setdefault(fact.id, []).append(FactRequest(check, options))
    return {fact_id: tuple(r) for fact_id, r in requests.items()}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.target, f.check, f.object))

