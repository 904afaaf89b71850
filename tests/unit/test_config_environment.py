"""Every setting can be set from the environment, read by its field's type: the test walks the
config model, so a setting added later is covered without an edit here."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path
from types import UnionType
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from checks.config import ConfigError, load_config, settings_model
from checks.engines import engines

# One target per registered engine, each with an app_pool so its keys can be set one at a time.
TARGETS = {
    "postgres": 'url = "postgresql://app@db.internal:5432/orders"',
    "mongodb": 'url = "mongodb://db.internal:27017/app"',
    "redis": 'url = "redis://cache.internal:6379/0"',
    "sqlite": 'path = "/var/lib/app/app.db"',
}
ENV_URLS = {
    "postgres": "postgresql://app@env.internal:5433/orders",
    "mongodb": "mongodb://env.internal:27018/app",
    "redis": "redis://env.internal:6380/1",
}
TEXT = {"listen": "127.0.0.1:9999", "ssh": "me@bastion.internal:2222",
        "migration_scratch": "postgresql://app@scratch.internal:5432/scratch"}
DERIVED = {("sqlite", "url")}  # set from path by the engine's model: giving both is an error


def held(field: Any) -> list[Any]:
    """The types a field may hold, None and Annotated[...] wrappers aside."""
    kinds = typing.get_args(field.annotation) if typing.get_origin(field.annotation) in (typing.Union, UnionType) \
        else (field.annotation,)
    return [typing.get_args(k)[0] if typing.get_origin(k) is typing.Annotated else k
            for k in kinds if k is not type(None)]


def scalars(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, field) for every setting of `model` that holds one value, nested models walked."""
    found = []
    for name, field in model.model_fields.items():
        kinds = held(field)
        nested = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
        if nested:
            found += scalars(nested[0], (*prefix, name))
        elif all(_scalar(k) for k in kinds) and kinds:
            found.append(((*prefix, name), field))
    return found


def _scalar(kind: Any) -> bool:
    kind = typing.get_origin(kind) or kind
    return kind in (bool, int, float, str, Path, SecretStr, dt.timedelta, typing.Literal)


def value_for(path: tuple[str, ...], field: Any, kind_of_target: str | None) -> tuple[str, Any] | None:
    """The text to put in the environment and the value the setting must then hold (None: skip)."""
    kind = held(field)[0]
    default = field.default if isinstance(field.default, (int, float)) else None
    name = path[-1]
    if typing.get_origin(kind) is typing.Literal:
        choices = [c for c in typing.get_args(kind) if c != field.default]
        return (choices[0], choices[0]) if len(typing.get_args(kind)) > 1 else None  # `kind` itself: fixed
    if kind is bool:
        return ("false", False) if field.default else ("true", True)
    if kind is int:
        return str((default or 2) + 1), (default or 2) + 1
    if kind is float:
        return str((default or 2) + 1.5), (default or 2) + 1.5
    if kind is dt.timedelta:
        return "7s", dt.timedelta(seconds=7)
    if kind is Path:
        return "/srv/from-env/" + name, Path("/srv/from-env/" + name)
    if kind is SecretStr:
        return "true", "true"  # text, whatever it looks like
    if name == "url":
        return ENV_URLS[kind_of_target], ENV_URLS[kind_of_target] if kind_of_target else None
    text = TEXT.get(name, "12")  # text, though it looks like a number
    return text, text


def _read(settings: Any, path: tuple[str, ...]) -> Any:
    value = settings
    for part in path:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _config(tmp_path: Path) -> Path:
    lines = []
    for kind, location in TARGETS.items():
        if kind in engines():
            lines += [f"[targets.{kind}_target]", f'kind = "{kind}"', location, "app_pool = { instances = 1 }", ""]
    path = tmp_path / "dbvitals.toml"
    path.write_text("\n".join(lines))
    return path


def _cases() -> list[tuple[tuple[str, ...], Any, str | None]]:
    cases: list[tuple[tuple[str, ...], Any, str | None]] = [
        (path, field, None) for path, field in scalars(settings_model()) if path[0] != "targets"]
    for kind, engine in sorted(engines().items()):
        cases += [(("targets", f"{kind}_target", *path), field, kind) for path, field in scalars(engine.target_model)
                  if (kind, path[-1]) not in DERIVED]
    return cases


def test_the_walk_reaches_every_section():
    paths = {".".join(path) for path, _, _ in _cases()}
    assert {"serve.listen", "serve.min_interval", "max_sessions_per_server", "theme", "journal",
            "targets.postgres_target.timeout", "targets.redis_target.app_pool.max_size"} <= paths


def test_every_scalar_setting_is_set_from_the_environment(tmp_path, monkeypatch):
    config = _config(tmp_path)
    checked = []
    for path, field, kind in _cases():
        case = value_for(path, field, kind)
        if case is None:
            continue
        text, expected = case
        variable = "DBVITALS_" + "__".join(part.upper() for part in path)
        with monkeypatch.context() as patch:
            patch.setenv(variable, text)
            try:
                settings = load_config(config)
            except ConfigError as exc:
                pytest.fail(f"{variable}={text}: {exc}")
            assert _read(settings, path) == expected, variable
        checked.append(variable)
    assert "DBVITALS_SERVE__LISTEN" in checked and len(checked) > 40, checked


def test_a_variable_with_one_underscore_where_two_belong_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DBVITALS_SERVE_LISTEN", "127.0.0.1:9999")
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path))
    assert str(caught.value) == ("invalid config: environment variable DBVITALS_SERVE_LISTEN: names no setting "
                                 "(nested keys are joined by two underscores: DBVITALS_SERVE__LISTEN)")


def test_a_bad_number_from_the_environment_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DBVITALS_SERVE__MIN_INTERVAL", "soon")
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path))
    assert str(caught.value) == ("invalid config: environment variable DBVITALS_SERVE__MIN_INTERVAL: "
                                 "serve.min_interval: expected a number, got 'soon'")
