"""`dbvitals serve` as an exporter among others: its own port, gzip when asked, its own health on
/metrics and findings only on /probe (only at the severities found), structured log lines instead
of tracebacks, and TLS and basic auth from an exporter-toolkit web config file."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import bcrypt
import pytest
import yaml

from checks.config import Settings
from console.commands.serve import DEFAULT_PORT, parse_listen
from console.exporter import ExporterHealth, logfmt_value, handler_for
from console.web_config import WebConfig, WebConfigError, load_web_config
from tests import support
from tests.integration.test_serve import write_config

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(config: Path, *extra: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A real `serve` on a free port; stops it and leaves its stderr readable afterwards."""
    port = support.free_port()
    process = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(config),
                                "--listen", f"127.0.0.1:{port}", *extra], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        support.wait_for_port(port, process=process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def fetch(url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
          timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def samples(body: str, name: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def promtool_metrics(body: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool (Debian package prometheus) is not installed; run scripts/setup.sh", pytrace=False)
    return subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)


def test_the_default_port_is_dbvitals_own_everywhere_it_is_written():
    """9187 was postgres_exporter's: the default, the shipped scrape config and the deploy files
    all say the port of dbvitals's own."""
    assert DEFAULT_PORT == 10187
    assert parse_listen(Settings().serve.listen) == ("127.0.0.1", DEFAULT_PORT)
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file():
            text = path.read_text()
            assert "9187" not in text.replace(str(DEFAULT_PORT), ""), path
    assert str(DEFAULT_PORT) in (ROOT / "deploy" / "prometheus.yml").read_text()
    assert f"127.0.0.1:{DEFAULT_PORT}" in (ROOT / "README.md").read_text()


def test_probe_gzips_when_asked_and_exports_only_the_severities_found(tmp_path, redis_db):
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}}, serve={"min_interval": 300.0})
    with serving(config) as (port, _):
        url = f"http://127.0.0.1:{port}/probe?target=cache"
        status, headers, plain = fetch(url)
        assert status == 200 and "Content-Encoding" not in headers
        status, headers, packed = fetch(url, {"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(packed) == plain  # the same cached result, compressed
        assert len(packed) < len(plain) / 3
        refused = fetch(url, {"Accept-Encoding": "gzip;q=0, identity"})
        assert "Content-Encoding" not in refused[1] and refused[2] == plain
    body = plain.decode()
    findings = samples(body, "dbvitals_findings")
    assert findings, "an empty Redis database still has findings (e.g. its pool or latency)"
    assert all(not line.endswith(" 0.0") for line in findings), findings  # no zero-filled severity
    outcomes = samples(body, "dbvitals_check_outcome")
    assert outcomes and all(line.endswith(" 1.0") for line in outcomes), outcomes  # the outcome that happened
    assert len(outcomes) == len(samples(body, "dbvitals_check_duration_seconds"))  # one per check
    assert "dbvitals_build_info" not in body and "process_" not in body  # the exporter's own: /metrics
    lint = promtool_metrics(body)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_metrics_is_the_exporters_own_health_and_carries_no_finding(tmp_path, redis_db):
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}}, serve={"min_interval": 300.0})
    with serving(config) as (port, _):
        base = f"http://127.0.0.1:{port}"
        before = fetch(f"{base}/metrics")[2].decode()
        assert samples(before, "dbvitals_exporter_last_run_age_seconds") == []  # no run yet
        assert fetch(f"{base}/probe?target=cache")[0] == 200
        assert fetch(f"{base}/probe?target=nope")[0] == 400
        status, headers, packed = fetch(f"{base}/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(packed).decode()
    assert samples(body, "process_resident_memory_bytes") and samples(body, "python_info")
    [build] = samples(body, "dbvitals_build_info")
    assert 'version="' in build and f'python="{sys.version_info.major}.{sys.version_info.minor}.' in build
    assert samples(body, "dbvitals_exporter_targets") == ["dbvitals_exporter_targets 1.0"]
    assert samples(body, "dbvitals_exporter_run_duration_seconds_count") == [
        'dbvitals_exporter_run_duration_seconds_count{target="cache"} 1.0']
    assert 'dbvitals_exporter_check_duration_seconds_count{check="redis.connection",target="cache"} 1.0' in body
    assert samples(body, "dbvitals_exporter_last_run_age_seconds")[0].startswith(
        'dbvitals_exporter_last_run_age_seconds{target="cache"}')
    assert 'dbvitals_exporter_scrape_duration_seconds_count{path="/probe"} 1.0' in body
    assert 'dbvitals_exporter_errors_total{path="/probe",reason="bad_request"} 1.0' in body
    # Findings reach Prometheus by /probe only, so scraping /metrics beside it never doubles an alert.
    assert "dbvitals_findings" not in body and "dbvitals_target_up" not in body
    assert "_created" not in body
    lint = promtool_metrics(body)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_run_that_outlasts_the_scrape_is_one_log_line(tmp_path):
    silent = support.SilentServer()
    try:
        config = write_config(tmp_path, {"slow": {"kind": "redis", "url": f"redis://127.0.0.1:{silent.port}/0",
                                                  "timeout": 3}}, serve={"min_interval": 0.0})
        with serving(config) as (port, process):
            status, _, body = fetch(f"http://127.0.0.1:{port}/probe?target=slow",
                                    {"X-Prometheus-Scrape-Timeout-Seconds": "1"})
            assert status == 200 and b'dbvitals_result_stale{target="slow"} 1.0' in body
        stderr = process.stderr.read() if process.stderr else ""
    finally:
        silent.close()
    [line] = [line for line in stderr.splitlines() if "outlasted" in line]
    assert line.startswith("ts=") and " level=warn " in line and " target=slow " in line, line
    assert "Traceback" not in stderr


class FailingExporter:
    """An exporter whose checks blow up (what a bug in a check's code would do to a scrape) or
    whose check loop does not answer in time."""

    def __init__(self, error: Exception) -> None:
        self.health = ExporterHealth(["app"])
        self.cache = type("Cache", (), {"registry": type("Registry", (), {"checks": {}})()})()
        self.error = error

    def scrape(self, *_: object) -> tuple[bytes, str]:
        raise self.error


@pytest.mark.parametrize(("error", "status", "said"), [
    (RuntimeError('boom "quoted"\nTraceback (most recent call last): injected'), 500,
     r'level=error msg="scrape failed" path=/probe target=app error="RuntimeError: boom \"quoted\"\nTraceback'),
    (TimeoutError(), 503, 'level=warn msg="scrape timed out" path=/probe target=app timeout_seconds=10'),
])
def test_a_failing_scrape_is_an_http_error_and_one_escaped_log_line(capfd, error, status, said):
    exporter = FailingExporter(error)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(exporter, ["app"], WebConfig()))  # type: ignore[arg-type]
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        answer = fetch(f"http://127.0.0.1:{server.server_address[1]}/probe?target=app")
        own = fetch(f"http://127.0.0.1:{server.server_address[1]}/metrics")[2].decode()
    finally:
        server.shutdown()
        server.server_close()
    assert answer[0] == status and b"boom" not in answer[2]  # the client is told to read the log
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ts=") and said in lines[0], lines  # a newline cannot start a line
    reason = "internal" if status == 500 else "timeout"
    assert f'dbvitals_exporter_errors_total{{path="/probe",reason="{reason}"}} 1.0' in own


