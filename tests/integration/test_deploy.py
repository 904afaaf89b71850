"""The deploy artifacts under deploy/, each checked with the real tool this machine has: the
systemd unit with `systemd-analyze` (and its command lines run for real), the container image
built where a builder daemon answers and linted otherwise (its HEALTHCHECK script run against a
live serve), the Kubernetes manifest parsed and its config loaded by dbvitals, the Grafana
dashboard's metric names checked against what a live serve emits."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from checks.config import load_config
from console.commands.serve import DEFAULT_PORT
from tests import support
from tests.integration.test_serve import get, write_config
from tests.integration.test_serve_hygiene import self_signed

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGE_UID = 10187  # the container's user; the Kubernetes manifest runs as the same


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run scripts/setup.sh", pytrace=False)
    return path


# --- systemd ----------------------------------------------------------------------------------

def unit_file() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string((DEPLOY / "dbvitals-serve.service").read_text())
    return unit


def installed_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit as installed here: only ExecStart's binary differs (pipx puts it in
    /usr/local/bin; this machine's is the test venv's), since verify checks it is executable."""
    shipped = text if text is not None else (DEPLOY / "dbvitals-serve.service").read_text()
    installed = shipped.replace("/usr/local/bin/dbvitals", str(Path(sys.executable).parent / "dbvitals"))
    assert installed.count("\n") == shipped.count("\n") and installed != shipped
    path = tmp_path / "dbvitals-serve.service"
    path.write_text(installed)
    return path


def test_the_systemd_unit_is_hardened_and_verifies(tmp_path):
    analyze = tool("systemd-analyze")
    service = unit_file()["Service"]
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes",
                       "StateDirectory": "dbvitals", "Restart": "on-failure", "PrivateTmp": "yes",
                       "Environment": "XDG_STATE_HOME=%S"}.items():
        assert service.get(key) == value, key
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # verify needs no running systemd (this container has none as PID 1): it parses the unit,
    # checks the binaries are executable and reports unknown keys and bad values on stderr.
    verify = subprocess.run([analyze, "verify", str(installed_unit(tmp_path))], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
    # ... which it does: a typo in a hardening key is reported, not silently ignored.
    typo = installed_unit(tmp_path, (DEPLOY / "dbvitals-serve.service").read_text().replace("ProtectSystem=", "ProtectSystm="))
    said = subprocess.run([analyze, "verify", str(typo)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'ProtectSystm'" in said.stderr, said.stderr
    # The exposure score of the unit's sandboxing, offline: 1.5 of 10 when written; 2 is the bar.
    security = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(installed_unit(tmp_path))],
                              capture_output=True, text=True, timeout=60)
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr


def test_the_units_command_lines_run_without_a_home_and_stop_on_its_signals(tmp_path, redis_db):
    """ExecStart as written (its config path aside), with what DynamicUser gives: no HOME, the
    state directory in XDG_STATE_HOME. ExecReload's SIGHUP keeps it serving; systemd's stop
    signal (SIGTERM, to the main process under KillMode=mixed) ends it cleanly."""
    service = unit_file()["Service"]
    assert service["KillMode"] == "mixed"
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}})
    argv = shlex.split(service["ExecStart"])
    assert argv[:4] == ["/usr/local/bin/dbvitals", "serve", "--config", "/etc/dbvitals/config.toml"], argv
    port = support.free_port()
    argv = [sys.executable, "-m", "console", *argv[1:3], str(config), "--listen", f"127.0.0.1:{port}", *argv[4:]]
    state = tmp_path / "state"
    env = {key: value for key, value in os.environ.items() if key not in {"HOME", "XDG_STATE_HOME"}}
    env["XDG_STATE_HOME"] = str(state)
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        support.wait_for_port(port, process=process)
        assert get(f"http://127.0.0.1:{port}/probe?target=cache")[0] == 200
        process.send_signal(signal.SIGHUP)
        assert get(f"http://127.0.0.1:{port}/probe?target=cache")[0] == 200
        process.send_signal(signal.SIGTERM)
        timeout = float(service["TimeoutStopSec"].rstrip("s"))
        assert process.wait(timeout) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr and "SIGTERM: stopping" in stderr
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert all(path == config or state in path.parents or path.name == "journal.jsonl" for path in written), written


