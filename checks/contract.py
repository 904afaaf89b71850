"""What a check is: Check and its options, the shared facts it reads (Fact), and the Scope it
judges in. Engines and plugins build on this module; the registry finds them, the runner runs them."""

from __future__ import annotations

import asyncio
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from checks.config import ConfigError, TargetBase
from checks.model import Engine, Finding, Fix, FixAvailability, Severity, Skipped, TargetStatus, finding_id


class StrictNumbers(BaseModel):
    """Options whose numbers are TOML numbers, as the target keys are (checks.config): min_bytes =
    "5" is a typo to report, not a 5 to guess, and true is not a 1."""

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _holds_a_number(field.annotation):
            return value
        if isinstance(value, str):
            raise ValueError(f"expected a number, got the string {value!r} (write it without quotes)")
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


def _holds_a_number(annotation: Any) -> bool:
    """int or float, or either or None: a field with nothing but a number to hold."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    held = set(typing.get_args(annotation) if union else (annotation,)) - {type(None)}
    held = {typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Annotated else kind for kind in held}
    return bool(held) and held <= {int, float}


class CheckOptions(StrictNumbers):
    """Per-target options of a check: `[targets.NAME.checks."<check id>"]`. Subclass to add
    thresholds; every field needs a default and a description (config.example.toml shows them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(default=True, description="Run this check on this target.")


class FactOptions(StrictNumbers):
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
    # What this run of the check did not examine (see `skipped`); the runner reads it after the run.
    cut_short: list[Skipped] = field(default_factory=list, compare=False, repr=False)

    def skipped(self, what: str, why: str) -> None:
        """Say that the check's work was cut short: `what` was not examined, `why` (a time budget
        ran out, a sample cut-off was reached). The check's outcome becomes `partial` (its findings
        still count) and the gate fails on it unless --allow-partial: a check that did not look
        does not pass. May be called from `gather` or `evaluate`."""
        self.cut_short.append(Skipped(what, why))


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
            "engine": cls.engine,
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
