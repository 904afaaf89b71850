"""Loading the TOML config: good and bad files as test data, environment overrides, durations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from checks.config import ConfigError, load_config, parse_duration, target_kinds
from checks.registry import load_registry, validate_check_options

CONFIGS = Path(__file__).resolve().parent.parent / "data" / "configs"
EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_good_config_loads_every_kind_of_key():
    settings = load_config(CONFIGS / "good.toml")
    orders, catalog, cache = (settings.targets[n] for n in ("orders", "catalog", "cache"))
    assert (orders.kind, catalog.kind, cache.kind) == ("postgres", "mongodb", "redis")
    assert orders.is_production and orders.timeout == 3 and orders.tags == ["orders"]
    assert (orders.app_pool.instances, orders.app_pool.max_size) == (4, 10)
    assert catalog.app_pool.max_size is None  # the budget then uses the URL's maxPoolSize
    assert catalog.uses_transactions
    assert catalog.expect.ttl[0].after == dt.timedelta(days=30)
    assert cache.expect.ttl[0].max == dt.timedelta(days=7)
    assert settings.suppressions[0].expires == dt.date(2030, 1, 1)
    assert orders.masked_url.startswith("postgresql://app:***@127.0.0.1")
    validate_check_options(settings, load_registry())


def test_example_config_is_valid_with_every_check_option_it_documents():
    settings = load_config(EXAMPLE)
    assert {t.kind for t in settings.targets.values()} == {"postgres", "mongodb", "redis"}
    validate_check_options(settings, load_registry())


BAD = [
    ("misspelt_key.toml", "targets.orders.enviroment: unknown key"),
    ("bad_toml.toml", "not valid TOML"),
    # The kinds are the registered engines' (an installed engine package adds its own).
    ("wrong_kind.toml", f"targets.orders.kind: expected kind = {target_kinds()} (got 'mysql')"),
    ("missing_url.toml", "targets.orders.url: required key is missing"),
    ("wrong_type.toml", "targets.cache.timeout: expected a number, got 'soon'"),
    ("bad_url_scheme.toml", 'targets.orders.url: expected a URL starting with "postgresql://"'),
    ("bad_target_name.toml", 'target name "Orders-DB" must be snake_case'),
]


@pytest.mark.parametrize("name, expected", BAD)
def test_bad_config_is_one_clear_error_naming_the_file_and_key(name, expected):
    path = CONFIGS / name
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message  # one problem, one line
    assert "file-secret-pw" not in message


BAD_CHECKS = [
    ("unknown_check.toml", 'targets.orders.checks."postgres.pooll": no such check'),
    ("unknown_check_option.toml", 'targets.orders.checks."postgres.pool": capacity_wran: unknown option '
                                  "(expected one of: enabled, capacity_warn"),
    ("check_of_other_engine.toml", 'targets.cache.checks."postgres.pool": a postgres check on a redis target'),
    ("check_option_quoted_number.toml", 'targets.orders.checks."postgres.bloat": min_bytes: expected a number, '
                                        "got the string '5' (write it without quotes)"),
    ("check_option_flag_as_number.toml", 'targets.orders.checks."postgres.bloat": min_ratio: expected a number, '
                                         "got true"),
    ("fact_option_quoted_number.toml", 'targets.cache.facts."redis.keyspace": scan_limit: expected a number, '
                                       "got the string '10000' (write it without quotes)"),
]


def test_a_quoted_number_in_check_options_exits_2_naming_the_key(capsys):
    from console.cli import main

    assert main(["check", "--config", str(CONFIGS / "check_option_quoted_number.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert 'targets.orders.checks."postgres.bloat": min_bytes: expected a number' in err


def test_check_options_from_the_environment_are_read_as_toml_values(monkeypatch):
    monkeypatch.setenv('DBVITALS_TARGETS__ORDERS__CHECKS__postgres.bloat__MIN_BYTES', "5")
    monkeypatch.setenv('DBVITALS_TARGETS__ORDERS__CHECKS__postgres.bloat__MIN_RATIO', "0.25")
    settings = load_config(CONFIGS / "good.toml")
    validate_check_options(settings, load_registry())
    assert settings.targets["orders"].checks["postgres.bloat"] == {"min_bytes": 5, "min_ratio": 0.25}


@pytest.mark.parametrize("name, expected", BAD_CHECKS)
def test_bad_check_table_is_an_error_naming_the_file(name, expected):
    path = CONFIGS / name
    settings = load_config(path)
    with pytest.raises(ConfigError) as caught:
        validate_check_options(settings, load_registry())
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_several_problems_are_listed_together(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text('[targets.a]\nkind = "redis"\nurl = "redis://h"\ntimout = 3\n\n[targets.b]\nkind = "postgres"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith("invalid config (2 problems):")
    assert "targets.a.timout: unknown key" in message and "targets.b.url: required key is missing" in message


def test_missing_file_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config file not found: .*dbvitals.toml \(pass --config PATH"):
        load_config(None)


def test_dbvitals_config_variable_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.toml"
    path.write_text('[targets.a]\nkind = "redis"\nurl = "redis://h"\n')
    monkeypatch.setenv("DBVITALS_CONFIG", str(path))
    assert list(load_config(None).targets) == ["a"]


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("DBVITALS_TARGETS__ORDERS__PASSWORD", "from-env-pw")
    monkeypatch.setenv("DBVITALS_TARGETS__ORDERS__TIMEOUT", "9")
    monkeypatch.setenv("DBVITALS_TARGETS__ORDERS__APP_POOL__INSTANCES", "12")
    monkeypatch.setenv("DBVITALS_TARGETS__CACHE__TAGS", '["a", "b"]')
    settings = load_config(CONFIGS / "good.toml")
    orders = settings.targets["orders"]
    assert orders.password.get_secret_value() == "from-env-pw"
    assert orders.timeout == 9
    assert (orders.app_pool.instances, orders.app_pool.max_size) == (12, 10)  # merged, not replaced
    assert settings.targets["cache"].tags == ["a", "b"]
    assert "from-env-pw" not in repr(settings)


def test_environment_key_typo_is_an_error_too(monkeypatch):
    monkeypatch.setenv("DBVITALS_TARGETS__ORDERS__PASSWROD", "x")
    with pytest.raises(ConfigError, match="targets.orders.passwrod: unknown key"):
        load_config(CONFIGS / "good.toml")


def test_unrelated_dbvitals_variables_are_not_keys(monkeypatch):
    monkeypatch.setenv("DBVITALS_TEST_PG_URL", "postgresql://elsewhere/x")
    monkeypatch.setenv("DBVITALS_DEBUG", "1")
    assert set(load_config(CONFIGS / "good.toml").targets) == {"orders", "catalog", "cache"}


@pytest.mark.parametrize(
    "value, seconds",
    [("30d", 30 * 86400), ("24h", 86400), ("15m", 900), ("90s", 90), ("250ms", 0.25), (45, 45), (1.5, 1.5),
     (" 2 h ", 7200), ("2", 2)],
)
def test_durations(value, seconds):
    assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["soon", "10 years", True, None, "-5s", [1]])
def test_bad_durations(value):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


# --- strictness: safety switches, URLs and their parameters, the environment --------------------------

def _write(tmp_path, body: str) -> Path:
    path = tmp_path / "dbvitals.toml"
    path.write_text(body)
    return path


STRICT = [
    ('kind = "postgres"\nurl = "postgresql://db/x"\nallow_fixes = "yes"', "targets.a.allow_fixes: Input should be a valid boolean"),
    ('kind = "postgres"\nurl = "postgresql://db/x"\nallow_fixes = 1', "targets.a.allow_fixes: Input should be a valid boolean"),
    ('kind = "postgres"\nurl = "postgresql://db:99999/x"', "targets.a.url: malformed URL: the port must be a number from 1 to 65535"),
    ('kind = "postgres"\nurl = "postgresql://[fe80::zz]:5432/x"', "targets.a.url: malformed URL: the host in [brackets] is not an IPv6 address"),
    ('kind = "postgres"\nurl = "postgresql://db/x?sslmode=bogus"', "targets.a.url: sslmode='bogus' in the URL: expected one of disable"),
    ('kind = "postgres"\nurl = "postgresql://app:Xq/9#z@db/x"', "targets.a.url: malformed URL: more than one way to read where the password ends"),
    ('kind = "redis"\nurl = "redis://cache:6379/0?socket_timeout=abc"', "targets.a.url: socket_timeout='abc' in the URL: expected a number"),
    ('kind = "redis"\nurl = "redis://cache:6379/abc"', "targets.a.url: the database in the URL path must be a number"),
    ('kind = "mongodb"\nurl = "mongodb://db/app?readPreference=bogus"', "targets.a.url: readPreference='bogus' in the URL: expected one of primary"),
    ('kind = "mongodb"\nurl = "mongodb://db/app"\nuses_transactions = "true"', "targets.a.uses_transactions: Input should be a valid boolean"),
    # A TOML string where a number is expected is a typo, not a number to guess (#22 item 15).
    ('kind = "redis"\nurl = "redis://cache:6379/0"\ntimeout = "5"', "targets.a.timeout: expected a number, got the string '5'"),
    ('kind = "redis"\nurl = "redis://cache:6379/0"\ncheck_timeout = "30"', "targets.a.check_timeout: expected a number, got the string '30'"),
    ('kind = "redis"\nurl = "redis://cache:6379/0"\nmax_sessions = "2"', "targets.a.max_sessions: expected a number, got the string '2'"),
    ('kind = "redis"\nurl = "redis://cache:6379/0"\napp_pool = { instances = "4" }', "targets.a.app_pool.instances: expected a number, got the string '4'"),
    ('kind = "redis"\nurl = "redis://cache:6379/0"\napp_pool = { instances = 4, max_size = "10" }', "targets.a.app_pool.max_size: expected a number, got the string '10'"),
    ('kind = "redis"\nurl = "redis://cache:6379/99999999999999999999"', "targets.a.url: the database in the URL path must be from 0 to 2147483647"),
    ('kind = "redis"\nurl = "redis://cache:6379?db=99999999999999999999"', "targets.a.url: db='99999999999999999999' in the URL: expected a whole number from 0 to 2147483647"),
    ('kind = "redis"\nurl = "redis://cache:6379/0?db=2147483648"', "targets.a.url: db='2147483648' in the URL: expected a whole number from 0 to 2147483647"),
]


@pytest.mark.parametrize("head, expected", [
    ('max_sessions_per_server = "2"', "max_sessions_per_server: expected a number, got the string '2'"),
    ('free_slots_floor = "5"', "free_slots_floor: expected a number, got the string '5'"),
    ('free_slots_floor_percent = "5"', "free_slots_floor_percent: expected a number, got the string '5'"),
    ('[serve]\nmin_interval = "60"', "serve.min_interval: expected a number, got the string '60'"),
])
def test_a_top_level_number_given_as_a_string_is_a_config_error(tmp_path, head, expected):
    path = _write(tmp_path, head + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"invalid config: {path}: {expected} (write it without quotes)"


def test_numbers_from_the_environment_are_read_by_the_field_type(tmp_path, monkeypatch):
    """Environment values are text by nature: converted by the field's type, then held to it."""
    path = _write(tmp_path, '[targets.x]\nkind = "redis"\nurl = "redis://cache:6379/0"\ngroup = "7"\n')
    monkeypatch.setenv("DBVITALS_TARGETS__X__TIMEOUT", "5")
    monkeypatch.setenv("DBVITALS_TARGETS__X__CHECK_TIMEOUT", "2.5")
    monkeypatch.setenv("DBVITALS_TARGETS__X__MAX_SESSIONS", "3")
    monkeypatch.setenv("DBVITALS_TARGETS__X__APP_POOL__INSTANCES", "4")
    monkeypatch.setenv("DBVITALS_TARGETS__X__GROUP", "12")  # text, though it looks like a number
    target = load_config(path).targets["x"]
    assert (target.timeout, target.check_timeout, target.max_sessions, target.app_pool.instances) == (5.0, 2.5, 3, 4)
    assert target.group == "12"
    monkeypatch.setenv("DBVITALS_TARGETS__X__TIMEOUT", "soon")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == ("invalid config: environment variable DBVITALS_TARGETS__X__TIMEOUT: targets.x.timeout: "
                                 "expected a number, got 'soon'")