@pytest.mark.parametrize(("value", "written"), [
    ("plain", "plain"), ("two words", '"two words"'), ("", '""'), ('say "hi"', r'"say \"hi\""'),
    ("a=b", '"a=b"'), ("line\nbreak", r'"line\nbreak"'), ("bell\x07", r'"bell\x07"'),
])
def test_logfmt_values_are_quoted_and_escaped(value, written):
    assert logfmt_value(value) == written


# --- TLS and basic auth ---------------------------------------------------------------------------

def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=dbvitals-test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_tls_and_basic_auth_from_a_web_config_file(tmp_path, redis_db):
    cert, _ = self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret pass", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")  # as htpasswd writes
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                                   "basic_auth_users": {"prometheus": hashed}}))
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}}, serve={"min_interval": 300.0})
    trusted = ssl.create_default_context(cafile=str(cert))
    with serving(config, "--web.config.file", str(web)) as (port, process):
        url = f"https://127.0.0.1:{port}/probe?target=cache"
        nobody = fetch(url, context=trusted)
        assert nobody[0] == 401 and nobody[1]["WWW-Authenticate"] == 'Basic realm="dbvitals"'
        assert fetch(url, basic("prometheus", "wrong"), trusted)[0] == 401
        assert fetch(url, basic("someone", "s3cret pass"), trusted)[0] == 401
        assert fetch(url, basic("prometheus", "x" * 100), trusted)[0] == 401  # longer than bcrypt reads
        assert fetch(url, {"Authorization": "Basic !!not base64"}, trusted)[0] == 401
        assert fetch(f"https://127.0.0.1:{port}/metrics", context=trusted)[0] == 401
        status, _, body = fetch(url, basic("prometheus", "s3cret pass"), trusted)
        assert status == 200 and b'state="connected"' in body
        assert fetch(url, basic("prometheus", "s3cret pass"), trusted)[0] == 200  # remembered, still right
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP on a TLS port
            fetch(f"http://127.0.0.1:{port}/probe?target=cache", timeout=10)
        with pytest.raises(urllib.error.URLError):  # nor TLS to a client that does not trust the cert
            fetch(url, basic("prometheus", "s3cret pass"), ssl.create_default_context())
    stderr = process.stderr.read() if process.stderr else ""
    assert f"https://127.0.0.1:{port}/probe" in stderr and "(basic auth)" in stderr
    assert "Traceback" not in stderr and "s3cret" not in stderr and hashed not in stderr
    assert all(line.startswith("ts=") for line in stderr.splitlines()), stderr
    assert any('msg="request failed"' in line and "SSLError" in line for line in stderr.splitlines()), stderr


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path, redis_db):
    """As cert-manager or certbot renew it: the files are replaced under a running serve. A
    renewal that cannot be loaded keeps the last good certificate and is said once."""
    first = tmp_path / "first"
    first.mkdir()
    old_cert, _ = self_signed(first)
    for name in ("server.crt", "server.key"):
        shutil.copy(first / name, tmp_path / name)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}))
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}}, serve={"min_interval": 300.0})
    with serving(config, "--web.config.file", str(web)) as (port, process):
        url = f"https://127.0.0.1:{port}/-/healthy"
        assert fetch(url, context=ssl.create_default_context(cafile=str(old_cert)))[0] == 200
        new_cert, _ = self_signed(tmp_path)  # written over the served files
        renewed = ssl.create_default_context(cafile=str(new_cert))
        assert fetch(url, context=renewed)[0] == 200
        with pytest.raises(urllib.error.URLError):
            fetch(url, context=ssl.create_default_context(cafile=str(old_cert)))
        (tmp_path / "server.key").write_text("not a key\n")  # a renewal gone wrong
        assert fetch(url, context=renewed)[0] == 200
        assert fetch(url, context=renewed)[0] == 200
    stderr = process.stderr.read() if process.stderr else ""
    said = [line for line in stderr.splitlines() if "renewed TLS files cannot be used" in line]
    assert len(said) == 1 and said[0].startswith("ts=") and "level=error" in said[0], stderr
    assert "Traceback" not in stderr


