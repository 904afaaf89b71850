"""The registered engines: one adapter object per engine, everything the generic code needs to
know about it.

The config, the runner, the fix pipeline, the console, the scripts and the reports ask an
engine's adapter for its target model, to connect, run fix steps, render a step as text,
measure connections, and for the engines that need them, make a batch step's inverse concrete
and resume an interrupted run. None of them branches on the engine. An engine is a package
that registers its adapter under the `dbvitals.engines` entry point group (README, "Writing an
engine"); the built-in ones register exactly so.

Adapter modules import their drivers lazily, inside the methods that use them: loading an
adapter to render a step or list the catalog must stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from checks.model import FixStep

SideFile = Callable[[str], Path]  # a journal side file by name

if TYPE_CHECKING:
    from checks.activity import EngineActivity
    from checks.budget import FreeSlots
    from checks.config import TargetBase
    from checks.connectors import Connection
    from checks.fixes.execution import Execution
    from checks.snapshots import FiguresReader

ENTRY_POINT_GROUP = "dbvitals.engines"


@dataclass
class UndoCheck:
    """What an engine found on the server before an undo: the inverse steps still to run (an
    unfinished entry's may be fewer: what it did not get to do has nothing to undo), the reasons
    to refuse (an object that is no longer what dbvitals left), and notes for the user."""

    steps: list[Any]
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def not_as_left(self, finished: bool, refusal: str, note: str) -> None:
        """An object is not as the step's fix would have left it: a finished entry's undo refuses
        (someone changed it since); an unfinished entry's only notes that the fix did not get there."""
        if finished:
            self.refusals.append(refusal)
        else:
            self.notes.append(note)


class EngineAdapter:
    """What an engine provides. Subclasses set the class attributes and the abstract methods;
    the batch-inverse and resume hooks default to "this engine has none"."""

    kind: ClassVar[str]  # the targets' `kind` in the config, and the engine of its checks
    target_model: ClassVar[type[TargetBase]]  # the config model of a target, `kind: Literal[...]`
    url_schemes: ClassVar[tuple[str, ...]] = ()  # what a target URL of this engine starts with
    language: ClassVar[str]  # FixStep.language of this engine's steps
    comment: ClassVar[str]  # a line comment in the engine's script language
    lexer: ClassVar[str]  # a Pygments lexer name for the rendered steps
    fence: ClassVar[str]  # a Markdown code-fence language for the rendered steps
    # Modules of the engine's package, set on the class (a module is not a ClassVar mypy accepts).
    activity: EngineActivity  # reads what runs now
    figures: FiguresReader  # reads the figures a snapshot keeps
    script_interpreter: ClassVar[tuple[str, ...]] = ()  # a migration script's "#!" line, if it is a program

    display_name: ClassVar[str]  # the engine's name in messages: "PostgreSQL"
    default_port: ClassVar[int | None] = None  # None: no network server (a file)
    greeting_header: ClassVar[int] = 0  # a reply shorter than this is read on once (a header cut short)

    # --- sessions ------------------------------------------------------------------------------
    async def connect(self, name: str, target: TargetBase) -> Connection:
        """A read-only session for checks; a failure is a Connection with a state, never a raise."""
        raise NotImplementedError

    async def list_databases(self, session: Any) -> list[str]:
        """The databases on the session's server a target could name (for `databases = "*"`)."""
        raise NotImplementedError

    def database_url(self, url: str, database: str) -> str:
        """The URL with its database replaced, for a target discovered by `databases`: the URL's
        path, unless the engine's URLs say their database elsewhere too."""
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database, safe=""), parts.query, parts.fragment))

    async def refresh(self, connection: Connection) -> Connection:
        """The same connection for another run of checks: a session object of its own (what
        checks memoise per session starts afresh), with what it read at connect read again.
        Raises if the connection no longer answers."""
        raise NotImplementedError

    def wants_tls(self, url: str) -> bool:
        """Whether the target URL asks for TLS."""
        raise NotImplementedError

    def socket_name(self, number: int) -> str:
        """The file name of the number-th Unix socket an SSH tunnel forwards to this engine."""
        return f"{number}.sock"

    def socket_url(self, url: str, path: Path) -> str | None:
        """The URL with its host and port replaced by the Unix socket at `path`, as the driver
        spells one; None when the driver would, or might, speak TLS (it needs TCP then: the
        tunnel's loopback relay carries it). When in doubt, None."""
        return None

    def greeting(self) -> tuple[bytes, int]:
        """A plain first message in the engine's protocol, and the request id its reply carries
        (checks.connectors.probe tells a wrong port or a missing TLS from a timeout with it)."""
        raise NotImplementedError

    def judge_greeting(self, reply: bytes, request_id: int) -> Literal["speaks", "other"]:
        """Whether the first bytes back (never empty) are this engine's plain protocol."""
        raise NotImplementedError

    def server_key(self, target: TargetBase) -> str | None:
        """The server a target's sessions land on, for the session budget (checks.budget), when
        the URL's hosts and ports do not say it (a database file); None: from the URL."""
        return None

    async def measure_connections(self, session: Any) -> tuple[int | None, int | None]:
        """(connections in use, connections the server allows), either None when unknown."""
        raise NotImplementedError

    async def free_slots(self, session: Any) -> FreeSlots:
        """What the server behind a check session has left for new clients (checks.budget)."""
        raise NotImplementedError

    # --- fixes ---------------------------------------------------------------------------------
    async def execute(self, run: Execution, steps: Sequence[FixStep]) -> None:
        """Run the steps on run.target with a read-write session of its own; raise StepFailed."""
        raise NotImplementedError

    def step_text(self, step: FixStep) -> str:
        """One step as it would be typed into the engine's own shell."""
        raise NotImplementedError

    def step_lock(self, step: FixStep) -> str | None:
        """The lock one step takes, or its impact, in words a DBA recognises; None when unknown.
        An undo states the locks of its own steps, not those of the fix it reverses."""
        return None

    def script_preamble(self, connect_url: str | None = None) -> list[str]:
        """The lines a migration script starts with: how to run it, and its session limits
        (`connect_url`: the target's, for a script that connects by itself; never its password)."""
        return []

    def script_steps(self, steps: Sequence[FixStep]) -> list[str]:
        """The steps as lines of a migration script."""
        return [line for step in steps for line in self.step_text(step).splitlines()]

    def concrete_inverse(self, steps: Sequence[FixStep], inverse: Sequence[FixStep], entry_id: str) -> list[FixStep]:
        """The inverse journaled for an entry: a batch step's inverse may only be known per entry
        (the Redis keys an expire step records)."""
        return list(inverse)

    def expected_text(self, record: dict[str, Any]) -> str:
        """One object an undo's guard expects to find as the fix left it (a journal `expect`
        record of this engine's executor), in words."""
        return str(record)

    def resumable(self, steps: Sequence[FixStep]) -> bool:
        """Whether an interrupted run of these steps can resume where it stopped."""
        return False

    def resume_points(self, side_file: SideFile, interrupted_entry: str, steps: Sequence[FixStep]) -> dict[int, Any]:
        """Per step index, where the interrupted entry's run stopped (`side_file(name)` -> Path)."""
        return {}

    def has_undo_record(self, side_file: SideFile, step: FixStep) -> bool:
        """Whether an inverse step refers to data recorded beside the journal that exists."""
        return False

    # --- undo guards (checks/fixes/__init__.py: undo only undoes what dbvitals did) --------------
    async def record_state(self, run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
        """What the applied steps (the first run.steps_done) left on the server, journaled as the
        entry's `expect` for the undo's guard (an index's OID and definition, a setting's value)."""
        return []

    def inspects(self, steps: Sequence[FixStep]) -> bool:
        """Whether `guard_undo` can tell from the server what these inverse steps would undo, so
        an entry whose process died before recording a step can still be undone."""
        return False

    async def guard_undo(self, target: TargetBase, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
        """The inverse steps still to run, with refusals when an object is no longer what the fix
        left. Without a guard: every step, unless the entry applied none."""
        if entry.outcome not in ("fixed", "not_fixed") and entry.steps_done == 0:
            return UndoCheck(steps=[], notes=[f"entry {entry.id} applied no step: nothing to undo"])
        return UndoCheck(steps=list(inverse))

    def interruptible_builds(self, steps: Sequence[FixStep]) -> list[str]:
        """Names of what these steps build that an interrupted run leaves half-built (an INVALID
        index): a rerun of a fix may replace those of an unfinished journal entry, and no others."""
        return []


class ModuleAdapter(EngineAdapter):
    """An engine whose sessions come from a connector module (`connect`, `free_slots`) and whose
    fix steps and undo guards live in a fixes module (`execute`, `record_state`, `inspects`,
    `guard_undo`). The adapter imports its connector inside `_connector`, on first use: the
    connector imports the driver, and loading the adapter must stay cheap."""

    def _connector(self) -> Any:
        """The engine's connector module (checks.<engine>.connector)."""
        raise NotImplementedError

    def _fixes(self) -> Any:
        """The engine's fixes module (checks.<engine>.executor)."""
        raise NotImplementedError

    async def connect(self, name: str, target: TargetBase) -> Connection:
        return await self._connector().connect(name, target)

    async def free_slots(self, session: Any) -> FreeSlots:
        return await self._connector().free_slots(session)

    async def execute(self, run: Execution, steps: Sequence[FixStep]) -> None:
        await self._fixes().execute(run, steps)

    async def record_state(self, run: Execution, steps: Sequence[FixStep]) -> list[dict[str, Any]]:
        return await self._fixes().record_state(run, steps)

    def inspects(self, steps: Sequence[FixStep]) -> bool:
        return self._fixes().inspects(steps)

    async def guard_undo(self, target: TargetBase, entry: Any, inverse: Sequence[FixStep]) -> UndoCheck:
        return await self._fixes().guard_undo(target, entry, inverse)


@cache
def engines() -> dict[str, EngineAdapter]:
    """Every engine registered under `dbvitals.engines`, by kind. An entry point names an
    EngineAdapter instance or class, under the engine's kind; one that fails to load or is not
    an adapter is left out and said in `engine_problems()`, and the others still load."""
    found: dict[str, EngineAdapter] = {}
    _problems.clear()
    for point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        source = f"engine {point.name} = {point.value}"
        try:
            loaded = point.load()
        except Exception as exc:  # a broken third-party engine must not take the tool down
            _problems.append(f"{source} failed to load: {type(exc).__name__}: {exc}")
            continue
        adapter = loaded() if isinstance(loaded, type) and issubclass(loaded, EngineAdapter) else loaded
        if not isinstance(adapter, EngineAdapter):
            _problems.append(f"{source}: {loaded!r} is not a dbvitals EngineAdapter")
        elif getattr(adapter, "kind", None) != point.name or not hasattr(adapter, "target_model"):
            _problems.append(f"{source}: the adapter's kind must be {point.name!r} and it needs a target_model")
        elif point.name in found:
            _problems.append(f"{source}: engine {point.name} is already registered by {type(found[point.name])!r}")
        else:
            found[point.name] = adapter
    return found


_problems: list[str] = []


def engine_problems() -> list[str]:
    """Engines that were registered but could not be loaded, phrased for the user."""
    engines()
    return list(_problems)


def adapter_for(kind: str) -> EngineAdapter:
    """The adapter of an engine, by kind (a target's `kind`, a check's `engine`)."""
    adapter = engines().get(str(kind))
    if adapter is None:
        raise LookupError(f"no adapter for engine {str(kind)!r} (known: {', '.join(engines())})")
    return adapter


@cache
def adapter_for_language(language: str) -> EngineAdapter:
    for adapter in engines().values():
        if adapter.language == language:
            return adapter
    raise LookupError(f"no adapter renders fix steps in {language!r}")


def forget_adapters() -> None:
    """Read the registered engines again (tests that install one)."""
    engines.cache_clear()
    adapter_for_language.cache_clear()


def step_text(step: FixStep) -> str:
    """The one rendering of a fix step, shared by the CLI preview, the console, `--script`,
    the history and the Markdown report."""
    return adapter_for_language(step.language).step_text(step)


def steps_lock(steps: Sequence[FixStep]) -> str | None:
    """The locks a sequence of steps takes, each said once, in order; None when none is known."""
    said: list[str] = []
    for step in steps:
        lock = adapter_for_language(step.language).step_lock(step)
        if lock and lock not in said:
            said.append(lock)
    return "; then ".join(said) or None
