"""Passwords never leave dbvitals: URLs, free text and target secrets, as tables of cases."""

from __future__ import annotations

import html
import json
import time

import pytest

from checks.config import config_from_dict
from checks.display import terminal_safe
from checks.secrets import (
    MalformedUrl,
    check_url,
    mask_text,
    mask_url,
    url_password,
    url_secrets,
    url_without_password,
)


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://app:s3cret@db:5432/orders", "postgresql://app:***@db:5432/orders"),
        ("postgresql://app@db/orders", "postgresql://app@db/orders"),
        ("postgresql://db/orders?password=s3cret&connect_timeout=5",
         "postgresql://db/orders?password=***&connect_timeout=5"),
        ("mongodb://root:p%40ss@a:27017,b:27017/app?replicaSet=rs0", "mongodb://root:***@a:27017,b:27017/app?replicaSet=rs0"),
        ("mongodb+srv://u:s3cret@cluster.example/app", "mongodb+srv://u:***@cluster.example/app"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://s3cret@cache:6379/0", "redis://***@cache:6379/0"),  # legacy AUTH form: bare userinfo is the password
        ("rediss://default:s3cret@cache:6380", "rediss://default:***@cache:6380"),
        ("redis://cache:6379/0?socket_timeout=2", "redis://cache:6379/0?socket_timeout=2"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "text, secrets, expected",
    [
        ("could not connect to postgresql://app:s3cret@db/x", (), "could not connect to postgresql://app:***@db/x"),
        ("dsn host=db password=s3cret user=app", (), "dsn host=db password=*** user=app"),
        ("WRONGPASS for hunter22", ("hunter22",), "WRONGPASS for ***"),
        ("short ab stays", ("ab",), "short ab stays"),  # too short to replace safely
        ("nothing secret", ("s3cret",), "nothing secret"),
    ],
)
def test_mask_text(text, secrets, expected):
    assert mask_text(text, secrets) == expected


@pytest.mark.parametrize(
    "url, password, without",
    [
        ("postgresql://app:s3cret@db/x", "s3cret", "postgresql://app@db/x"),
        ("redis://:s3cret@cache:6379/0", "s3cret", "redis://cache:6379/0"),
        ("mongodb://db/app", None, "mongodb://db/app"),
    ],
)
def test_url_password_and_without(url, password, without):
    assert url_password(url) == password
    assert url_without_password(url) == without


def test_target_secrets_cover_url_and_password_and_never_print():
    settings = config_from_dict({"targets": {"orders": {
        "kind": "postgres", "url": "postgresql://app:in-url-pw@db/x", "password": "in-config-pw",
    }}})
    target = settings.targets["orders"]
    assert set(target.secret_values()) == {"in-url-pw", "in-config-pw"}
    assert target.connect_url == "postgresql://app@db/x"  # the config's password wins
    assert "in-url-pw" not in target.masked_url
    for rendered in (repr(settings), str(settings), repr(target), target.model_dump_json()):
        assert "in-config-pw" not in rendered


def test_config_errors_never_echo_a_url():
    from checks.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        config_from_dict({"targets": {"orders": {"kind": "postgres", "url": "mysql://app:s3cret-pw@db/x"}}})
    assert "s3cret-pw" not in str(caught.value)


# --- passwords with reserved characters, linear masking, terminal-safe display ----------------------

@pytest.mark.parametrize(
    "url, password",
    [
        ("postgresql://app:123/x@db/orders", "123/x"),  # an RFC parser reads port 123 and path /x@db/orders
        ("postgresql://app:a?b#c@db/orders", "a?b#c"),
        ("redis://:p@ss:w0rd@cache:6379/0", "p@ss:w0rd"),
        ("mongodb://root:Ab/%41@a:27017,b:27017/app", "Ab/%41"),
    ],
)
def test_mask_url_masks_everything_up_to_the_last_at_and_url_secrets_name_it(url, password):
    masked = mask_url(url)
    assert password not in masked and "***@" in masked
    assert password in url_secrets(url)
    assert password not in mask_text(f"driver said: {url} and {password}", url_secrets(url))


@pytest.mark.parametrize(
    "url, problem",
    [
        ("postgresql://app:Ab/cd@db/x", "more than one way to read where the password ends"),
        ("postgresql://app:a#b@db/x", "more than one way"),
        ("redis://:p@ss@cache:6379", "more than one way"),
        ("postgresql://app@db:99999/x", "port must be a number from 1 to 65535"),
        ("postgresql://app@db:5o32/x", "port must be a number"),
        ("postgresql://app@[::1:5432/x", "expected [IPV6]:PORT"),
        ("postgresql://app@[fe80::zz]:5432/x", "not an IPv6 address"),
        ("postgresql://app@::1:5432/x", "IPv6 address must be written in brackets"),
        ("not a url", "expected SCHEME://"),
    ],
)
def test_check_url_refuses_what_drivers_would_read_another_way(url, problem):
    with pytest.raises(MalformedUrl) as caught:
        check_url(url)
    message = str(caught.value)
    assert problem in message and url not in message and "app" not in message  # never quotes the URL


@pytest.mark.parametrize("url", ["postgresql://app:p%2Fw%3F@db:5432/x?sslmode=require", "postgresql:///x",
                                 "mongodb://u:p@a:27017,b:27018,[::1]:27019/app", "redis://[::1]:6379/0",
                                 "unix:///run/redis.sock?db=2"])
def test_check_url_accepts_well_formed_urls(url):
    check_url(url)


ADVERSARIAL = [
    "a" * 1_000_000,  # one long scheme-like word
    "a://" * 250_000,  # a scheme start at every fourth character
    "x://" + "u" * 999_990 + ":",  # a userinfo that never reaches its @
    "x://u:" + ":" * 999_990,
    "password=" * 111_111,
    "ab:" * 333_333,
    "é" * 1_000_000,
    "=a" * 500_000,  # a value that runs to the end after every "="
    "pass=a" * 166_666,
    "://a:" * 200_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:8]))
