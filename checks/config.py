"""The one TOML config: named targets, their expectations and per-check options.

Loaded with pydantic-settings. Sources, strongest first: environment variables (any setting:
`DBVITALS_SERVE__LISTEN=...`, `DBVITALS_TARGETS__ORDERS__PASSWORD=...`), then the TOML file. Unknown keys are errors,
because a misspelt key that is silently ignored is a check that silently does not run.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union, cast
from urllib.parse import parse_qsl, urlsplit

from annotated_types import Gt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.types import Strict as StrictInput
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from checks.engines import engines
from checks.state import config_dir
from checks.secrets import MalformedUrl, check_url, mask_url, remember_secrets, url_secrets, url_without_password

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from checks.tunnels import Forward, Tunnel

DEFAULT_CONFIG_NAME = "dbvitals.toml"
USER_CONFIG_NAME = "config.toml"  # in $XDG_CONFIG_HOME/dbvitals/
TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class ConfigError(Exception):
    """A config problem, already phrased for the user: what, where, what is expected."""


def parse_duration(value: Any) -> dt.timedelta:
    """"30d", "24h", "15m", "90s", "250ms" or a number of seconds."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"30d\", \"24h\" or a number of seconds")
    if isinstance(value, (int, float)):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    raise ValueError("expected a duration such as \"30d\", \"24h\", \"15m\" or a number of seconds")


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]

# Numbers in the file are TOML numbers: timeout = "5" is a typo to report, not a 5 to guess (a
# string was meant for something else, or a unit was left out). The environment, where every
# value is text, is converted by the field's type first (_EnvSource), then held to the same.
Number = Annotated[float, StrictInput()]
Count = Annotated[int, StrictInput(), Gt(0)]
WholeNumber = Annotated[int, StrictInput()]


def duration(text: str) -> dt.timedelta:
    """A Duration field's default as the config writes it ("30s"): the field keeps the text (the
    example config shows it) and validate_default parses it; typed as what the field holds."""
    return cast(dt.timedelta, text)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppPool(Strict):
    """How the application itself connects, for the pool budget."""

    instances: Count = Field(description="How many application processes connect to this target.")
    max_size: Count | None = Field(
        default=None,
        description="The pool size of each process (unset: the URL's pool size, e.g. MongoDB maxPoolSize).",
    )


class ReferenceExpectation(Strict):
    """A reference names cannot reveal: `column` holds values of `references`."""

    column: str = Field(description='"table.column" (Postgres) or "collection.field" (MongoDB).')
    references: str = Field(description='"table.column" or "collection._id" it points at.')

    @field_validator("column", "references")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if "." not in value:
            raise ValueError('expected "table.column" (or "collection.field")')
        return value


class IndexExpectation(Strict):
    """A MongoDB index the schema needs (a pre-deploy gate)."""

    collection: str
    keys: dict[str, int | str] = Field(description="Ordered keys, e.g. { userId = 1, createdAt = -1 }.")
    name: str | None = None
    unique: StrictBool = False
    sparse: StrictBool = False
    partial_filter: dict[str, Any] | None = None
    expire_after: Duration | None = None
    database: str | None = None

    @field_validator("keys")
    @classmethod
    def _not_empty(cls, value: dict[str, int | str]) -> dict[str, int | str]:
        if not value:
            raise ValueError("an index needs at least one key")
        return value


class TtlExpectation(Strict):
    """A retention rule: MongoDB (collection, field, after) or Redis (pattern, max)."""

    collection: str | None = None
    field: str | None = None
    after: Duration | None = None
    filter: dict[str, Any] | None = None
    database: str | None = None
    pattern: str | None = None
    max: Duration | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> TtlExpectation:
        mongo = self.collection is not None
        redis = self.pattern is not None
        if mongo == redis:
            raise ValueError('a TTL rule names either collection + field + after (MongoDB) or pattern + max (Redis)')
        if mongo and (self.field is None or self.after is None):
            raise ValueError("a MongoDB TTL rule needs collection, field and after")
        if redis and self.max is None:
            raise ValueError("a Redis TTL rule needs pattern and max")
        return self


class PersistentExpectation(Strict):
    """Redis keys that are meant to live forever: never flagged for a missing TTL."""

    pattern: str


