"""A real three-master Redis Cluster, private to this test: every master is scanned and merged."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests import support

MASTERS = 3


@pytest.fixture
def redis_cluster(tmp_path) -> Iterator[list[int]]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        pytest.fail("redis-server and redis-cli are needed; run scripts/setup.sh", pytrace=False)
    ports = [support.free_port() for _ in range(MASTERS)]
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

    from checks.engine import load_registry
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