def write_web(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


HASH = "$2y$10$" + "a" * 53


@pytest.mark.parametrize(("text", "said"), [
    ("tls_server_config: [nope", "not valid YAML"),
    ("- a list", "the file must be a mapping"),
    ("http_server_config: {http2: false}", "http_server_config is not supported by dbvitals serve"),
    ("tls_server_config: {cert_file: a.crt}", "tls_server_config.key_file is required"),
    ("tls_server_config: {cert_file: a.crt, key_file: a.key, cipher_suites: [x]}",
     "tls_server_config.cipher_suites is not supported"),
    ("tls_server_config: {cert_file: missing.crt, key_file: missing.key}", "cannot load"),
    ("basic_auth_users: {prometheus: plain-text-password}", "basic_auth_users.prometheus is not a bcrypt hash"),
    ("basic_auth_users: [prometheus]", "basic_auth_users must be a mapping"),
])
def test_a_bad_web_config_is_refused_with_its_reason(tmp_path, text, said):
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write_web(tmp_path, text))
    assert said in str(caught.value) and str(tmp_path / "web.yml") in str(caught.value)
    assert "plain-text-password" not in str(caught.value)


def test_a_web_config_file_that_cannot_be_read_is_said(tmp_path):
    with pytest.raises(WebConfigError, match="missing.yml: cannot read: No such file or directory"):
        load_web_config(tmp_path / "missing.yml")


