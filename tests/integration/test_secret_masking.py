"""Passwords never leave dbvitals, whatever they contain: generated over the printable range,
put in the URL (percent-encoded or raw), the `password` key or the environment, for each kind
of target, and grepped for in every output format, in `targets` and in error text. A Redis of
the test's own requires the password, so a wrongly parsed one shows as a failed login.
Fixed seed, bounded examples."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checks.secrets import secret_forms
from console.cli import main
from tests import support

FORMATS = ("text", "json", "sarif", "junit", "markdown")
CONTROL_PASSWORD = "Control-7Hq2-unlikely"


@pytest.fixture
def private_redis():
    server = support.PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


passwords = st.text(
    st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E), st.sampled_from("éß€日\u00a0")),
    min_size=4, max_size=16,
).filter(lambda p: p == p.strip() and not p.isspace())


def _config(tmp_path, kind: str, url: str, password: str | None) -> str:
    lines = [f'journal = "{tmp_path / "journal.jsonl"}"', "[targets.a]", f'kind = "{kind}"',
             f"url = {json.dumps(url)}", "timeout = 0.5"]
    if password is not None:
        lines.append(f"password = {json.dumps(password)}")
    path = tmp_path / "dbvitals.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _leaks(password: str, text: str) -> list[str]:
    return [form for form in secret_forms(password) | {password, quote(password, safe="")} if form in text]


def test_no_output_shows_a_password_whatever_it_contains(private_redis, tmp_path, capsys, monkeypatch):
    import redis

    admin = redis.Redis(port=private_redis.port)
    mongo_port = support.refused_port()

    def outputs_for(password: str, kind: str, where: str, fmt: str) -> tuple[list[str], list[int]]:
        monkeypatch.delenv("DBVITALS_TARGETS__A__PASSWORD", raising=False)
        admin.config_set("requirepass", password)
        admin.auth(password)
        host = {"redis": f"127.0.0.1:{private_redis.port}/0", "postgres": support.PG_URL.split("@")[-1],
                "mongodb": f"127.0.0.1:{mongo_port}/app"}[kind]
        scheme = {"redis": "redis", "postgres": "postgresql", "mongodb": "mongodb"}[kind]
        user = "" if kind == "redis" else "postgres"
        secret = {"url": quote(password, safe=""), "raw": password}.get(where)
        url = f"{scheme}://{user}:{secret}@{host}" if secret is not None else f"{scheme}://{user}{'@' if user else ''}{host}"
        config = _config(tmp_path, kind, url, password if where == "key" else None)
        if where == "env":
            monkeypatch.setenv("DBVITALS_TARGETS__A__PASSWORD", password)
        outputs = []
        codes = []
        for argv in (["targets", "--config", config], ["targets", "--format", "json", "--config", config],
                     ["check", "--check", f"{kind}.connection", "--format", fmt, "--fail-on", "never", "--config", config]):
            codes.append(main(argv))
            captured = capsys.readouterr()
            outputs.append(captured.out + captured.err)
        return outputs, codes

    # What the same commands print with another password, per kind and format: a generated password
    # that is in it anyway (a word of dbvitals' own such as "state", which Hypothesis draws from the
    # source's constants) cannot be told from a leak by searching the output, so it is not judged.
    control: dict[tuple[str, str], str] = {}

    @settings(max_examples=20, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(password=passwords, kind=st.sampled_from(["redis", "postgres", "mongodb"]),
           where=st.sampled_from(["url", "raw", "key", "env"]), fmt=st.sampled_from(FORMATS))
    def run(password: str, kind: str, where: str, fmt: str) -> None:
        if (kind, fmt) not in control:
            control[(kind, fmt)] = "\n".join(outputs_for(CONTROL_PASSWORD, kind, "key", fmt)[0])
        assume(not _leaks(password, control[(kind, fmt)]))
        outputs, codes = outputs_for(password, kind, where, fmt)
        everything = "\n".join(outputs)
        assert not _leaks(password, everything), (password, everything)
        assert 70 not in codes and "Traceback" not in everything
        if 2 in codes:  # only a raw password with characters a URL reserves is refused
            assert where == "raw" and "malformed URL" in everything
        elif kind == "redis" and where != "raw":
            # Parsed as the server expects it (the output is masked, so it is searched, not parsed).
            connected = '"state": "connected"'
            assert connected in outputs[1] or password in connected, outputs[1]

    try:
        run()
    finally:
        admin.config_set("requirepass", "")
        admin.close()


def test_a_replica_url_without_a_password_takes_the_targets(tmp_path, capsys):
    import redis

    password = "rep/l?ca#pw"
    server = support.PrivateRedis("--requirepass", password)
    try:
        url = f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0"
        redis.Redis(port=server.port, password=password).set("session:1", "x")
        replica = f"redis://127.0.0.1:{server.port}/0"
        config = tmp_path / "dbvitals.toml"
        config.write_text(
            f'[targets.a]\nkind = "redis"\nurl = "{url}"\n'
            f'[targets.a.facts."redis.keyspace"]\nreplica_url = "{replica}"\n'
        )
        code = main(["check", "--check", "redis.ttl-coverage", "--format", "json", "--fail-on", "never",
                     "--config", str(config)])
        out = capsys.readouterr().out
        report = json.loads(out)
        assert code == 0 and report["errors"] == [], report["errors"]
        assert password not in out and quote(password, safe="") not in out
    finally:
        server.stop()


def test_fix_history_undo_and_the_journal_never_hold_the_password(tmp_path, capsys, monkeypatch):
    import redis

    import console.formats.sarif_format
    import console.runtime
    from tests.data import fix_checks

    registry = fix_checks.registry()
    for where in (console.runtime, console.formats.sarif_format):  # the modules that load the registry
        monkeypatch.setattr(where, "load_registry", lambda *a, **k: registry)
    password = "pa/ss?#@:%\"'<&> 9"
    server = support.PrivateRedis("--requirepass", password)
    try:
        redis.Redis(port=server.port, password=password).set("session:1", "x")
        config = tmp_path / "dbvitals.toml"
        config.write_text(f'journal = "{tmp_path / "journal.jsonl"}"\n[targets.cache]\nkind = "redis"\n'
                          f'url = "redis://:{quote(password, safe="")}@127.0.0.1:{server.port}/0"\nallow_fixes = true\n')
        outputs = []

        def run(*argv: str) -> int:
            code = main([*argv, "--config", str(config)])
            captured = capsys.readouterr()
            outputs.append(captured.out + captured.err)
            return code

        run("check", "--check", "test.redis-missing-ttl", "--format", "json", "--fail-on", "never")
        [finding] = json.loads(outputs[-1])["findings"]
        assert run("fix", finding["id"], "--yes") == 0
        entry = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])["id"]
        assert run("history") == 0 and run("history", entry) == 0 and run("history", entry, "--format", "json") == 0
        assert run("undo", entry, "--yes") == 0
        written = "\n".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
                            and p.name != "dbvitals.toml")
        assert not _leaks(password, "\n".join(outputs) + written)
    finally:
        server.stop()


def test_reports_stay_valid_with_a_parameter_shaped_key_and_a_password_parameter(tmp_path, capsys):
    """A key named `api token=7:…` and a URL holding ?password=…: masking used to run on the
    serialized text and cut through JSON escapes."""
    import redis
    import xml.etree.ElementTree as ET

    password = 'hun"ter\\2 pw'
    server = support.PrivateRedis("--requirepass", password)
    try:
        client = redis.Redis(port=server.port, password=password)
        with client.pipeline(transaction=False) as pipe:
            for n in range(3000):
                pipe.set(f"api token=7:session:{n}", "x")
            pipe.execute()
        config = tmp_path / "dbvitals.toml"
        url = f"redis://127.0.0.1:{server.port}/0?password={quote(password, safe='')}"
        config.write_text(f'[targets.cache]\nkind = "redis"\nurl = {json.dumps(url)}\n')
        outputs = {}
        for fmt in FORMATS:
            assert main(["check", "--config", str(config), "--format", fmt, "--fail-on", "never"]) == 0
            outputs[fmt] = capsys.readouterr().out
            assert not _leaks(password, outputs[fmt]), fmt
        report = json.loads(outputs["json"])
        json.loads(outputs["sarif"])
        ET.fromstring(outputs["junit"].split("\n", 1)[1])
        assert "api token={id}:session:{id}" in {f["object"] for f in report["findings"]}  # the name, not masked
        assert report["targets"][0]["state"] == "connected"
    finally:
        server.stop()


# Every documented secret parameter of pymongo, libpq/asyncpg and redis-py, on unreachable targets:
# the URL is shown in `targets` and every report format, the values never.
PARAMETER_SECRETS = {
    "mongodb": ("mongodb://127.0.0.1:{port}/app?tls=true&tlsCertificateKeyFile=/nonexistent/k.pem"
                "&tlsCertificateKeyFilePassword=tlsKeyPw-1&proxyHost=127.0.0.1&proxyPassword=proxyPw-2"
                "&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:awsToken-3",
                ["tlsKeyPw-1", "proxyPw-2", "awsToken-3"]),
    "postgres": ("postgresql://app@127.0.0.1:{port}/x?sslpassword=pgKeyPw-4", ["pgKeyPw-4"]),
    "redis": ("rediss://127.0.0.1:{port}/0?ssl_password=redisKeyPw-5", ["redisKeyPw-5"]),
}


def test_secret_url_parameters_never_print(tmp_path, capsys):
    port = support.refused_port()
    lines = [f'journal = "{tmp_path / "journal.jsonl"}"']
    for kind, (url, _) in PARAMETER_SECRETS.items():
        lines += [f"[targets.{kind}]", f'kind = "{kind}"', f"url = {json.dumps(url.format(port=port))}", "timeout = 0.5"]
    config = tmp_path / "dbvitals.toml"
    config.write_text("\n".join(lines) + "\n")
    outputs = []
    for argv in (["targets"], ["targets", "--format", "json"],
                 *(["check", "--check", "*.connection", "--format", fmt, "--fail-on", "never"] for fmt in FORMATS)):
        code = main([*argv, "--config", str(config)])
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
        assert code in (0, 1), outputs[-1]
    everything = "\n".join(outputs)
    assert "Traceback" not in everything
    for kind, (_, secrets) in PARAMETER_SECRETS.items():
        for secret in secrets:
            assert secret not in everything, (kind, secret)
    assert "tlsCertificateKeyFilePassword=***" in everything and "/nonexistent/k.pem" in everything
