"""Passwords never leave dbvitals: URLs, free text and target secrets, as tables of cases."""

from __future__ import annotations

import pytest

from checks.config import config_from_dict
from checks.secrets import mask_text, mask_url, url_password, url_without_password


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