class QueryExpectation(Strict):
    """A query the application runs, explained (never executed) by the missing-index checks:
    MongoDB's as `collection` + `filter` (+ `sort`), PostgreSQL's as `sql` (with $1, $2 ... for values)."""

    collection: str | None = None
    sql: str | None = Field(default=None, description="PostgreSQL: the statement, parameters as $1, $2 ...")
    filter: dict[str, Any] = Field(default_factory=dict)
    sort: dict[str, int] | None = None
    name: str | None = None
    database: str | None = None


    @model_validator(mode="after")
    def _one_engine(self) -> QueryExpectation:
        if (self.collection is None) == (self.sql is None):
            raise ValueError('a query names either a collection (MongoDB) or sql (PostgreSQL)')
        return self


class Expectations(Strict):
    references: list[ReferenceExpectation] = Field(default_factory=list)
    indexes: list[IndexExpectation] = Field(default_factory=list)
    ttl: list[TtlExpectation] = Field(default_factory=list)
    persistent: list[PersistentExpectation] = Field(default_factory=list)
    queries: list[QueryExpectation] = Field(default_factory=list)


class TargetBase(Strict):
    if TYPE_CHECKING:
        # Each engine's target narrows it to its Literal, the discriminator of Target. Declared for
        # the type checker only: a field here would move `kind` first in every target's field order.
        kind: str

    url: str = Field(description="Connection URL; its pool and timeout parameters are checked too.")
    password: SecretStr | None = Field(default=None, description="Overrides any password in the URL.")
    environment: str | None = Field(default=None, description='e.g. "production"; production is marked in the console.')
    # Strict: "yes" or 1 for a safety switch is a typo to report, not a true to guess.
    allow_fixes: StrictBool = Field(default=False, description="Whether dbvitals may apply fixes here.")
    timeout: Number = Field(default=5.0, gt=0, le=600, description="Connect and per-query timeout, seconds.")
    check_timeout: Number = Field(default=30.0, gt=0, le=3600, description="Time limit for one check, seconds.")
    tags: list[str] = Field(
        default_factory=list,
        description='Labels to select targets by (--tag): "eu", or key=value such as "team=payments".',
    )
    group: str | None = Field(default=None, description="A group to select targets by (--group), e.g. a shard.")
    databases: str | list[str] | None = Field(
        default=None,
        description='Discover databases on the server: "*" or names and globs; each becomes a target '
        'named TARGET/DB (PostgreSQL: templates skipped; Redis: logical databases in use; MongoDB: listDatabases).',
    )
    ssh: str | None = Field(
        default=None, description='Reach the server through an SSH bastion: "user@bastion[:port]" (a local forward).'
    )
    ssh_key: Path | None = Field(default=None, description="Private key for the bastion (default: the agent and ~/.ssh).")
    ssh_known_hosts: Path | None = Field(
        default=None, description="known_hosts file that holds the bastion's host key (default: ~/.ssh/known_hosts)."
    )
    ssh_batch_mode: StrictBool = Field(
        default=True, description="Never prompt (passphrases, unknown host keys): fail instead. Set false to be asked."
    )
    app_pool: AppPool | None = None
    expect: Expectations = Field(default_factory=Expectations)
    checks: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Per-check options and thresholds: [targets.NAME.checks."<check id>"].',
    )
    facts: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Options of what several checks read together: [targets.NAME.facts."<fact id>"].',
    )
    max_sessions: Count | None = Field(
        default=None,
        description="Sessions dbvitals may hold at once on this target's server (host and port), for all "
        "its targets together; the smallest value of the server's targets wins (unset: max_sessions_per_server).",
    )

    @property
    def is_production(self) -> bool:
        return (self.environment or "").lower() in {"production", "prod", "live"}

    # The one timeout policy: `timeout` bounds each connect and each statement at the driver and
    # the server; these are the outer bounds dbvitals puts around them.
    @property
    def connect_deadline(self) -> float:
        """Opening a session: the driver's connect, then on failure the protocol probe that names
        what the port speaks, each within `timeout`, and a margin."""
        return self.timeout * 2 + 2

    @property
    def call_deadline(self) -> float:
        """One read: the server's statement timeout is `timeout`; a second more for the answer."""
        return self.timeout + 1

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    # Set by checks.tunnels once the target's SSH forward is up (or failed): never from the config.
    _forward: Forward | None = PrivateAttr(default=None)
    _tunnel: Tunnel | None = PrivateAttr(default=None)

    @property
    def connect_url(self) -> str:
        """The URL to hand a driver: with the config's password (if set) taking precedence, and
        through the target's SSH forward when it has one."""
        url = url_without_password(self.url) if self.password is not None else self.url
        if self._forward is not None:
            url = self._forward.url(url)
        return url

    @property
    def tunnel_error(self) -> str | None:
        """Why the SSH tunnel to this target cannot carry a connection now, if it cannot (asking
        is what notices a dropped tunnel and reopens it)."""
        return self._tunnel.current_error() if self._tunnel is not None else None

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret: the password key, the URL's password however it parses,
        and passwords in URLs among the check and fact options (a Redis replica_url, say)."""
        values = list(url_secrets(self.url))
        if self.password is not None:
            values.append(self.password.get_secret_value())
        for options in (*self.checks.values(), *self.facts.values()):
            for key, value in options.items():
                if key.endswith("url") and isinstance(value, str):
                    values += url_secrets(value)
        return tuple(dict.fromkeys(v for v in values if v))

    @field_validator("ssh", "ssh_key", "ssh_known_hosts")
    @classmethod
    def _not_an_ssh_option(cls, value: Any, info: ValidationInfo) -> Any:
        # Handed to the ssh command line: a value (or the bastion's user or host) that begins with
        # "-" could be read as an option, and -oProxyCommand=... runs a command.
        if value is None:
            return value
        text = str(value).lstrip()
        if text.startswith("-") or (info.field_name == "ssh" and re.search(r"@\s*-", text)):
            what = "the user and host" if info.field_name == "ssh" else "the path"
            raise ValueError(f'{what} must not begin with "-" (ssh would read it as an option)')
        return value

    @model_validator(mode="after")
    def _remember_secrets(self) -> TargetBase:
        remember_secrets(self.secret_values())
        return self


def url_query(url: str) -> dict[str, str]:
    return {k: v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def check_choice(params: dict[str, str], key: str, choices: tuple[str, ...]) -> None:
    for name, value in params.items():
        if name.lower() == key.lower() and value not in choices:
            raise ValueError(f"{name}={value!r} in the URL: expected one of {', '.join(choices)}")


def check_numbers(params: dict[str, str], keys: tuple[str, ...], *, integer: bool = False,
                  maximum: int | None = None) -> None:
    wanted = {k.lower() for k in keys}
    for name, value in params.items():
        if name.lower() not in wanted:
            continue
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            number = -1
        if number < 0 or number != number or (maximum is not None and number > maximum):
            kind = "a whole number" if integer else "a number"
            upto = f"from 0 to {maximum}" if maximum is not None else "of 0 or more"
            raise ValueError(f"{name}={value!r} in the URL: expected {kind} {upto}")


def valid_url(value: str, schemes: tuple[str, ...], expected: str, *, multi_host: bool = True) -> str:
    if not value.startswith(schemes):
        raise ValueError(expected)
    try:
        check_url(value, multi_host=multi_host)
    except MalformedUrl as exc:
        raise ValueError(str(exc)) from None
    return value


class Suppression(Strict):
    """Silences matching findings, with a reason and an optional expiry."""

    check: str = "*"
    target: str = "*"
    object: str = "*"
    reason: str
    expires: dt.date | None = None


class ServeOptions(Strict):
    """`dbvitals serve`: Prometheus scrapes dbvitals."""

    listen: str = Field(default="127.0.0.1:10187", description="Loopback address and port to listen on.")
    min_interval: Number = Field(
        default=60.0, ge=0, description="Seconds a target's result is reused before its checks run again."
    )
    finding_id_labels: StrictBool = Field(
        default=False, description="Also export one series per finding with its id as a label (cardinality grows "
        "with findings: off by default).",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DBVITALS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    # Each registered engine's target model; `settings_model()` narrows this to their union on `kind`.
    targets: dict[str, TargetBase] = Field(default_factory=dict)
    include: list[str] = Field(
        default_factory=list,
        description='More target files, globs relative to this file: include = ["conf.d/*.toml"].',
    )
    serve: ServeOptions = Field(default_factory=ServeOptions)
    theme: str | None = Field(default=None, description="Console theme name.")
    recheck_every: Duration = Field(
        default=dt.timedelta(seconds=60),
        description='How often the console re-checks each target ("60s", "5m"; "0s": only on demand).',
    )
    journal: Path | None = Field(default=None, description="Fix journal path (JSON lines).")
    suppressions: list[Suppression] = Field(default_factory=list)
    max_sessions_per_server: Count = Field(
        default=2, description="Sessions dbvitals may hold at once on one server (host and port) while checking."
    )
    free_slots_floor: WholeNumber = Field(
        default=5, ge=0,
        description="Connection slots a server must have free for dbvitals to open more than one session "
        "and run more than the connection and pool checks there.",
    )
    free_slots_floor_percent: Number = Field(
        default=5.0, ge=0, le=100,
        description="The same floor as a share of the server's usable slots; the larger of the two applies.",
    )

    @field_validator("targets")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not TARGET_NAME.match(name):
                raise ValueError(
                    f'target name "{name}" must be snake_case (lower-case letters, digits, _) '
                    "so it can be set from the environment"
                )
        return value

    @field_validator("recheck_every")
    @classmethod
    def _not_negative(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(0):
            raise ValueError("expected a duration of 0s or more")
        return value

    @field_validator("journal")
    @classmethod
    def _journal_is_a_file(cls, value: Path | None) -> Path | None:
        # Found at load, not when a fix is half-way: the journal is written before a fix runs.
        if value is None:
            return value
        path = value.expanduser()
        if path.is_dir():
            raise ValueError(f"{path} is a directory: give the path of the journal file (e.g. {path / 'journal.jsonl'})")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise ValueError(f"{parent} is not a directory, so {path} cannot be created")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit order, strongest first: init values (tests), environment, the TOML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        merged = settings_cls.model_config.get("merged_toml")
        if merged is not None:
            sources.append(_DictSource(settings_cls, cast(dict[str, Any], merged)))  # set by load_config
        else:
            toml_file = settings_cls.model_config.get("toml_file")
            if toml_file:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def settings_model() -> type[Settings]:
    """Settings whose targets are the registered engines' target models, told apart by `kind`:
    built when the config is read, so an engine installed as a package adds its kind with no
    edit here."""
    return _settings_for(tuple(engine.target_model for engine in engines().values()))


@functools.cache
def _settings_for(models: tuple[type[TargetBase], ...]) -> type[Settings]:
    target: Any = Annotated[Union[models], Field(discriminator="kind")] if len(models) > 1 else models[0]
    return type("Settings", (Settings,), {
        "__module__": __name__,
        "__annotations__": {"targets": dict[str, target]},
        "targets": Field(default_factory=dict),
    })


def target_kinds() -> str:
    """The registered kinds as a config error lists them: "a", "b" or "c"."""
    quoted = [f'"{kind}"' for kind in engines()]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


class _DictSource(PydanticBaseSettingsSource):
    """The config file with its includes merged in, read once by `load_config`."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


