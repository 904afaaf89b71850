"""Contracts the whole code base keeps: import boundaries, a fast --help, complete check metadata."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from checks.contract import Check, CheckOptions
from checks.registry import load_registry
from checks.engines import engines
from checks.model import FixAvailability, Severity

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CHECKS = {"textual", "console"}
DRIVERS = {"asyncpg", "pymongo", "redis", "bson", "motor"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module", "__import__"
        } and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            roots.add(node.args[0].value.split(".")[0])
    return roots


CHECK_MODULES = sorted((ROOT / "checks").rglob("*.py"))


def test_the_scan_sees_the_check_modules():
    assert any(p.name == "pool.py" for p in CHECK_MODULES) and len(CHECK_MODULES) > 10


@pytest.mark.parametrize("path", CHECK_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_checks_never_import_textual_or_console(path):
    assert not (_imported_roots(path) & FORBIDDEN_IN_CHECKS), f"{path.relative_to(ROOT)} imports the UI"


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nimport json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_imports_neither_textual_nor_the_drivers():
    loaded = _modules_after(
        "from console.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "    try:\n        main(['check', '--help'])\n    except SystemExit:\n        pass"
    )
    assert not (loaded & ({"textual"} | DRIVERS)), loaded & ({"textual"} | DRIVERS)


def test_help_answers_fast_and_lists_the_commands():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "console", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0
    for command in ("check", "checks", "targets"):
        assert command in out.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not (imported & ({"textual"} | DRIVERS))


def test_loading_every_check_imports_no_ui():
    loaded = _modules_after("from checks.registry import load_registry\nload_registry()")
    assert not (loaded & {"textual", "console"})


def test_loading_every_check_imports_no_driver():
    """The catalog (`dbvitals checks`) reads metadata only: drivers load when a check runs."""
    loaded = _modules_after(
        "from checks.registry import load_registry\n"
        "registry = load_registry()\n"
        "assert len(registry.checks) > 20 and not registry.problems, registry.problems\n"
        "[check.catalog_entry() for check in registry.checks.values()]"
    )
    assert not (loaded & DRIVERS), loaded & DRIVERS


def test_the_catalog_command_imports_no_driver():
    loaded = _modules_after(
        "from console.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['checks', '--format', 'json'])"
    )
    assert not (loaded & ({"textual"} | DRIVERS)), loaded & ({"textual"} | DRIVERS)


BUILT_IN = [c for c in load_registry().checks.values() if c.__module__.startswith("checks.")]


def test_built_in_checks_are_registered_through_entry_points():
    ids = {c.id for c in BUILT_IN}
    for engine in ("postgres", "mongodb", "redis"):
        assert {f"{engine}.connection", f"{engine}.pool"} <= ids


@pytest.mark.parametrize("check", BUILT_IN, ids=lambda c: c.id)
def test_every_check_has_complete_metadata_and_documented_options(check: type[Check]):
    assert check.id.startswith(f"{check.engine}.") and check.id == check.id.lower()
    assert isinstance(check.severity, Severity) and isinstance(check.fix_availability, FixAvailability)
    assert check.title and len(check.rationale) > 60
    assert issubclass(check.Options, CheckOptions)
    for name, field in check.Options.model_fields.items():
        assert field.description, f"{check.id} option {name} has no description"
        assert not field.is_required(), f"{check.id} option {name} has no default"
    check.Options()  # the defaults themselves validate
    json.dumps(check.catalog_entry())
    for fact in check.needs:  # a shared fact is as documented as a check
        assert fact.engine == check.engine and fact.id.startswith(f"{fact.engine}.") and fact.description
        for name, field in fact.Options.model_fields.items():
            assert field.description and not field.is_required(), f"{fact.id} option {name}"
        fact.Options()


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


COMMAND_MODULES = sorted((ROOT / "console" / "commands").glob("*.py")) + [ROOT / "console" / "gate.py",
                                                                          ROOT / "console" / "runtime.py"]


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_never_import_the_cli(path):
    """console.cli imports the commands to register them; they take what they share from
    console.runtime (and console.gate, console.commands.applying), so there is no cycle."""
    assert "console.cli" not in {m for m in _imported_modules(path) if m == "console.cli" or m.startswith("console.cli.")}


# Generic code: it asks the engine's adapter (checks.engines) and never names an engine.
GENERIC_MODULES = ["checks/fixes/__init__.py", "checks/fixes/script.py", "checks/connectors/__init__.py",
                   "checks/connectors/probe.py", "console/commands/history.py",
                   "console/app.py", "console/widgets/fix_view.py", "console/formats/markdown_format.py",
                   "console/commands/applying.py"]


@pytest.mark.parametrize("relative", GENERIC_MODULES)
def test_generic_code_never_branches_on_the_engine(relative):
    path = ROOT / relative
    source = path.read_text(encoding="utf-8")
    assert not {m for m in _imported_modules(path) if m.split(".")[:2] in (["checks", k] for k in engines())}
    assert not (_imported_modules(path) & DRIVERS)
    for engine in engines():
        for spelling in (f"Engine.{engine.upper()}", f'== "{engine}"', 'language == "'):
            assert spelling not in source, f"{relative} branches on {spelling}"


def test_one_human_bytes():
    """Sizes read the same in every pack: one human_bytes, in checks.units."""
    defined, imported_elsewhere = [], []
    for path in sorted((ROOT / "checks").rglob("*.py")) + sorted((ROOT / "console").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "human_bytes":
                defined.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.ImportFrom) and any(a.name == "human_bytes" for a in node.names) \
                    and node.module != "checks.units":
                imported_elsewhere.append(f"{path.relative_to(ROOT)} imports it from {node.module}")
    assert set(defined) == {"checks/units.py"}, defined  # its @overload signatures included
    assert not imported_elsewhere, imported_elsewhere


# The snapshot store keeps its own history in an SQLite file: a storage format, not an engine.
SNAPSHOT_STORE = {"checks/snapshots/store.py", "checks/snapshots/__init__.py", "console/commands/snapshot.py"}


def test_the_core_never_names_the_example_sqlite_engine():
    """The SQLite engine lives in its own package (tests/example_engine_sqlite), registered only by
    its entry points: no file of the core knows of it."""
    named = [str(path.relative_to(ROOT)) for top in ("checks", "console") for path in sorted((ROOT / top).rglob("*"))
             if path.is_file() and path.suffix in {".py", ".tcss", ".toml"}
             and "sqlite" in path.read_text(encoding="utf-8").lower()]
    assert set(named) <= SNAPSHOT_STORE, set(named) - SNAPSHOT_STORE
    assert "sqlite" in engines(), "the example engine is installed by scripts/setup.sh"


CORE = [path for top in ("checks", "console") for path in sorted((ROOT / top).rglob("*.py"))
        if path.relative_to(ROOT).parts[1] not in ("postgres", "mongodb", "redis", "demo")]
# Known debts, each with its owner: the legacy redis://PASSWORD@host form the secret masker
# reads, the MongoDB-only `profiler` command, and the demo command that starts one server of
# each built-in engine.
ENGINE_NAMED = {"checks/secrets.py", "console/commands/profiler.py", "console/commands/demo.py"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_has_no_engine_literal(path):
    """No string literal of the core is a built-in engine's kind or starts one of its check ids:
    an engine's names live in its package (docstrings and comments may mention one)."""
    relative = str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    named = [node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
             and (node.value in {"postgres", "mongodb", "redis"} or node.value.startswith(("postgres.", "mongodb.", "redis.")))]
    assert not named or relative in ENGINE_NAMED, f"{relative} names an engine: {named}"
