"""Pure judgement of postgres.replication and postgres.locks."""

from __future__ import annotations

import pytest

from checks.model import Severity
from checks.postgres import locks, replication
from tests.unit.test_postgres_evaluate import scope


def slot(name="s", *, active=False, wal_status="reserved", retained=2 * 1024**3):
    return replication.Slot(name, "physical", None, active, wal_status, None, retained)


@pytest.mark.parametrize("item, expected", [
    (slot(), ("inactive", Severity.HIGH, True)),
    (slot(active=True), None),                         # a consumer is connected
    (slot(retained=1024), ("inactive", Severity.LOW, True)),  # tiny, but it grows with every write
    (slot(retained=100 * 1024**2), ("inactive", Severity.MEDIUM, True)),
    (slot(retained=None), ("inactive", Severity.LOW, True)),  # no restart_lsn yet
    (slot(wal_status="lost", retained=None), ("lost", Severity.HIGH, True)),
    (slot(active=True, wal_status="unreserved"), ("unreserved", Severity.HIGH, False)),
])
def test_slots(item, expected):
    check = replication.Replication()
    found = check.evaluate(replication.Facts((item,), ()), scope(check))
    if expected is None:
        assert found == []
    else:
        [finding] = found
        assert (finding.evidence["wal_status"] if expected[0] != "inactive" else "inactive") == expected[0]
        assert finding.severity is expected[1] and (finding.fix is not None) is expected[2]


def test_a_small_inactive_slot_growing_fast_is_high():
    check = replication.Replication()
    earlier = replication.Earlier("2026-01-01T00:00:00+00:00", 3600.0, {"s": 1024})
    [finding] = check.evaluate(replication.Facts((slot(retained=50 * 1024**2),), (), earlier), scope(check))
    assert finding.severity is Severity.HIGH  # 50 MiB an hour: past 1 GiB within a day
    assert finding.evidence["growth"]["bytes_per_hour"] == 50 * 1024**2 - 1024
    [steady] = check.evaluate(replication.Facts((slot(retained=1024),), (), earlier), scope(check))
    assert steady.severity is Severity.LOW and steady.evidence["growth"]["bytes"] == 0


MIB = 1024**2


