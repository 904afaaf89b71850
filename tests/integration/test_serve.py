"""`dbvitals serve` scraped by a real Prometheus (Debian package), and the exporter's own rules:
the result cache, stale answers, loopback only, no secret in any label or response."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests import support

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, targets: dict[str, dict[str, object]], serve: dict[str, object] | None = None) -> Path:
    head = [f'journal = "{tmp_path / "journal.jsonl"}"']
    if serve:
        head.append("[serve]")
        head += [f"{k} = {json.dumps(v)}" for k, v in serve.items()]
    return support.write_targets_toml(tmp_path, targets, *head)


@contextmanager
def serving(config: Path, *extra: str):
    port = support.free_port()
    process = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(config),
                                "--listen", f"127.0.0.1:{port}", *extra], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        support.wait_for_port(port, process=process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_prometheus_scrapes_a_critical_finding_and_a_down_target(tmp_path, pg_db):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed; run scripts/setup.sh", pytrace=False)
    config = write_config(tmp_path, {
        "app": {"kind": "postgres", "url": pg_db.url},
        "gone": {"kind": "redis", "url": f"redis://127.0.0.1:{support.refused_port()}/0", "timeout": 1},
    }, serve={"min_interval": 1.0})
    with serving(config) as port:
        prom_port = support.free_port()
        scrape = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": "dbvitals", "metrics_path": "/probe",
                "static_configs": [{"targets": ["app", "gone"]}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": f"127.0.0.1:{port}"},
                ],
            }],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(scrape))  # JSON is YAML
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            support.wait_for_port(prom_port, process=prometheus)

            def query(expr: str) -> list[dict]:
                url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
                status, _, body = get(url, timeout=10)
                return json.loads(body)["data"]["result"] if status == 200 else []

            deadline = time.monotonic() + 90
            critical = down = up = []
            while time.monotonic() < deadline:
                critical = query('dbvitals_findings{severity="critical"} > 0')
                down = query("dbvitals_target_up == 0")
                up = query('dbvitals_target_up{target="app"} == 1')
                if critical and down and up:
                    break
                time.sleep(1)
            assert [r["metric"]["target"] for r in down] == ["gone"], down
            assert {r["metric"]["check"] for r in critical} == {"redis.connection"}, critical
            assert up and up[0]["metric"]["instance"] == "app"
        finally:
            prometheus.terminate()
            prometheus.wait(15)


def test_cache_stale_answers_and_openmetrics(tmp_path, pg_db):
    secret = "pw/with?odd#chars@x"
    config = write_config(tmp_path, {
        "app": {"kind": "postgres", "url": pg_db.url, "password": secret},
    }, serve={"min_interval": 300.0, "finding_id_labels": True})
    with serving(config) as port:
        base = f"http://127.0.0.1:{port}"
        status, content_type, first = get(f"{base}/probe?target=app")
        assert status == 200 and content_type.startswith("text/plain")
        assert 'dbvitals_target_up{kind="postgres",state="connected",target="app"} 1.0' in first
        assert secret not in first
        stamp = [line for line in first.splitlines() if line.startswith("dbvitals_last_run_timestamp_seconds")]
        _, _, second = get(f"{base}/probe?target=app")
        assert stamp == [line for line in second.splitlines() if line.startswith("dbvitals_last_run_timestamp_seconds")]
        _, open_type, open_body = get(f"{base}/probe?target=app", {"Accept": "application/openmetrics-text; version=1.0.0"})
        assert open_type.startswith("application/openmetrics-text") and open_body.rstrip().endswith("# EOF")
        assert get(f"{base}/probe?target=nope")[0] == 400
        assert get(f"{base}/probe?target=app&check=nomatch.*")[0] == 400
        assert get(f"{base}/elsewhere")[0] == 404
        _, _, everything = get(f"{base}/metrics")
        assert 'dbvitals_exporter_last_run_age_seconds{target="app"}' in everything and secret not in everything


def test_a_probe_slower_than_the_scrape_answers_stale(tmp_path):
    # A server that accepts and never answers: the first run outlasts a 1 s scrape timeout.
    silent = support.SilentServer()
    try:
        config = write_config(tmp_path, {"slow": {"kind": "redis", "url": f"redis://127.0.0.1:{silent.port}/0",
                                                  "timeout": 3}}, serve={"min_interval": 0.0})
        with serving(config) as port:
            status, _, body = get(f"http://127.0.0.1:{port}/probe?target=slow",
                                  {"X-Prometheus-Scrape-Timeout-Seconds": "1"})
            assert status == 200
            assert 'dbvitals_result_stale{target="slow"} 1.0' in body
            assert 'dbvitals_target_up{kind="redis",state="unknown",target="slow"} 0.0' in body
    finally:
        silent.close()


def test_non_loopback_listen_needs_the_command_line(tmp_path):
    config = write_config(tmp_path, {"a": {"kind": "redis", "url": "redis://127.0.0.1:6379/0"}},
                          serve={"listen": "0.0.0.0:9187"})
    result = subprocess.run([sys.executable, "-m", "console", "serve", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a loopback address" in result.stderr
    bad = subprocess.run([sys.executable, "-m", "console", "serve", "--config", str(config), "--listen", "nope"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "expected HOST:PORT" in bad.stderr


def test_deploy_files_are_valid_for_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool (Debian package prometheus) is not installed; run scripts/setup.sh", pytrace=False)
    rules = subprocess.run([promtool, "check", "rules", str(ROOT / "deploy" / "alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 6 rules found" in rules.stdout
    unit = subprocess.run([promtool, "test", "rules", str(ROOT / "tests" / "data" / "alerts_test.yml")],
                          capture_output=True, text=True)
    # One alert per finding (two jobs probing a target, the /metrics job beside them), a finding whose
    # check fails every other run, a flapping down target, stale results, a check that cannot run.
    assert unit.returncode == 0, unit.stdout + unit.stderr
    check = subprocess.run([promtool, "check", "config", str(ROOT / "deploy" / "prometheus.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr  # the scrape config, with its rule file
    jobs = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"]
    # One scrape path per finding: findings come from the /probe jobs only; /metrics is the
    # exporter's own health and carries none.
    paths = sorted(job["metrics_path"] for job in jobs)
    assert paths == ["/metrics", "/probe", "/probe"], paths


def test_a_scrape_storm_with_distinct_query_strings_runs_a_target_once_per_interval(tmp_path):
    """Distinct check= values used to each run the checks (a new connection and thousands of
    commands apiece) and each add a cache entry; the work is one run per target per interval."""
    import redis

    server = support.PrivateRedis()
    try:
        config = write_config(tmp_path, {"cache": {"kind": "redis", "url": f"redis://127.0.0.1:{server.port}/0"}},
                              serve={"min_interval": 300.0})
        admin = redis.Redis(port=server.port)

        def counters() -> tuple[int, int]:
            stats = admin.info("stats")
            return stats["total_connections_received"], stats["total_commands_processed"]

        with serving(config) as port:
            base = f"http://127.0.0.1:{port}"
            before = counters()
            status, _, body = get(f"{base}/probe?target=cache")
            assert status == 200 and 'dbvitals_target_up{kind="redis",state="connected",target="cache"} 1.0' in body
            one_run = counters()
            assert one_run[0] > before[0]  # the run really connected
            rss = []
            for i in range(200):
                status, _, body = get(f"{base}/probe?target=cache&check=redis.*[a-z{i}]")
                assert status == 200 and "dbvitals_check_outcome" in body
                if i in (20, 199):
                    rss.append(_rss_kib(port))
            after = counters()
            # Only the admin's own INFO calls reached the server after the first run.
            assert after[0] == one_run[0] and after[1] - one_run[1] <= 2, (before, one_run, after)
            assert rss[1] - rss[0] < 8 * 1024, rss  # KiB: the cache does not grow by query string
            selected = get(f"{base}/probe?target=cache&check=redis.connection")[2]
            assert 'check="redis.connection"' in selected and 'check="redis.memory' not in selected
    finally:
        server.stop()


def _rss_kib(port: int) -> int:
    """The resident size of the process listening on the port (this test's `serve`)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    pid = int(out.split("pid=", 1)[1].split(",", 1)[0])
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.mark.parametrize("header", ["1e300", "inf", "nan", "-1", "0", "soon"])
def test_a_scrape_timeout_header_that_is_no_sensible_number_is_a_400(tmp_path, header):
    config = write_config(tmp_path, {"a": {"kind": "redis", "url": f"redis://127.0.0.1:{support.refused_port()}/0",
                                           "timeout": 0.5}})
    with serving(config) as port:
        status, _, body = get(f"http://127.0.0.1:{port}/probe?target=a", {"X-Prometheus-Scrape-Timeout-Seconds": header})
        assert status == 400 and "X-Prometheus-Scrape-Timeout-Seconds" in body
        assert get(f"http://127.0.0.1:{port}/probe?target=a", {"X-Prometheus-Scrape-Timeout-Seconds": "5"})[0] == 200


def test_serve_outlives_sighup_and_stops_on_sigterm_leaving_no_ssh_behind(tmp_path, redis_db):
    from tests.integration.test_ssh_tunnel import _children, _gone, _is_ssh, bastion

    with bastion(tmp_path) as ssh:
        config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url, **ssh}})
        port = support.free_port()
        process = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(config),
                                    "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tunnels: list[int] = []
        try:
            support.wait_for_port(port, process=process)
            status, _, body = get(f"http://127.0.0.1:{port}/probe?target=cache")
            assert status == 200 and 'state="connected"' in body, body
            tunnels = [pid for pid in _children(process.pid) if _is_ssh(pid)]
            assert tunnels, "the target is reached through an ssh tunnel of serve's own"
            process.send_signal(signal.SIGHUP)
            assert get(f"http://127.0.0.1:{port}/probe?target=cache")[0] == 200  # still serving
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            stderr = process.stderr.read()
            assert "SIGHUP: the configuration is not reloaded" in stderr and "SIGTERM: stopping" in stderr
            assert "Traceback" not in stderr
            assert support.wait_until(lambda: all(_gone(pid) for pid in tunnels), timeout=5), f"ssh {tunnels} left behind"
            # Nor any ssh to this test's bastion anywhere, whoever its parent now is.
            assert not _ssh_to(ssh["ssh_key"])
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            for pid in tunnels:
                if not _gone(pid) and _is_ssh(pid):
                    os.kill(pid, signal.SIGKILL)