@pytest.mark.parametrize("body, expected", STRICT)
def test_a_bad_value_is_a_config_error_naming_the_key(tmp_path, body, expected):
    path = _write(tmp_path, "[targets.a]\n" + body + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}: {expected}" in message, message
    assert "Xq/9" not in message


def test_an_error_from_the_environment_names_the_variable_not_the_file(tmp_path, monkeypatch):
    path = _write(tmp_path, '[targets.a]\nkind = "redis"\nurl = "redis://cache:6379/0"\n')
    monkeypatch.setenv("DBVITALS_TARGETS__A__URL", "redis://cache:6379/0?socket_timeout=abc")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "environment variable DBVITALS_TARGETS__A__URL: targets.a.url: socket_timeout='abc'" in str(caught.value)
    assert str(path) not in str(caught.value)
    monkeypatch.delenv("DBVITALS_TARGETS__A__URL")
    monkeypatch.setenv("DBVITALS_TARGETS__A__ALLOW_FIXES", "yes")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "environment variable DBVITALS_TARGETS__A__ALLOW_FIXES: targets.a.allow_fixes" in str(caught.value)
    monkeypatch.setenv("DBVITALS_TARGETS__A__ALLOW_FIXES", "true")
    assert load_config(path).targets["a"].allow_fixes is True


