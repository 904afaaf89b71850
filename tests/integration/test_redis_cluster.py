"""A real three-master Redis Cluster, private to this test: every master is scanned and merged."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from checks.model import Severity
from tests import support

MASTERS = 3


@pytest.fixture
def redis_cluster(tmp_path) -> Iterator[list[int]]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        pytest.fail("redis-server and redis-cli are needed; run scripts/setup.sh", pytrace=False)
    ports = [support.free_port(below=55536) for _ in range(MASTERS)]
    processes = []
    try:
        for port in ports:
            data = tmp_path / f"node-{port}"
            data.mkdir()
            processes.append(subprocess.Popen(
                # The bus port is set apart: by default port + 10000, which may not exist.
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(support.free_port()),
                 "--cluster-config-file", str(data / "nodes.conf"), "--dir", str(data),
                 "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port, process in zip(ports, processes):
            support.wait_for_port(port, process=process)
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [subprocess.run([cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True).stdout
                      for p in ports]
            if all("cluster_state:ok" in s for s in states):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the private Redis Cluster did not reach cluster_state:ok", pytrace=False)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_ttl_coverage_scans_every_master_and_merges(redis_cluster):
    from redis.cluster import RedisCluster

    cluster = RedisCluster(host="127.0.0.1", port=redis_cluster[0])
    for i in range(300):
        cluster.set(f"session:{uuid.uuid4()}", "u", ex=None if i % 10 == 0 else 3600)
    per_node = []
    for port in redis_cluster:
        import redis

        per_node.append(redis.Redis(port=port).dbsize())
    cluster.close()
    assert sum(per_node) == 300 and all(n > 0 for n in per_node)  # the keys really are spread

    settings = support.settings_for(c={"kind": "redis", "url": f"redis://127.0.0.1:{redis_cluster[0]}"})
    report = support.run_report(settings, checks=["redis.ttl-coverage"])
    assert report.errors == []
    [finding] = report.findings
    assert finding.object == "session:{uuid}"
    assert finding.evidence["keys"] == 300 and finding.evidence["without_ttl"] == 30
    assert len(finding.evidence["scan"]["cluster_masters"]) == MASTERS


def test_expire_fix_runs_on_every_master_and_undo_restores_exactly_those_keys(redis_cluster, tmp_path):
    import asyncio

    import redis
    from redis.cluster import RedisCluster

    from checks.registry import load_registry
    from checks.fixes import Journal, apply_fix, plan_fix, undo_fix

    cluster = RedisCluster(host="127.0.0.1", port=redis_cluster[0])
    forgotten = set()
    for i in range(200):
        key = f"session:{uuid.uuid4()}"
        cluster.set(key, "u", ex=None if i % 5 == 0 else 3600)
        if i % 5 == 0:
            forgotten.add(key.encode())
    nodes = [redis.Redis(port=p) for p in redis_cluster]
    assert all(any(n.ttl(k) == -1 for k in n.scan_iter()) for n in nodes)  # every master has some

    settings = support.settings_for(c={"kind": "redis", "url": f"redis://127.0.0.1:{redis_cluster[0]}",
                                       "allow_fixes": True})
    [finding] = support.run_report(settings, checks=["redis.ttl-coverage"]).findings
    registry = load_registry()
    journal = Journal(tmp_path / "journal.jsonl")

    async def fix_then_undo():
        plan = await plan_fix(settings, registry, finding, allow_unsafe=True)
        fixed = await apply_fix(settings, registry, plan, allow_unsafe=True, journal=journal)
        without_ttl = {k for k in forgotten if cluster.ttl(k) == -1}
        undone = await undo_fix(settings, registry, fixed.entry_id, allow_unsafe=True, journal=journal)
        return fixed, without_ttl, undone

    fixed, without_ttl_after_fix, undone = asyncio.run(fix_then_undo())
    assert fixed.outcome == "fixed", fixed.message
    assert without_ttl_after_fix == set()
    assert undone.outcome in {"fixed", "not_fixed"}, undone.message  # the undo ran; the finding is back
    assert {k for k in forgotten if cluster.ttl(k) == -1} == forgotten, undone.message
    assert all(cluster.ttl(k) > 0 for k in cluster.scan_iter(match="session:*") if k not in forgotten)
    cluster.close()


def test_cluster_check_healthy_then_a_handshake_and_uncovered_slots(redis_cluster):
    import redis

    settings = support.settings_for(c={"kind": "redis", "url": f"redis://127.0.0.1:{redis_cluster[0]}"})
    report = support.run_report(settings, checks=["redis.cluster"])
    assert report.errors == [] and report.findings == []  # every slot served, every node healthy

    node = redis.Redis(port=redis_cluster[0])
    node.execute_command("CLUSTER", "MEET", "127.0.0.1", support.free_port(below=55536))  # nobody there: stuck in handshake
    owned = next(int(line.split()[8].split("-")[0]) for line in node.execute_command("CLUSTER", "NODES").decode().splitlines()
                 if "myself" in line)
    node.execute_command("CLUSTER", "DELSLOTS", owned, owned + 1)
    deadline = time.monotonic() + 10
    while "cluster_state:fail" not in node.execute_command("CLUSTER", "INFO").decode() and time.monotonic() < deadline:
        time.sleep(0.1)
    findings = {f.object: f for f in support.run_report(settings, checks=["redis.cluster"]).findings}
    assert findings["slots"].severity is Severity.CRITICAL
    assert findings["slots"].evidence["cluster_slots_assigned"] == "16382"
    assert "2 unassigned slots" in findings["slots"].message
    assert findings["nodes:handshake"].evidence["nodes"][0]["flags"][0] == "handshake"


def test_keys_in_several_logical_databases_outside_a_cluster(tmp_path):
    import redis

    from tests.integration.test_redis_server_settings import private_redis, report_for

    with private_redis(tmp_path) as url:
        redis.Redis.from_url(url).set("user:1", "x")
        assert report_for(url, "redis.cluster") == []
        redis.Redis.from_url(url.replace("/0", "/3")).set("user:2", "x")
        [finding] = report_for(url, "redis.cluster")
        assert finding.title == "Keys in 2 logical databases" and finding.evidence["databases"] == {0: 1, 3: 1}
        assert finding.severity is Severity.LOW