# --- container image --------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in joined.splitlines() if line.strip()]


def builder_answers() -> bool:
    docker = shutil.which("docker") or shutil.which("podman")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode == 0


def test_the_container_image_runs_as_a_user_with_its_state_and_config_as_volumes(tmp_path):
    text = (DEPLOY / "Containerfile").read_text()
    steps = instructions(text)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    ops = [op for op, _ in final]
    [user] = [args for op, args in final if op == "USER"]
    assert user == f"{IMAGE_UID}:{IMAGE_UID}"  # numeric: runAsNonRoot can check it
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op in {"RUN", "COPY"})  # nothing runs as root after
    volumes = {path for op, args in final if op == "VOLUME" for path in json.loads(args)}
    assert volumes == {"/etc/dbvitals", "/var/lib/dbvitals"}
    env = " ".join(args for op, args in final if op == "ENV")
    # The only path dbvitals writes (its state: journal, catalog cache) is the state volume, owned
    # by the user; .pyc files are compiled at build time, never written under a read-only root.
    assert "XDG_STATE_HOME=/var/lib" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert "DBVITALS_CONFIG=/etc/dbvitals/config.toml" in env
    assert any(op == "RUN" and f"chown {IMAGE_UID}:{IMAGE_UID} /var/lib/dbvitals" in args for op, args in final)
    assert any(op == "RUN" and "compileall" in args for op, args in steps)
    assert "python -m venv /opt/dbvitals" in text  # one isolated environment, as pipx makes
    [(_, healthcheck)] = [(op, args) for op, args in final if op == "HEALTHCHECK"]
    assert "/opt/dbvitals/healthcheck.py" in healthcheck
    assert json.loads(next(args for op, args in final if op == "ENTRYPOINT")) == ["dbvitals"]
    assert json.loads(next(args for op, args in final if op == "CMD")) == ["serve", "--listen", f"0.0.0.0:{DEFAULT_PORT}"]
    assert next(args for op, args in final if op == "EXPOSE") == str(DEFAULT_PORT)
    for op, args in steps:
        if op == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            assert sources and all((ROOT / source).exists() for source in sources), args
            assert "." not in sources  # never the whole work tree (.git, .venv) into the image
    if builder_answers():
        build = subprocess.run([shutil.which("docker") or "podman", "build", "-f", str(DEPLOY / "Containerfile"),
                                "-t", "dbvitals-test", str(ROOT)], capture_output=True, text=True, timeout=600)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]


def test_the_images_healthcheck_says_whether_serve_answers(tmp_path, redis_db):
    """The HEALTHCHECK script against a live serve: plain, then with TLS and basic auth (a 401 is
    an answer), and against a port nothing listens on."""
    script = [sys.executable, str(DEPLOY / "healthcheck.py")]

    def healthy(port: int) -> bool:
        env = {**os.environ, "DBVITALS_HEALTHCHECK_PORT": str(port)}
        return subprocess.run(script, env=env, capture_output=True, timeout=30).returncode == 0

    assert not healthy(support.refused_port())
    self_signed(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                                   "basic_auth_users": {"prometheus": bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()}}))
    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}})
    for extra in ([], ["--web.config.file", str(web)]):
        port = support.free_port()
        process = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(config),
                                    "--listen", f"127.0.0.1:{port}", *extra], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            support.wait_for_port(port, process=process)
            assert healthy(port), extra
        finally:
            process.terminate()
            process.wait(15)


# --- Kubernetes -------------------------------------------------------------------------------

