"""The shipped deploy/prometheus.yml and deploy/alerts.yml in a real Prometheus (Debian package)
scraping a real `serve`: one critical finding is one firing alert, though two /probe jobs probe
its target and the /metrics job scrapes the exporter beside them. Only what a test cannot wait
for is changed in a copy: the port, the intervals and the `for:` durations. The Grafana
dashboard's expressions run on the same Prometheus."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from console.commands.serve import DEFAULT_PORT
from tests import support
from tests.integration.test_deploy import dashboard_expressions
from tests.integration.test_serve import get, serving, write_config

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 4  # the shipped file-discovery job keeps 1 of 4 hashmod shards


def shard(name: str) -> int:
    """Prometheus's hashmod: the last 8 bytes of the MD5 of the value, big-endian, modulo."""
    return int.from_bytes(hashlib.md5(name.encode()).digest()[8:], "big") % SHARDS


def derived_config(tmp_path: Path, serve_port: int, target: str) -> Path:
    """deploy/prometheus.yml pointed at this test's serve, with intervals of seconds, and
    deploy/alerts.yml with its `for:` durations at zero."""
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    shipped_address = f"127.0.0.1:{DEFAULT_PORT}"
    # 2s: a loaded machine may take more than a second to answer even from the cache.
    scrape["global"] = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"}
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "targets.json").write_text(json.dumps([{"targets": [target]}]))
    for job in scrape["scrape_configs"]:
        for relabel in job.get("relabel_configs", []):
            if relabel.get("replacement") == shipped_address:
                relabel["replacement"] = f"127.0.0.1:{serve_port}"
        for static in job.get("static_configs", []):
            static["targets"] = [target] if job["metrics_path"] == "/probe" else [f"127.0.0.1:{serve_port}"]
        for discovery in job.get("file_sd_configs", []):
            discovery["files"] = [str(tmp_path / "sd" / "*.json")]
            discovery["refresh_interval"] = "1s"
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    assert scrape["rule_files"] == ["alerts.yml"], scrape["rule_files"]  # as shipped, beside the config
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape))
    return tmp_path / "prometheus.yml"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"{what} within {timeout:.0f}s", pytrace=False)


def test_a_real_prometheus_with_the_shipped_config_fires_one_alert_per_critical_finding(tmp_path, pg_db):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed; run scripts/setup.sh", pytrace=False)
    # A target name in the shard the file-discovery job keeps: both /probe jobs probe it.
    target = next(name for name in (f"app{i}" for i in range(100)) if shard(name) == 0)
    # A serial 100 values from its end after 500 inserts since the server started: days of runway
    # at most, so critical (a sequence graded by runway: a full one that does not grow is not).
    pg_db.execute("CREATE TABLE counters (id serial PRIMARY KEY, n int); SELECT setval('counters_id_seq', 2147483047); "
                  "INSERT INTO counters (n) SELECT g FROM generate_series(1, 500) g")
    config = write_config(tmp_path, {target: {"kind": "postgres", "url": pg_db.url}}, serve={"min_interval": 5.0})
    with serving(config) as port:
        body = get(f"http://127.0.0.1:{port}/probe?target={target}")[2]
        critical = {(line.split('target="')[1].split('"')[0], line.split('check="')[1].split('"')[0])
                    for line in body.splitlines()
                    if line.startswith("dbvitals_findings{") and 'severity="critical"' in line}
        assert critical == {(target, "postgres.sequence-exhaustion")}, body

        prom_port = support.free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={derived_config(tmp_path, port, target)}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def answer(path: str, **params: str) -> Any:
            status, _, text = get(f"{api}/{path}?{urllib.parse.urlencode(params)}", timeout=10)
            return json.loads(text)["data"] if status == 200 else None

        def firing() -> list[dict[str, Any]]:
            alerts = (answer("alerts") or {}).get("alerts", [])
            return [a for a in alerts if a["labels"]["alertname"] == "DbvitalsCriticalFinding" and a["state"] == "firing"]

        def evaluations() -> str:
            groups = (answer("rules") or {}).get("groups", [])
            return groups[0]["lastEvaluation"] if groups else ""

        try:
            support.wait_for_port(prom_port, process=prometheus)
            # Both /probe jobs scrape the target and the exporter job scrapes /metrics, all healthy.
            wait_for(lambda: {(t["labels"]["job"], t["health"]) for t in (answer("targets") or {}).get("activeTargets", [])}
                     == {("dbvitals", "up"), ("dbvitals-fleet", "up"), ("dbvitals-exporter", "up")},
                     30, "the three shipped jobs up")
            wait_for(firing, 30, "DbvitalsCriticalFinding firing")
            # Several evaluations later, still exactly one alert per critical finding.
            for _ in range(3):
                seen = evaluations()
                wait_for(lambda seen=seen: evaluations() != seen, 10, "another rule evaluation")
            alerts = firing()
            assert sorted((a["labels"]["target"], a["labels"]["check"]) for a in alerts) == sorted(critical), alerts
            [alert] = alerts
            assert alert["labels"]["severity"] == "page" and alert["labels"]["instance"] == target
            assert alert["annotations"]["summary"] == f"{target}: 1 critical finding(s) from postgres.sequence-exhaustion"
            # The finding really arrives twice (two jobs) and once from neither the exporter's /metrics.
            series = answer("query", query='dbvitals_findings{severity="critical"}')["result"]
            assert sorted(s["metric"]["job"] for s in series) == ["dbvitals", "dbvitals-fleet"], series
            # The Grafana dashboard's expressions are PromQL this Prometheus runs on these series.
            for expression in dashboard_expressions():
                query = expression.replace("$__rate_interval", "1m").replace("$target", ".*")
                status, _, text = get(f"{api}/query?" + urllib.parse.urlencode({"query": query}), timeout=10)
                assert status == 200 and json.loads(text)["status"] == "success", (expression, text)
        finally:
            prometheus.terminate()
            prometheus.wait(15)
