"""`dbvitals migration` beside squawk (the npm package squawk-cli, which ships its binary) on the
project's migration cases: every lock or rewrite rule squawk fires on a statement has a dbvitals
finding on the same statement. squawk reads the file alone; dbvitals reads the live table too, so
where the table proves a statement safe (a valid CHECK before SET NOT NULL, a varchar widened),
the finding it still gives is about the lock the statement takes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.integration import test_migration as basic
from tests.integration import test_migration_rules as more
from tests.integration.test_migration import _sql, migrate, run_async

LOCK = {"migration.missing-lock-timeout", "migration.queues-behind-sessions", "migration.lock-held-in-transaction"}
# A statement dbvitals finds would fail outright takes no lock worth a timeout: that finding
# answers squawk's timeout rules on it.
FAILS = {"migration.concurrently-in-transaction"}

# squawk's lock and rewrite rules, and the dbvitals findings that answer each.
ANSWERS: dict[str, set[str]] = {
    "adding-field-with-default": {"migration.volatile-default-rewrite"},
    "adding-foreign-key-constraint": {"migration.constraint-validation"} | LOCK,
    "adding-not-nullable-field": {"migration.set-not-null-scan"} | LOCK,
    "adding-required-field": {"migration.precondition-rows"} | LOCK,
    "adding-serial-primary-key-field": {"migration.serial-primary-key", "migration.constraint-builds-index"},
    "ban-concurrent-index-creation-in-transaction": {"migration.concurrently-in-transaction"},
    "changing-column-type": {"migration.column-type-rewrite", "migration.column-type-change"},
    "constraint-missing-not-valid": {"migration.constraint-validation", "migration.constraint-builds-index"},
    "disallowed-unique-constraint": {"migration.constraint-builds-index"},
    "require-concurrent-index-creation": {"migration.create-index-blocking"},
    "require-concurrent-index-deletion": {"migration.drop-index-blocking"},
    "require-concurrent-reindex": {"migration.reindex-blocking"},
    "require-lock-timeout": {"migration.missing-lock-timeout"} | FAILS,
    "require-statement-timeout": {"migration.missing-statement-timeout"} | LOCK | FAILS,
    "renaming-column": {"migration.rename-column"},
    "renaming-table": {"migration.rename-table"},
    "ban-drop-column": {"migration.drop-column"},
    "ban-drop-table": {"migration.drop-table"},
    "ban-drop-database": {"migration.drop-database"},
    "transaction-nesting": {"migration.transaction-nesting"},
}

# The project's cases: (schema on the target, migration).
CASES = [
    ("basic", basic.SCHEMA_SQL, basic.MIGRATION),
    *((f"rules-{n}", more.SCHEMA_SQL, sql) for n, (sql, _) in enumerate(more.CASES)),
]


@pytest.fixture(scope="session")
def squawk(tmp_path_factory) -> Path:
    """squawk-cli installed once per test session from npm; no skip: without npm the comparison
    cannot be made and the test fails saying so."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the squawk comparison needs `npm install squawk-cli`", pytrace=False)
    prefix = tmp_path_factory.mktemp("squawk")
    done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "squawk-cli"],
                          capture_output=True, text=True, timeout=300)
    binary = prefix / "node_modules" / ".bin" / "squawk"
    if done.returncode != 0 or not binary.exists():
        pytest.fail(f"npm install squawk-cli failed (is the npm registry reachable?): {done.stderr[-500:]}",
                    pytrace=False)
    return binary


def squawk_rules(binary: Path, file: Path) -> list[tuple[int, str]]:
    """(line from 1, rule) for every warning squawk gives on the file."""
    done = subprocess.run([str(binary), "--reporter", "json", str(file)], capture_output=True, text=True, timeout=60)
    return [(v["line"] + 1, v["rule_name"]) for v in json.loads(done.stdout or "[]")]


def statement_at(starts: list[int], line: int) -> int:
    """The first line of the statement holding `line`."""
    return max(s for s in starts if s <= line)


@pytest.mark.parametrize("name, schema, sql", CASES, ids=[c[0] for c in CASES])
def test_every_squawk_lock_rule_has_a_dbvitals_finding_on_the_statement(squawk, pg_db, tmp_path, name, schema, sql):
    run_async(_sql(pg_db.url, schema))
    result, file = migrate(tmp_path, pg_db.url, sql, "--format", "json", "--fail-on", "never")
    assert result.returncode == 0, result.stderr
    statements = {s["line"]: {f["rule"] for f in s["findings"]} for s in json.loads(result.stdout)["statements"]}
    fired = [(statement_at(sorted(statements), line), rule) for line, rule in squawk_rules(squawk, file)]
    lock_rules = [(line, rule) for line, rule in fired if rule in ANSWERS]
    missed = [(line, rule, sorted(statements[line])) for line, rule in lock_rules
              if not ANSWERS[rule] & statements[line]]
    counts = Counter(rule for _, rule in lock_rules)
    print(f"{name}: squawk {len(fired)} warnings, {len(lock_rules)} lock/rewrite ({dict(counts)}); "
          f"dbvitals {sum(len(r) for r in statements.values())} findings; answered {len(lock_rules) - len(missed)}")
    assert lock_rules, "the case gives squawk nothing to compare"
    assert missed == []