def manifests() -> dict[str, dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yml").read_text()) if d]
    by_kind = {d["kind"]: d for d in documents}
    assert len(by_kind) == len(documents)
    return by_kind


def test_the_kubernetes_manifest_runs_serve_non_root_on_a_read_only_root(tmp_path, monkeypatch):
    objects = manifests()
    assert set(objects) == {"ConfigMap", "Deployment", "Service", "ServiceMonitor"}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True and security["capabilities"] == {"drop": ["ALL"]}
    assert container["args"] == ["serve", "--listen", f"0.0.0.0:{DEFAULT_PORT}"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {m["name"] for m in mounts.values()} <= set(volumes)
    # Everything it writes (state; /tmp) is a mounted volume; the config is mounted read-only.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["XDG_STATE_HOME"] == "/var/lib" and "/var/lib/dbvitals" in mounts and "/tmp" in mounts
    assert mounts["/etc/dbvitals"]["readOnly"] is True
    assert volumes[mounts["/etc/dbvitals"]["name"]]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert env["DBVITALS_CONFIG"] == "/etc/dbvitals/" + next(iter(objects["ConfigMap"]["data"]))
    [port] = container["ports"]
    assert port["containerPort"] == DEFAULT_PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/-/healthy", "port": port["name"]}
    service = objects["Service"]
    assert service["spec"]["selector"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]

    # The ConfigMap's config is one dbvitals loads, and the Secret's password lands on its target.
    config = tmp_path / "config.toml"
    config.write_text(objects["ConfigMap"]["data"]["config.toml"])
    secrets = [e for e in container["env"] if "valueFrom" in e]
    for secret in secrets:
        monkeypatch.setenv(secret["name"], "from-the-secret")
    settings = load_config(config)
    assert settings.serve.listen.startswith("127.0.0.1:")  # the manifest's --listen is the exposure
    for secret in secrets:
        name = secret["name"].removeprefix("DBVITALS_TARGETS__").split("__")[0].lower()
        assert settings.targets[name].password.get_secret_value() == "from-the-secret"

    # The ServiceMonitor probes every configured target once on /probe and the exporter on /metrics.
    monitor = objects["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    probed = [e["params"]["target"] for e in monitor["endpoints"] if e["path"] == "/probe"]
    assert sorted(t for targets in probed for t in targets) == sorted(settings.targets)
    assert [e["path"] for e in monitor["endpoints"]].count("/metrics") == 1
    for endpoint in monitor["endpoints"]:
        assert endpoint["port"] == port["name"]


# --- Grafana ----------------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
                "le", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana-dashboard.json").read_text())


def dashboard_expressions() -> list[str]:
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    return [t["expr"] for p in panels for t in p["targets"]]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, label matchers,
    ranges and groupings that are not a function or a keyword."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        following = bare[match.end():].lstrip()[:1]
        if following != "(" and match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def emitted_names(exposition: str) -> set[str]:
    """Every sample name an exposition can carry, from its TYPE lines (a labelled counter with no
    increment yet still declares its family) and its samples."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            suffixes = {"counter": ["", "_total"], "histogram": ["_bucket", "_sum", "_count"],
                        "summary": ["", "_sum", "_count"]}.get(kind, [""])
            names |= {family + suffix for suffix in suffixes}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_the_grafana_dashboard_reads_only_metrics_serve_emits(tmp_path, redis_db):
    board = dashboard()
    assert board["uid"] and board["title"] == "dbvitals"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "target"}
    used = set().union(*(metric_names(e) for e in dashboard_expressions()))
    assert {"dbvitals_findings", "dbvitals_target_up", "dbvitals_exporter_errors_total", "process_resident_memory_bytes",
            "dbvitals_exporter_scrape_duration_seconds_bucket", "dbvitals_build_info", "up"} <= used, used

    config = write_config(tmp_path, {"cache": {"kind": "redis", "url": redis_db.url}}, serve={"min_interval": 300.0})
    from tests.integration.test_serve_hygiene import serving

    with serving(config) as (port, _):
        probe = get(f"http://127.0.0.1:{port}/probe?target=cache")[2]
        own = get(f"http://127.0.0.1:{port}/metrics")[2]
    emitted = emitted_names(probe) | emitted_names(own) | {"up"}  # up: Prometheus's own, per scrape
    assert not used - emitted, sorted(used - emitted)


@pytest.mark.parametrize(("expression", "names"), [
    ('sum by (severity) (dbvitals_findings{severity="critical", target=~"$target"})', {"dbvitals_findings"}),
    ("histogram_quantile(0.95, sum by (le, path) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
    ('a / on (target) group_left b or vector(0)', {"a", "b"}),
    ('count(max by (instance) (up{job=~"dbvitals.*"}) == 0)', {"up"}),
])
def test_metric_names_of_a_promql_expression(expression, names):
    assert metric_names(expression) == names
