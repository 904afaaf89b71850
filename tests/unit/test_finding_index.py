"""Where a finding id lives: the TARGET/CHECK/ID reference and the last report's index."""

from __future__ import annotations

import json
import stat

import pytest

from checks.fixes.locate import FindingIndex, Location, group_by_target, parse_reference
from checks.model import Finding, Report, Severity


def finding(fid: str, target: str, check: str, obj: str = "public.orders") -> Finding:
    return Finding(id=fid, check=check, severity=Severity.LOW, target=target, object=obj, title="t", message="m")


def report(findings: list[Finding], ran: list[tuple[str, str]]) -> Report:
    return Report(targets=[], findings=findings, errors=[], duration_ms=1.0,
                  checks=[{"target": t, "check": c, "outcome": "ok", "findings": 0, "duration_ms": 1.0} for t, c in ran])


@pytest.mark.parametrize("text, location", [
    ("forum/postgres.fk-missing-index/84b7853a", Location("forum", "postgres.fk-missing-index", "84b7853a")),
    ("84b7853a0c1d", None),
    ("forum//84b7853a", None),
    ("fleet/app_db/postgres.fk-missing-index/84b7853a",  # a discovered database's target: SERVER/DB
     Location("fleet/app_db", "postgres.fk-missing-index", "84b7853a")),
    ("/postgres.x/84b7853a", None),
])
def test_a_reference_names_target_check_and_id(text, location):
    assert parse_reference(text) == location


def test_the_index_finds_ids_and_unique_prefixes_and_says_when_a_prefix_is_ambiguous(tmp_path):
    index = FindingIndex(tmp_path / "findings.json")
    assert index.lookup("abcdef123456") == []  # no report yet
    index.record(report([finding("abcdef123456", "pg", "postgres.fk-missing-index"),
                         finding("abcdef999999", "cache", "redis.ttl-coverage")],
                        [("pg", "postgres.fk-missing-index"), ("cache", "redis.ttl-coverage")]))
    assert index.lookup("abcdef123456") == [Location("pg", "postgres.fk-missing-index", "abcdef123456")]
    assert index.lookup("abcdef12") == [Location("pg", "postgres.fk-missing-index", "abcdef123456")]
    assert len(index.lookup("abcdef")) == 2  # ambiguous: both places are searched
    assert index.lookup("abcde") == []  # too short a prefix to trust


def test_a_report_replaces_only_what_it_ran(tmp_path):
    index = FindingIndex(tmp_path / "findings.json")
    index.record(report([finding("a" * 12, "pg", "postgres.x"), finding("b" * 12, "pg", "postgres.y")],
                        [("pg", "postgres.x"), ("pg", "postgres.y")]))
    # A later `dbvitals check --check postgres.x`: a's problem is gone, c is new, y was not run.
    index.record(report([finding("c" * 12, "pg", "postgres.x")], [("pg", "postgres.x")]))
    assert index.lookup("a" * 12) == []
    assert index.lookup("b" * 12) == [Location("pg", "postgres.y", "b" * 12)]
    assert index.lookup("c" * 12) == [Location("pg", "postgres.x", "c" * 12)]


def test_the_index_is_private_and_holds_no_object_name_nor_url(tmp_path):
    index = FindingIndex.for_config(tmp_path / "state", tmp_path / "dbvitals.toml")
    index.record(report([finding("a" * 12, "pg", "postgres.x", obj="public.secret_salaries")], [("pg", "postgres.x")]))
    assert stat.S_IMODE(index.path.stat().st_mode) == 0o600
    text = index.path.read_text()
    assert "secret_salaries" not in text and "postgresql://" not in text
    assert json.loads(text)["findings"] == {"a" * 12: ["pg", "postgres.x"]}
    other = FindingIndex.for_config(tmp_path / "state", tmp_path / "other.toml")
    assert other.path != index.path and other.lookup("a" * 12) == []  # each config its own


def test_a_damaged_index_is_as_if_no_report_had_run(tmp_path):
    index = FindingIndex(tmp_path / "findings.json")
    index.path.write_text('{"schema": "dbvitals.finding-index/1", "findings": {"a')
    assert index.lookup("a" * 12) == []
    index.path.write_text(json.dumps({"schema": "dbvitals.finding-index/1", "findings": {"a" * 12: "pg"}}))
    assert index.lookup("a" * 12) == []


def test_locations_group_by_target():
    assert group_by_target([Location("pg", "x", "1"), Location("pg", "y", "2"), Location("pg", "x", "3"),
                            Location("cache", "z", "4")]) == {"pg": ["x", "y"], "cache": ["z"]}


def test_two_configs_sharing_a_state_directory_keep_one_index_each(tmp_path):
    from checks.config import load_config
    from console.runtime import finding_index

    journal = tmp_path / "state" / "journal.jsonl"
    paths = []
    for name in ("a", "b"):
        config = tmp_path / name / "dbvitals.toml"
        config.parent.mkdir()
        config.write_text(f'journal = "{journal}"\n[targets.{name}]\nkind = "postgres"\nurl = "postgresql://h/x"\n')
        paths.append(finding_index(load_config(config)).path)
    assert paths[0] != paths[1]
    assert paths[0].parent == paths[1].parent == journal.parent / "findings"
    index_a = FindingIndex(paths[0])
    index_a.record(report([finding("abcdef123456", "a", "postgres.fk-missing-index")],
                          [("a", "postgres.fk-missing-index")]))
    assert FindingIndex(paths[1]).lookup("abcdef123456") == []  # b never sees a's findings