@pytest.mark.parametrize("variable", ["DBVITALS_TARGETS__A", "DBVITALS_TARGETS__"])
def test_an_environment_variable_that_names_no_key_is_an_error(tmp_path, monkeypatch, variable):
    path = _write(tmp_path, '[targets.a]\nkind = "redis"\nurl = "redis://cache:6379/0"\n')
    monkeypatch.setenv(variable, "x")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"environment variable {variable}: names no key of a target" in str(caught.value)


def test_config_errors_exit_2_from_the_command_line(tmp_path, capsys):
    from console.cli import main

    path = _write(tmp_path, '[targets.a]\nkind = "postgres"\nurl = "postgresql://app:Xq/9@db:5432/x"\n')
    assert main(["targets", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "targets.a.url: malformed URL" in err and "Xq/9" not in err and "Traceback" not in err


@pytest.mark.parametrize("password", ["true", "[1]", "{a = 1}", "false"])
def test_a_password_from_the_environment_is_the_text_it_is(monkeypatch, password):
    monkeypatch.setenv("DBVITALS_TARGETS__ORDERS__PASSWORD", password)
    assert load_config(CONFIGS / "good.toml").targets["orders"].password.get_secret_value() == password


def test_an_include_that_names_a_directory_is_an_error(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.toml").write_text('[targets.a]\nkind = "redis"\nurl = "redis://h"\n')
    config = tmp_path / "dbvitals.toml"
    config.write_text('include = ["conf.d"]\n')
    with pytest.raises(ConfigError, match=r'conf.d is a directory: name its files with a glob, e.g. include = \["conf.d/\*.toml"\]'):
        load_config(config)
    config.write_text('include = ["conf.d/*.toml"]\n')
    assert list(load_config(config).targets) == ["a"]


def test_the_kind_error_lists_the_registered_engines():
    assert target_kinds().startswith('"mongodb", "postgres"')