def test_web_config_tls_options(tmp_path):
    cert, key = self_signed(tmp_path)
    base = f"tls_server_config: {{cert_file: {cert.name}, key_file: {key.name}"
    assert load_web_config(write_web(tmp_path, "")).tls is None
    strict = load_web_config(write_web(tmp_path, base + ", min_version: TLS13}"))
    assert strict.tls is not None and strict.tls.current.minimum_version is ssl.TLSVersion.TLSv1_3
    mutual = load_web_config(write_web(tmp_path, base + f", client_auth_type: RequireAndVerifyClientCert, "
                                                       f"client_ca_file: {cert.name}}}"))
    assert mutual.tls is not None and mutual.tls.current.verify_mode is ssl.CERT_REQUIRED
    for bad, said in [(", client_auth_type: RequireAnyClientCert}", "is not supported"),
                      (", client_auth_type: VerifyClientCertIfGiven}", "needs client_ca_file"),
                      (", min_version: TLS10}", "expected one of TLS12, TLS13")]:
        with pytest.raises(WebConfigError, match=said):
            load_web_config(write_web(tmp_path, base + bad))
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(4)).decode()
    users = load_web_config(write_web(tmp_path, f"basic_auth_users: {{prometheus: '{hashed}'}}"))
    assert users.auth is not None and users.auth.allows("prometheus", "right")
    assert not users.auth.allows("prometheus", "wrong") and not users.auth.allows("nobody", "right")
    with pytest.raises(WebConfigError, match="not a valid bcrypt hash"):
        load_web_config(write_web(tmp_path, f"basic_auth_users: {{prometheus: '{HASH}'}}"))


def test_a_bad_web_config_file_is_one_line_and_exit_2(tmp_path):
    config = write_config(tmp_path, {"a": {"kind": "redis", "url": "redis://127.0.0.1:6379/0"}})
    web = write_web(tmp_path, "basic_auth_users: {prometheus: hunter2}")
    result = subprocess.run([sys.executable, "-m", "console", "serve", "--config", str(config),
                             "--listen", f"127.0.0.1:{support.free_port()}", "--web.config.file", str(web)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "basic_auth_users.prometheus is not a bcrypt hash" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_a_real_prometheus_scrapes_over_tls_with_basic_auth_and_gzip(tmp_path, redis_db):
    """Prometheus's own scraper (which asks for gzip) against serve's TLS and basic auth: the
    right password is up on /probe and /metrics, a wrong one is down with a 401."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed; run scripts/setup.sh", pytrace=False)
    cert, _ = self_signed(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                                   "basic_auth_users": {"prometheus": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}}))
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}}, serve={"min_interval": 300.0})
    with serving(config, "--web.config.file", str(web)) as (port, _):
        def job(name: str, path: str, password: str) -> dict[str, object]:
            return {"job_name": name, "metrics_path": path, "scheme": "https", "params": {"target": ["cache"]},
                    "tls_config": {"ca_file": str(cert)}, "basic_auth": {"username": "prometheus", "password": password},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}

        scrape = {"global": {"scrape_interval": "2s", "scrape_timeout": "2s"},
                  "scrape_configs": [job("probe", "/probe", "pw"), job("own", "/metrics", "pw"),
                                     job("intruder", "/probe", "wrong")]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape))
        prom_port = support.free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            support.wait_for_port(prom_port, process=prometheus)

            def health() -> dict[str, tuple[str, str]]:
                status, _, body = fetch(f"http://127.0.0.1:{prom_port}/api/v1/targets", timeout=10)
                targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
                return {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}

            deadline = time.monotonic() + 30
            seen = health()
            while len(seen) < 3 or any(h == "unknown" for h, _ in seen.values()):
                assert time.monotonic() < deadline, f"every job scraped once within 30s: {seen}"
                time.sleep(0.25)
                seen = health()
        finally:
            prometheus.terminate()
            prometheus.wait(15)
    assert seen["probe"] == ("up", "") and seen["own"] == ("up", ""), seen
    assert seen["intruder"][0] == "down" and "401" in seen["intruder"][1], seen