def _ssh_to(key: str) -> list[int]:
    """Every running ssh that logs in with `key` (this test's own), whatever its parent."""
    from tests.integration.test_ssh_tunnel import _cmdline, _gone, _is_ssh

    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _is_ssh(int(pid))
            and key in _cmdline(int(pid)) and not _gone(int(pid))]


def test_a_tunnel_killed_mid_serve_is_ssh_error_then_comes_back(tmp_path, redis_db):
    from tests.integration.test_ssh_tunnel import _children, _gone, _is_ssh, bastion

    with bastion(tmp_path) as ssh:
        config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url, "timeout": 3, **ssh}},
                              serve={"min_interval": 0})
        port = support.free_port()
        process = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(config),
                                    "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            support.wait_for_port(port, process=process)

            def state() -> str:
                status, _, body = get(f"http://127.0.0.1:{port}/probe?target=cache")
                assert status == 200, body
                return next((s for s in ("connected", "ssh_error") if f'state="{s}"' in body), body)

            assert state() == "connected"
            [first] = [pid for pid in _children(process.pid) if _is_ssh(pid)]
            os.kill(first, signal.SIGKILL)
            assert support.wait_until(lambda: _gone(first), timeout=10)
            assert state() == "ssh_error"  # the bastion's side, not a refused database
            assert support.wait_until(lambda: state() == "connected", timeout=30, step=0.3)
            assert [pid for pid in _children(process.pid) if _is_ssh(pid)] != [first]
        finally:
            process.terminate()
            process.wait(10)
        assert support.wait_until(lambda: not _ssh_to(ssh["ssh_key"]), timeout=5)
