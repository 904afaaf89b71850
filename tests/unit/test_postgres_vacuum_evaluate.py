"""postgres.vacuum's pure judgement: wraparound by share of the write-stop age, horizon holders by
age, dead rows against each table's own threshold."""

from __future__ import annotations

import pytest

from checks.model import Severity
from checks.postgres import vacuum
from tests.unit.test_postgres_evaluate import scope

SETTINGS = vacuum.VacuumSettings(True, True, 200_000_000, 400_000_000, 50, 0.2, "app")


def table(name="t", *, xid_age=1000, dead=0, rows=1000.0, reloptions=(), schema="public", vacuumed=False):
    import datetime as dt
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) if vacuumed else None
    return vacuum.TableVacuum(schema, name, "r", xid_age, 10, rows, dead, int(rows), when, None, int(vacuumed), tuple(reloptions))


def facts(*, databases=(), tables=(), holders=(), settings=SETTINGS):
    return vacuum.Facts(settings, tuple(databases), tuple(tables), tuple(holders))


@pytest.mark.parametrize("age, severity", [
    (100_000_000, None), (1_100_000_000, Severity.HIGH), (1_700_000_000, Severity.CRITICAL)])
def test_wraparound_severity_by_share_of_the_write_stop_age(age, severity):
    check = vacuum.Vacuum()
    found = check.evaluate(facts(databases=[vacuum.DatabaseAge("app", age, 5)],
                                 tables=[table(xid_age=age)]), scope(check))
    if severity is None:
        assert found == []
    else:
        [finding] = found
        assert finding.severity is severity and finding.evidence["oldest_tables"][0]["table"] == "public.t"
        assert finding.evidence["ids_left_before_writes_stop"] == vacuum.WRAPAROUND_STOP - age


DAY = 86_400


@pytest.mark.parametrize("ids_per_day, severity", [
    (vacuum.WRAPAROUND_STOP, Severity.CRITICAL),  # a day left
    (vacuum.WRAPAROUND_STOP // 20, Severity.HIGH),
    (vacuum.WRAPAROUND_STOP // 200, Severity.MEDIUM),
    (vacuum.WRAPAROUND_STOP // 2000, Severity.LOW),
])
def test_wraparound_graded_by_the_days_left_at_the_measured_rate(ids_per_day, severity):
    """A database at 1 % of the way to a write stop that ages fast enough outranks one at 80 % that barely moves."""
    check = vacuum.Vacuum()
    age = vacuum.WRAPAROUND_STOP // 100
    later = vacuum.DatabaseAge("app", age + ids_per_day // 100, 5)
    options = {"wraparound_warn": 0.001, "wraparound_critical": 0.9}
    [finding] = check.evaluate(vacuum.Facts(SETTINGS, (vacuum.DatabaseAge("app", age, 5),), (), (),
                                            {"app": vacuum.Aging(later, DAY / 100)}), scope(check, **options))
    assert finding.severity is severity
    assert finding.evidence["days_before_writes_stop"] == pytest.approx(
        (vacuum.WRAPAROUND_STOP - age) / (ids_per_day // 100 * 100), abs=0.05)
    # The anti-wraparound autovacuum (at autovacuum_freeze_max_age) comes before the stop.
    assert finding.evidence["days_before_forced_autovacuum"] < finding.evidence["days_before_writes_stop"]


@pytest.mark.parametrize("later_age, why", [(1_700_000_000, "no id taken"), (1_000, "the age went down")])
def test_no_growth_or_a_freeze_between_the_readings_leaves_the_runway_unknown(later_age, why):
    check = vacuum.Vacuum()
    db = vacuum.DatabaseAge("app", 1_700_000_000, 5)
    [finding] = check.evaluate(vacuum.Facts(SETTINGS, (db,), (), (),
                                            {"app": vacuum.Aging(vacuum.DatabaseAge("app", later_age, 5), 1.0)}),
                               scope(check))
    assert finding.severity is Severity.CRITICAL  # the share decides
    assert finding.evidence["runway"] == "runway unknown" and finding.evidence["rate_from"].startswith(why)


def test_multixact_age_counts_as_much_as_transaction_ids():
    check = vacuum.Vacuum()
    [finding] = check.evaluate(facts(databases=[vacuum.DatabaseAge("other", 10, 1_200_000_000)]), scope(check))
    assert "multixact id age 1,200,000,000" in finding.title and finding.fix is None  # not this target's database


def test_horizon_holders_over_the_age_and_dead_rows_over_the_tables_threshold():
    check = vacuum.Vacuum()
    holders = [vacuum.Holder("replication slot", "old", "logical inactive", 60_000_000, None, None),
               vacuum.Holder("session", "42", "app@local idle in transaction", 10, 5.0, "select 1")]
    tables = [table("busy", dead=300_000, rows=100_000.0),            # threshold 20,050: behind
              table("scaled", dead=300_000, rows=100_000.0, reloptions=["autovacuum_vacuum_scale_factor=5"]),
              table("catalog", dead=300_000, schema="pg_catalog"),
              table("off", reloptions=["autovacuum_enabled=false"])]
    findings = {f.object: f for f in check.evaluate(facts(tables=tables, holders=holders), scope(check))}
    assert sorted(findings) == ["public.busy", "public.off", "replication slot old"]
    busy = findings["public.busy"]
    assert busy.evidence["autovacuum_threshold"] == 20_050 and "horizon_held_by" in busy.evidence
    assert findings["replication slot old"].fix.steps[0].command == "SELECT pg_drop_replication_slot('old');"


def test_autovacuum_off_is_reported_once():
    check = vacuum.Vacuum()
    off = vacuum.VacuumSettings(False, True, 200_000_000, 400_000_000, 50, 0.2, "app")
    [finding] = check.evaluate(facts(settings=off), scope(check))
    assert finding.object == "autovacuum" and finding.severity is Severity.HIGH