class _EnvSource(PydanticBaseSettingsSource):
    """DBVITALS_<KEY>[__<KEY>...] overrides of any setting (DBVITALS_SERVE__LISTEN,
    DBVITALS_TARGETS__ORDERS__PASSWORD), merged into the file's values; each value read by its
    field's type (text stays text, numbers become numbers, then held to the file's strictness).

    Only variables whose first part names a setting are read: others (DBVITALS_CONFIG, the test
    suite's DBVITALS_TEST_*) are not keys. One that names a setting with a single underscore
    where `__` belongs (DBVITALS_SERVE_LISTEN) is an error, not silently ignored.
    """

    PREFIX = "DBVITALS_"
    TARGETS = "DBVITALS_TARGETS__"

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        settings = self.settings_cls.model_fields
        for key, value in sorted(os.environ.items()):
            if not key.upper().startswith(self.PREFIX):
                continue
            path = [p.lower() for p in key[len(self.PREFIX):].split("__")]
            if path[0] not in settings:
                meant = next((name for name in settings if path[0].startswith(name + "_")), None)
                if meant is not None:
                    rest = path[0][len(meant) + 1:].upper()
                    raise ConfigError(f"invalid config: environment variable {key}: names no setting "
                                      f"(nested keys are joined by two underscores: "
                                      f"{self.PREFIX}{meant.upper()}__{rest})")
                continue
            path = [p for p in path if p]
            if path[0] == "targets":
                if len(path) < 3:
                    raise ConfigError(
                        f"invalid config: environment variable {key}: names no key of a target "
                        f"(expected {self.TARGETS}<TARGET>__<KEY>, e.g. {self.TARGETS}ORDERS__PASSWORD)"
                    )
                models: list[type[BaseModel]] = [TargetBase, *(e.target_model for e in engines().values())]
                reading = _env_reading(models, path[2:])
            else:
                reading = _env_reading([self.settings_cls], path)
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            options = path[0] == "targets" and len(path) >= 5 and path[2] in {"checks", "facts"}
            node[path[-1]] = _env_option(value) if options else _env_scalar(value, reading)
        return tree