@pytest.mark.parametrize("retained, mib_per_hour, severity, runway", [
    (50 * MIB, 2 * MIB, Severity.HIGH, "reaches 1.0 GB in 20.3 days"),  # under 30 days
    (50 * MIB, MIB // 4, Severity.MEDIUM, "reaches 1.0 GB in 162.3 days"),
    (100 * MIB, MIB // 100, Severity.LOW, "reaches 1.0 GB in 10.5 years"),  # medium by size, low by runway
    (2048 * MIB, 2 * MIB, Severity.HIGH, None),  # past the line already: high by size, no runway to it
])
def test_an_inactive_slots_growth_is_graded_by_the_days_before_it_reaches_the_line(
        retained, mib_per_hour, severity, runway):
    check = replication.Replication()
    earlier = replication.Earlier("2026-01-01T00:00:00+00:00", 3600.0, {"s": retained - mib_per_hour})
    [finding] = check.evaluate(replication.Facts((slot(retained=retained),), (), earlier), scope(check))
    assert finding.severity is severity and finding.evidence.get("runway") == runway


def test_standby_lag_over_the_limit():
    check = replication.Replication()
    standbys = (replication.Standby("replica1", "10.0.0.2", "streaming", "async", 600.0, 10**9),
                replication.Standby("replica2", "10.0.0.3", "streaming", "async", 1.0, 10))
    [finding] = check.evaluate(replication.Facts((), standbys), scope(check))
    assert finding.object == "standby replica1" and finding.severity is Severity.MEDIUM


def session(pid, *, blocked_by=(), state="active", waited=60.0):
    return locks.LockSession(pid, "app", "u", "api", state, waited, waited, "Lock" if blocked_by else None,
                             "relation" if blocked_by else None, f"q{pid}", tuple(blocked_by))


def test_one_finding_per_head_with_the_whole_tree():
    check = locks.Locks()
    facts = locks.Facts((session(1, state="idle in transaction"), session(2, blocked_by=[1]),
                         session(3, blocked_by=[2]), session(4, blocked_by=[1], waited=400.0)))
    [finding] = check.evaluate(facts, scope(check))
    assert finding.object == "pid 1" and finding.evidence["waiting_sessions"] == 3
    assert [w["pid"] for w in finding.evidence["waiting_tree"]] == [2, 4]
    assert finding.evidence["waiting_tree"][0]["waiters"][0]["pid"] == 3
    assert finding.severity is Severity.HIGH  # 400 s over high_wait
    assert finding.fix.steps[0].command == "SELECT pg_terminate_backend(1);"


def test_short_waits_and_deadlock_cycles_are_left_alone():
    check = locks.Locks()
    assert check.evaluate(locks.Facts((session(1), session(2, blocked_by=[1], waited=2.0))), scope(check)) == []
    cycle = locks.Facts((session(1, blocked_by=[2]), session(2, blocked_by=[1])))
    assert check.evaluate(cycle, scope(check)) == []


# --- settings -------------------------------------------------------------------------------------------

from checks.postgres import settings as pg_settings  # noqa: E402


def server(**values):
    base = {"log_min_duration_statement": ("1000", "ms"), "shared_preload_libraries": ("pg_stat_statements", None),
            "shared_buffers": ("16384", "8kB"), "work_mem": ("4096", "kB"), "max_connections": ("100", None)}
    base.update(values)
    return {k: pg_settings.Setting(k, v, u, None) for k, (v, u) in base.items()}


def test_timeouts_from_files_database_and_roles_and_unknown_without_the_view():
    check = pg_settings.Settings()
    facts = pg_settings.Facts(server(), {"lock_timeout": "5s"}, {"statement_timeout": "0"},
                              {"app": {"statement_timeout": "10s"}}, "app", 10**6)
    found = {f.evidence["setting"]: f for f in check.evaluate(facts, scope(check))}
    assert sorted(found) == ["idle_in_transaction_session_timeout", "statement_timeout"]
    assert found["statement_timeout"].evidence["source"] == "ALTER DATABASE sets it to 0"
    assert found["statement_timeout"].evidence["roles_setting_it"] == {"app": "10s"}
    unknown = pg_settings.Facts(server(), None, {}, {}, "app", 10**6)
    [info] = check.evaluate(unknown, scope(check))
    assert info.severity is Severity.INFO and info.object == "database app"


def test_sizes_out_of_proportion():
    check = pg_settings.Settings()
    everything = {"statement_timeout": "1s", "lock_timeout": "1s", "idle_in_transaction_session_timeout": "1s"}
    big = pg_settings.Facts(server(work_mem=("1048576", "kB"), max_connections=("2000", None)), everything, {}, {},
                            "app", 100 * 1024**3)
    titles = sorted(f.evidence.get("setting") or f.title for f in check.evaluate(big, scope(check)))
    assert titles == ["max_connections is 2,000", "shared_buffers is still the 128 MB default for a 100.0 GB database",
                      "work_mem × max_connections is 2.0 TB"]
    small = pg_settings.Facts(server(), everything, {}, {}, "app", 10**6)
    assert check.evaluate(small, scope(check)) == []


# --- bloat ----------------------------------------------------------------------------------------------

from checks.postgres import bloat  # noqa: E402


def relation(kind="table", *, pages=100_000, tuples=1_000_000.0, width=100.0, analysed=True):
    return bloat.Relation(1, "public", "t", kind, pages, tuples, 8192, 100 if kind == "table" else 90, width, analysed,
                          table_name="t" if kind == "index" else None, columns=3)


def test_bloat_estimate_from_rows_and_widths():
    # 1,000,000 rows × (24 header + 104 data + 4 pointer) = 132 MB over 8,168-byte pages: 16,161 pages needed.
    assert relation().expected_pages() == 16_161
    size, share = relation().bloat()
    assert share == pytest.approx(0.838, abs=0.001) and size == (100_000 - 16_161) * 8192
    # An index entry: 8 header + 8 key, aligned, + 4 pointer = 20 bytes, pages filled to 90 %.
    assert relation("index", width=8.0).expected_pages() == 2_727  # 20 MB over 7,336.8 bytes a page, + the metapage


@pytest.mark.parametrize("rel, measured, expected", [
    (relation(), None, Severity.LOW),               # an estimate
    (relation(), 0.7, Severity.MEDIUM),             # confirmed by pgstattuple
    (relation(), 0.1, None),                        # pgstattuple disagrees: trusted over the estimate
    (relation(pages=17_000), None, None),           # compact
    (relation(analysed=False), None, None),         # no statistics, no estimate
])
def test_bloat_findings(rel, measured, expected):
    check = bloat.Bloat()
    facts = bloat.Facts((rel,), "public" if measured is not None else None, {1: measured} if measured is not None else {})
    found = check.evaluate(facts, scope(check))
    assert [f.severity for f in found] == ([expected] if expected else [])