def test_masking_a_megabyte_is_linear_not_a_backtracking_hang(text):
    started = time.perf_counter()
    mask_text(text, ("hunter22", "s3cret/?#pw"))
    mask_url(text[:1_000_000])
    # Catastrophic backtracking on a megabyte takes hours; 10 s leaves room for a loaded machine.
    assert time.perf_counter() - started < 10


def test_masked_forms_cover_what_formats_escape():
    secret = 'p"w<&>\\\'x'
    for form in (secret, json.dumps(secret)[1:-1], html.escape(secret)):
        assert mask_text(f"[{form}]", (secret,)) == "[***]"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("sess:1\x1b[31mred", "sess:1\\x1b[31mred"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x7f\x9b\u2028\u202e", "\\x7f\\x9b\\u2028\\u202e"),
        ("prix_€ 日本 Ω", "prix_€ 日本 Ω"),
    ],
)
def test_terminal_safe_shows_control_characters_escaped(text, shown):
    assert terminal_safe(text) == shown


# --- every documented secret URL parameter, for every engine ----------------------------------------

# (url, the secret values it holds, values that are not secret and must stay readable)
SECRET_PARAMETERS = [
    # pymongo: TLS key passphrase, SOCKS proxy password, AWS session token inside the mechanism properties.
    ("mongodb://u:pw1@db:27017/app?tls=true&tlsCertificateKeyFile=/etc/k.pem&tlsCertificateKeyFilePassword=tlsSecret1",
     ["tlsSecret1", "pw1"], ["/etc/k.pem"]),
    ("mongodb://db:27017/app?proxyHost=p&proxyUsername=me&proxyPassword=prox%26Secret2", ["prox%26Secret2", "prox&Secret2"],
     ["proxyUsername=me"]),
    ("mongodb://db/app?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:awsTok3n",
     ["AWS_SESSION_TOKEN:awsTok3n", "awsTok3n"], ["authMechanism=MONGODB-AWS"]),
    # libpq (asyncpg reads the same): password, sslpassword; sslkey and sslcert are paths.
    ("postgresql://db/x?password=pgSecret4&sslkey=/k/client.key&sslcert=/k/c.crt", ["pgSecret4"], ["/k/client.key"]),
    ("postgresql://app@db/x?sslmode=verify-full&sslpassword=keyPass5", ["keyPass5"], ["sslmode=verify-full"]),
    # redis-py: password, ssl_password; ssl_keyfile is a path.
    ("rediss://cache:6380/0?ssl_password=redisKey6&ssl_keyfile=/k/r.key", ["redisKey6"], ["/k/r.key"]),
    ("redis://cache:6379/0?password=redisPw7&socket_timeout=2", ["redisPw7"], ["socket_timeout=2"]),
    # Whatever names itself a secret, token or key in a driver to come.
    ("redis://cache/0?api_key=k3yValue8&client_token=tok9Value&db_secret=sec10Value",
     ["k3yValue8", "tok9Value", "sec10Value"], ["api_key=***"]),
]


@pytest.mark.parametrize("url, secrets, kept", SECRET_PARAMETERS)
def test_every_secret_url_parameter_is_masked_and_known(url, secrets, kept):
    masked = mask_url(url)
    for secret in secrets:
        assert secret not in masked
        assert secret not in mask_text(f"driver said {url}")
    for value in kept:
        assert value in masked
    assert set(secrets) & set(url_secrets(url))  # registered, so free text elsewhere is masked too


def test_a_parameter_shape_inside_a_name_is_data_not_a_secret():
    # A Redis key pattern "api token=7" is a name, not a URL parameter.
    assert mask_text("keys like api token=7 have no TTL") == "keys like api token=7 have no TTL"
    assert mask_text("see redis://h/0?token=abc&x=1") == "see redis://h/0?token=***&x=1"


def test_a_password_that_is_an_ordinary_word_leaves_check_ids_and_severities_alone():
    from checks.model import Finding, Severity
    from checks.secrets import mask_tree

    finding = Finding(id="x", check="postgres.missing-index", severity=Severity.HIGH, target="db",
                      object="t", title="the postgres password", message="m", evidence={"kind": "postgres"})
    masked = mask_tree(finding, ("postgres",))
    assert masked.check == "postgres.missing-index" and masked.severity is Severity.HIGH
    assert masked.title == "the *** password"  # free text is still masked