def _env_reading(models: list[type[BaseModel]], path: list[str]) -> type | None:
    """How an environment value for the key at `path` of `models` is read: int or float when the
    field holds a number, str when it holds text (a password "true" or "[1]" is that string),
    None for anything else (a flag, a list, a table: read as TOML)."""
    for part in path[:-1]:
        models = [m for m in (_nested_model(model, part) for model in models) if m is not None]
    for model in models:
        field = model.model_fields.get(path[-1])
        if field is None:
            continue
        union = typing.get_origin(field.annotation) in (Union, types.UnionType)
        held = {getattr(kind, "__origin__", kind)  # Annotated[int, ...] -> int, list[str] -> list
                for kind in (typing.get_args(field.annotation) if union else (field.annotation,))} - {type(None)}
        for reading in (int, float):
            if held == {reading}:
                return reading
        if held and held <= {str, Path, SecretStr}:
            return str
    return None


def _nested_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    field = model.model_fields.get(key)
    if field is None:
        return None
    for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _env_option(value: str) -> Any:
    """A check's or fact's option (their models are the checks' own): the value as TOML would
    read it (5, 0.5, true, ["a"]), else the text."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _env_scalar(value: str, reading: type | None = None) -> Any:
    if reading is str:
        return value
    if reading is not None:  # text by nature: the field's type says how to read it
        try:
            return reading(value.strip())
        except ValueError:
            return value  # left as text, to be reported as not a number
    lowered = value.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if value.strip().startswith(("[", "{")):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config PATH, else $DBVITALS_CONFIG, else ./dbvitals.toml if there is one, else
    $XDG_CONFIG_HOME/dbvitals/config.toml (~/.config/...) if there is one, else ./dbvitals.toml
    (which the error then names)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("DBVITALS_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    user = user_config_path()
    if not local.exists() and user is not None and user.exists():
        return user
    return local


def user_config_path() -> Path | None:
    """The user's config: $XDG_CONFIG_HOME/dbvitals/config.toml (None without a home directory)."""
    directory = config_dir()
    return directory / USER_CONFIG_NAME if directory is not None else None


