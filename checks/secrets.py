"""Keeping passwords out of everything dbvitals prints, logs or writes.

Two layers. A URL is masked by its structure (the userinfo and password parameters). Free
text (driver errors, reports, the journal) is masked by the configured secret values
themselves, in the forms an output format may have escaped them into: a password that a
driver echoes in pieces, or that a URL parser split in the wrong place, is still a known
string. Every target registers its secrets when its config validates, so the last line of
defence (an internal error, a report writer) masks them without being handed them.

Everything here runs in time linear in the text: a key name of a megabyte must not hang a fix.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import ipaddress
import json
import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
# Shorter values cannot be replaced in free text without mangling it (a password "ab").
MIN_MASKED_LENGTH = 3
# A URL parameter is a secret when its name says so: libpq's sslpassword, pymongo's
# tlsCertificateKeyFilePassword, proxyPassword and authMechanismProperties (it carries
# AWS_SESSION_TOKEN), redis-py's ssl_password, and whatever a future driver calls a password,
# secret, token or key. A parameter naming a file (sslkey, ssl_keyfile, tlsCertificateKeyFile)
# is a path, not a secret.
_SECRET_WORDS = ("password", "passwd", "passphrase", "pwd", "secret", "token", "credential")
_SECRET_NAMES = {"pass", "authmechanismproperties"}
_PATH_PARAMS = {"sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir"}
_PATH_SUFFIXES = ("file", "path", "dir")
# ://user:password@ in free text such as driver errors. The search starts at the literal "://"
# (found by a fast scan, not tried at every position) and the userinfo classes exclude their
# own terminators, so there is no backtracking: linear in the text.
_USERINFO = re.compile(r"://(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@")
# A parameter in free text: a URL's query parameter (after ? or &), or libpq's conninfo
# password=/sslpassword= (after white space). "api token=7" in a key name is data, not a
# parameter. Bounded name, no backtracking: linear in the text.
_QUERY_PARAM = re.compile(r"[?&]([A-Za-z0-9_.\-]{1,64})=|(?<!\S)((?:ssl)?password)=")
_PARAM_VALUE = re.compile(r"[^&\s#]+")
# Fields of a report that name things dbvitals defines (a check id, a severity); a password that
# is an ordinary word ("postgres") must not rewrite them.
_STRUCTURAL_FIELDS = frozenset({"check", "severity", "kind", "schema", "outcome", "state", "language", "safety",
                                "transactional"})
_RESERVED_HINT = "percent-encode / ? # @ : % [ ] in the user name and password (%2F %3F %23 %40 %3A %25 %5B %5D)"

_known: set[str] = set()


class MalformedUrl(ValueError):
    """A URL dbvitals cannot take apart with certainty; the message never quotes the URL."""


def is_secret_param(name: str) -> bool:
    """Whether a URL parameter of this name carries a secret (see _SECRET_WORDS)."""
    folded = name.lower().replace("_", "").replace("-", "").replace(".", "")
    if folded in _SECRET_NAMES:
        return True
    if folded in _PATH_PARAMS or folded.endswith(_PATH_SUFFIXES):
        return any(word in folded for word in _SECRET_WORDS)  # a ...FilePassword is a secret
    return "key" in folded or any(word in folded for word in _SECRET_WORDS)


def remember_secrets(values: tuple[str, ...] | list[str]) -> None:
    """Register secrets of the loaded config, so every output path masks them."""
    _known.update(v for v in values if v and len(v) >= MIN_MASKED_LENGTH)


def known_secrets() -> tuple[str, ...]:
    return tuple(_known)


def check_url(url: str, *, multi_host: bool = True) -> None:
    """Raise MalformedUrl unless the URL parses one way only: a userinfo drivers would split
    elsewhere (an unescaped / ? # or @ in a password), a bad port or a bad IPv6 literal."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise MalformedUrl("malformed URL: expected SCHEME://[USER[:PASSWORD]@]HOST[:PORT]/...")
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    authority, tail = rest[:end], rest[end:]
    if "@" in tail or authority.count("@") > 1:
        raise MalformedUrl(f"malformed URL: more than one way to read where the password ends: {_RESERVED_HINT}")
    hostinfo = authority.rpartition("@")[2]
    for host in hostinfo.split(",") if multi_host else [hostinfo]:
        _check_host(host)
    if any(c.isspace() for c in authority):
        raise MalformedUrl(f"malformed URL: white space in the user, password or host part: {_RESERVED_HINT}")
    try:
        urlsplit(url)  # unbalanced [ ] anywhere before the path; ports were checked per host above
    except ValueError:
        raise MalformedUrl(f"malformed URL: it cannot be parsed: {_RESERVED_HINT}") from None


def _check_host(host: str) -> None:
    if host.startswith("["):
        literal, bracket, after = host[1:].partition("]")
        try:
            ipaddress.IPv6Address(literal.split("%", 1)[0])
        except ValueError:
            raise MalformedUrl("malformed URL: the host in [brackets] is not an IPv6 address") from None
        if not bracket or (after and not after.startswith(":")):
            raise MalformedUrl("malformed URL: expected [IPV6]:PORT")
        port = after[1:] if after else None
    else:
        if host.count(":") > 1:
            raise MalformedUrl("malformed URL: an IPv6 address must be written in brackets, e.g. [::1]:5432")
        name, colon, port_text = host.partition(":")
        port = port_text if colon else None
    if port is not None and port != "":
        if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise MalformedUrl("malformed URL: the port must be a number from 1 to 65535")


def url_secrets(url: str) -> tuple[str, ...]:
    """Every value in the URL that could be a secret, however a parser splits it: the
    password (everything between the first : and the last @) as written and decoded, and
    password parameters."""
    values: list[str] = []
    rest = url.partition("://")[2]
    if "@" in rest:
        userinfo = rest.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        if colon:
            values += [password, unquote(password)]
        elif url.startswith(("redis", "unix")):
            values += [userinfo, unquote(userinfo)]  # legacy redis://PASSWORD@host
        rfc = url_password(url)
        if rfc:
            values += [rfc, unquote(rfc)]
    query = rest.partition("?")[2]
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if is_secret_param(unquote(key)) and value:
            values += [value, unquote(value)]
    return tuple(dict.fromkeys(v for v in values if v))


def mask_url(url: str) -> str:
    """The URL with its password (userinfo or query parameter) replaced by ***.

    The userinfo is everything up to the last @, not the RFC authority: a password holding an
    unescaped / or ? would otherwise be printed as part of the host or path."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return mask_text(url)
    if "@" in rest:
        userinfo, _, hostinfo = rest.rpartition("@")
        if ":" in userinfo:
            rest = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostinfo}"
        elif scheme.startswith("redis") and userinfo:
            rest = f"{MASK}@{hostinfo}"  # redis://secret@host: a bare userinfo is the password (legacy AUTH form)
    masked = f"{scheme}://{rest}"
    try:
        parts = urlsplit(masked)
    except ValueError:
        return _mask_params(masked)
    query = "&".join(_mask_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _mask_pair(pair: str) -> str:
    """name=VALUE as written, VALUE masked where the name says secret."""
    key, equals, value = pair.partition("=")
    return f"{key}={MASK}" if equals and value and is_secret_param(unquote(key)) else pair


def secret_forms(secret: str) -> set[str]:
    """The secret as each output format may have escaped it (JSON, XML/HTML, URL, repr)."""
    forms = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        html.escape(secret, quote=True),
        html.escape(secret, quote=False),
        html.escape(secret, quote=True).replace("&#x27;", "&apos;"),
        quote(secret, safe=""),
        repr(secret)[1:-1],
    }
    return {f for f in forms if len(f) >= MIN_MASKED_LENGTH}


class Masker:
    """Masks free text with a fixed set of secrets; the escaped forms are worked out once, so a
    report of many strings costs one pass over each string per form, not a rebuild per string."""

    def __init__(self, secrets: tuple[str, ...] | list[str] = ()) -> None:
        values = {s for s in (*secrets, *_known) if s and len(s) >= MIN_MASKED_LENGTH}
        forms: set[str] = set()
        for secret in values:
            forms |= secret_forms(secret)
        self.forms = sorted(forms, key=len, reverse=True)

    def text(self, text: str) -> str:
        if "://" in text:
            text = _USERINFO.sub(lambda m: f"://{m['user']}:{MASK}@", text)
        text = _mask_params(text)
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def tree(self, value: Any, field: str | None = None) -> Any:
        """Every string in a structure of dicts, lists, tuples and dataclasses masked, keys
        included, before it is serialized: masking serialized text could cut through an escape
        and leave a report that no longer parses. Enum members, dbvitals' own identifiers (a
        check id, a severity) and values that hold no text (numbers, datetimes) stay as they
        are; bytes become masked text."""
        if field in _STRUCTURAL_FIELDS or isinstance(value, (enum.Enum, bool, int, float)) or value is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.tree(k) if isinstance(k, str) else k: self.tree(v, k if isinstance(k, str) else None)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.tree(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{f.name: self.tree(getattr(value, f.name), f.name)
                                                 for f in dataclasses.fields(value) if f.init})
        if isinstance(value, (bytes, bytearray)):
            return self.text(bytes(value).decode("utf-8", "backslashreplace"))
        return value


def mask_text(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Free text (an exception message, a report) with credentials and known secrets removed."""
    return Masker(secrets).text(text)


def mask_tree(value: Any, secrets: tuple[str, ...] | list[str] = ()) -> Any:
    """A structure (dicts, lists, dataclasses) with every string in it masked: see Masker.tree."""
    return Masker(secrets).tree(value)


def _mask_params(text: str) -> str:
    """?name=VALUE and &name=VALUE with VALUE masked where the name says secret (is_secret_param);
    a value once masked is consumed whole: linear."""
    if "=" not in text:
        return text
    out: list[str] = []
    done = 0
    for key in _QUERY_PARAM.finditer(text):
        if key.start() < done or not is_secret_param(key[1] or key[2]):
            continue
        value = _PARAM_VALUE.match(text, key.end())
        if value:
            out += [text[done:key.end()], MASK]
            done = value.end()
    out.append(text[done:])
    return "".join(out)


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def url_password_decoded(url: str) -> str | None:
    """The URL's password as a driver sends it (percent-decoded)."""
    password = url_password(url)
    return unquote(password) if password is not None else None


def url_without_password(url: str) -> str:
    """The URL minus the password in its userinfo (the user stays), for when the config's
    `password` key supplies it: drivers would otherwise prefer the one in the URL."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}@{hostinfo}" if user else hostinfo
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
