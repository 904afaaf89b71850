"""`serve --web.config.file`: TLS and basic auth in the file format Prometheus's exporters share
(the exporter-toolkit web config), so an operator writes the file once for every exporter:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients.crt
      min_version: TLS12             # optional: TLS12 or TLS13
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Keys the toolkit knows that dbvitals does not implement (cipher suites, curves, HTTP headers,
client certificates accepted unverified) are refused by name rather than ignored: a file that
asks for more security than it gets must not start a server.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

TOP_KEYS = {"tls_server_config", "basic_auth_users"}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
# The toolkit's client_auth_type values Python's ssl module can honour; RequestClientCert and
# RequireAnyClientCert accept an unverified certificate, which ssl cannot do.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
VERIFIED_CACHE_SIZE = 64
BCRYPT_MAX_PASSWORD = 72  # bytes


class WebConfigError(ValueError):
    """A web config file that cannot be used, phrased for the operator."""


@dataclass
class BasicAuth:
    """The users and their bcrypt hashes. A bcrypt check costs tens of milliseconds by design;
    a credential that passed is remembered (by its SHA-256, never the password) so a scrape every
    few seconds does not pay it each time, as the exporter-toolkit does."""

    users: dict[str, bytes]
    # A hash to check unknown users against, so they take as long to refuse as known ones.
    decoy: bytes = field(default_factory=lambda: bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(10)))
    verified: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allows(self, user: str, password: str) -> bool:
        digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self.lock:
            if digest in self.verified:
                return True
        if len(password.encode()) > BCRYPT_MAX_PASSWORD:
            return False  # bcrypt reads 72 bytes at most (bcrypt 5 refuses more): no such password was hashed
        known = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), known if known is not None else self.decoy) and known is not None
        if ok:
            with self.lock:
                if len(self.verified) >= VERIFIED_CACHE_SIZE:
                    self.verified.clear()
                self.verified.add(digest)
        return ok


@dataclass(frozen=True)
class WebConfig:
    tls: ServerTls | None = None
    auth: BasicAuth | None = None


class ServerTls:
    """The server's TLS context, built afresh when its files change: a renewed certificate (as
    cert-manager or certbot write it) reaches the next connection without a restart, as the
    exporter-toolkit reads its files at each handshake. A renewal that cannot be loaded keeps the
    last good context and is said once."""

    def __init__(self, path: Path, tls: dict[str, Any]) -> None:
        self.path = path
        self.settings = tls
        self.files = [_relative(path, tls[key]) for key in ("cert_file", "key_file", "client_ca_file") if key in tls]
        self.stamp = self._stamp()
        self.current = _tls_context(path, tls)
        self.lock = threading.Lock()

    def _stamp(self) -> tuple[tuple[int, int], ...] | None:
        try:
            return tuple((stat.st_mtime_ns, stat.st_size) for stat in (file.stat() for file in self.files))
        except OSError:
            return None  # a file being replaced: keep what was loaded

    def context(self, warn: Callable[[str], None]) -> ssl.SSLContext:
        stamp = self._stamp()
        with self.lock:
            if stamp is not None and stamp != self.stamp:
                self.stamp = stamp
                try:
                    self.current = _tls_context(self.path, self.settings)
                except WebConfigError as exc:
                    warn(f"the renewed TLS files cannot be used, the previous ones still are: {exc}")
            return self.current


def load_web_config(path: Path) -> WebConfig:
    """The file's TLS context and users; WebConfigError naming the file and what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        return WebConfig()  # an empty file: plain HTTP, no auth, as with the toolkit
    config = _mapping(path, raw, "the file")
    _known(path, config, TOP_KEYS, "")
    tls = ServerTls(path, _checked_tls(path, _mapping(path, config["tls_server_config"], "tls_server_config"))) \
        if "tls_server_config" in config else None
    auth = _users(path, _mapping(path, config["basic_auth_users"], "basic_auth_users")) \
        if "basic_auth_users" in config else None
    return WebConfig(tls, auth)


def _mapping(path: Path, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WebConfigError(f"{path}: {where} must be a mapping of names to values")
    return value


def _known(path: Path, config: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(config) - known)
    if unknown:
        raise WebConfigError(f"{path}: {prefix}{unknown[0]} is not supported by dbvitals serve "
                             f"(supported: {', '.join(prefix + k for k in sorted(known))})")


def _checked_tls(path: Path, tls: dict[str, Any]) -> dict[str, Any]:
    _known(path, tls, TLS_KEYS, "tls_server_config.")
    for key in ("cert_file", "key_file"):
        if not isinstance(tls.get(key), str) or not tls[key]:
            raise WebConfigError(f"{path}: tls_server_config.{key} is required (a file path)")
    if not isinstance(tls.get("client_ca_file", ""), str):
        raise WebConfigError(f"{path}: tls_server_config.client_ca_file must be a file path")
    return tls


def _tls_context(path: Path, tls: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _version(path, tls, "min_version", ssl.TLSVersion.TLSv1_2)
    context.maximum_version = _version(path, tls, "max_version", ssl.TLSVersion.MAXIMUM_SUPPORTED)
    cert_path, key_path = _relative(path, tls["cert_file"]), _relative(path, tls["key_file"])
    try:
        context.load_cert_chain(cert_path, key_path, password=lambda: b"")  # an encrypted key fails, never prompts
    except OSError as exc:
        raise WebConfigError(f"{path}: tls_server_config: cannot load {cert_path} with {key_path}: "
                             f"{exc.strerror or exc}") from None
    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH:
        raise WebConfigError(f"{path}: tls_server_config.client_auth_type {auth_type!r} is not supported "
                             f"(one of {', '.join(CLIENT_AUTH)})")
    context.verify_mode = CLIENT_AUTH[auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        if "client_ca_file" not in tls:
            raise WebConfigError(f"{path}: tls_server_config.client_auth_type {auth_type} needs client_ca_file")
        ca = _relative(path, tls["client_ca_file"])
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"{path}: tls_server_config.client_ca_file {ca}: {exc.strerror or exc}") from None
    return context


def _version(path: Path, tls: dict[str, Any], key: str, default: ssl.TLSVersion) -> ssl.TLSVersion:
    if key not in tls:
        return default
    if tls[key] not in TLS_VERSIONS:
        raise WebConfigError(f"{path}: tls_server_config.{key} {tls[key]!r}: expected one of {', '.join(TLS_VERSIONS)}")
    return TLS_VERSIONS[tls[key]]


def _relative(path: Path, file: str) -> Path:
    return path.parent / file  # an absolute file stays absolute


def _users(path: Path, users: dict[str, Any]) -> BasicAuth:
    hashes: dict[str, bytes] = {}
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
            # The value is a secret's hash: say which user, never echo it.
            raise WebConfigError(f"{path}: basic_auth_users.{user} is not a bcrypt hash "
                                 "($2a$, $2b$ or $2y$, e.g. from `htpasswd -nBC 10 USER`)")
        try:
            bcrypt.checkpw(b"", hashed.encode())  # a hash of the right shape can still be no hash
        except ValueError:
            raise WebConfigError(f"{path}: basic_auth_users.{user} is not a valid bcrypt hash (bad salt)") from None
        hashes[user] = hashed.encode()
    return BasicAuth(hashes)