def load_config(path: str | os.PathLike[str] | None = None, *, required: bool = True) -> Settings:
    """Load and validate the config, raising ConfigError with a message fit to print."""
    config_path = resolve_config_path(path)
    if not config_path.exists():
        if required:
            raise ConfigError(
                f"config file not found: {config_path} "
                "(pass --config PATH, set DBVITALS_CONFIG, or create ./dbvitals.toml or "
                f"{user_config_path() or '$XDG_CONFIG_HOME/dbvitals/config.toml'}: `dbvitals init` writes a "
                "starter config that documents every key)"
            )
        model = settings_model()
        bound: type[Settings] = type("Settings", (model,), {"model_config": {**model.model_config, "config_file": config_path}})
    else:
        data, origins = read_with_includes(config_path)
        model = settings_model()
        bound = type("Settings", (model,), {"model_config": {
            **model.model_config, "config_file": config_path, "merged_toml": data, "target_origins": origins}})
    try:
        return bound()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(config_path, exc, origins=cast("dict[str, Path] | None", bound.model_config.get("target_origins")))) from None


def read_with_includes(config_path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The config file's TOML with the targets of its `include` files merged in, and which file
    each target came from. An included file may only add targets; a name defined twice is an
    error naming both files."""
    data = _read_toml(config_path)
    origins = {name: config_path for name in data.get("targets", {}) or {}}
    patterns = data.get("include", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f'{config_path}: include: expected a list of file globs, e.g. include = ["conf.d/*.toml"]')
    targets = dict(data.get("targets") or {})
    for pattern in patterns:
        matched = sorted(config_path.parent.glob(pattern)) if not Path(pattern).is_absolute() else sorted(
            Path("/").glob(pattern.lstrip("/")))
        if not matched and not any(ch in pattern for ch in "*?["):
            raise ConfigError(f"{config_path}: include: {pattern}: no such file")
        if len(matched) == 1 and matched[0].is_dir() and not any(ch in pattern for ch in "*?["):
            raise ConfigError(f"{config_path}: include: {pattern} is a directory: name its files with a glob, "
                              f'e.g. include = ["{pattern.rstrip("/")}/*.toml"]')
        for path in matched:
            if path.resolve() == config_path.resolve() or not path.is_file():
                continue
            extra = _read_toml(path)
            unexpected = sorted(set(extra) - {"targets"})
            if unexpected:
                raise ConfigError(f"{path}: {', '.join(unexpected)}: an included file may only add [targets.NAME] tables")
            for name, table in (extra.get("targets") or {}).items():
                if name in targets:
                    raise ConfigError(f"target {name} is defined twice: in {origins[name]} and in {path}")
                targets[name] = table
                origins[name] = path
    if targets:
        data = {**data, "targets": targets}
    return data, origins


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


def config_from_dict(data: dict[str, Any], *, origin: str = "<config>") -> Settings:
    try:
        return settings_model()(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(Path(origin), exc)) from None


_SECRET_KEYS = {"url", "password"}


def format_validation_error(path: Path, exc: ValidationError, *, origins: dict[str, Path] | None = None) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        # Drop the union tag pydantic inserts (targets.orders.postgres.url -> targets.orders.url).
        if len(loc) >= 3 and loc[0] == "targets" and loc[2] in engines():
            loc.pop(2)
        if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            loc.append("kind")
        key = ".".join(loc) or "(top level)"
        where = (origins or {}).get(loc[1], path) if len(loc) >= 2 and loc[0] == "targets" else path
        lines.append(f"{_origin(where, loc)}: {key}: {_explain(error, loc)}")
    count = len(lines)
    head = f"invalid config ({count} problem{'s' if count != 1 else ''}):" if count > 1 else "invalid config:"
    return head + "\n  " + "\n  ".join(lines) if count > 1 else f"invalid config: {lines[0]}"


def _origin(path: Path, loc: list[str]) -> str:
    """Where the bad value came from: the environment variable that set it, else the file."""
    if not loc:
        return str(path)
    names = {k.upper(): k for k in os.environ if k.upper().startswith(_EnvSource.PREFIX)}
    for end in range(len(loc), 0, -1):
        wanted = "DBVITALS_" + "__".join(part.upper() for part in loc[:end])
        if wanted in names:
            return f"environment variable {names[wanted]}"
    if len(loc) >= 2 and loc[0] == "targets":
        prefix = "DBVITALS_" + "__".join(part.upper() for part in loc[:2]) + "__"
        from_env = sorted(k for upper, k in names.items() if upper.startswith(prefix))
        if from_env and not _in_file(path, loc[1]):
            return f"environment variables {', '.join(from_env)}"
    return str(path)


def _in_file(path: Path, target: str) -> bool:
    try:
        return target in tomllib.loads(path.read_text(encoding="utf-8")).get("targets", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return False


def _explain(error: ErrorDetails, loc: list[str]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; config.example.toml lists every key)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        got = (error.get("ctx") or {}).get("tag")
        return f"expected kind = {target_kinds()}" + (f" (got {got!r})" if got else "")
    if kind in {"float_type", "int_type"} and isinstance(error.get("input"), str):
        text = error["input"]
        try:
            float(text)
        except ValueError:
            return f"expected a number, got {text!r}"
        return f"expected a number, got the string {text!r} (write it without quotes)"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if loc and loc[-1] not in _SECRET_KEYS and "input" in error:
        value = error["input"]
        if isinstance(value, (str, int, float, bool)) and len(repr(value)) < 60:
            return f"{message} (got {value!r})"
    return message
