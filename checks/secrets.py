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

import html
import ipaddress
import json
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
# Shorter values cannot be replaced in free text without mangling it (a password "ab").
MIN_MASKED_LENGTH = 3
_SECRET_PARAMS = {"password", "pass", "pwd", "sslpassword", "authmechanismproperties", "secret", "token"}
# ://user:password@ in free text such as driver errors. The search starts at the literal "://"
# (found by a fast scan, not tried at every position) and the userinfo classes exclude their
# own terminators, so there is no backtracking: linear in the text.
_USERINFO = re.compile(r"://(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@")
_PARAM_KEY_RE = re.compile(r"(?<![a-z])(?:sslpassword|password|pass|pwd|secret|token)=")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PARAM_VALUE = re.compile(r"[^&\s]+")
_RESERVED_HINT = "percent-encode / ? # @ : % [ ] in the user name and password (%2F %3F %23 %40 %3A %25 %5B %5D)"

_known: set[str] = set()


class MalformedUrl(ValueError):
    """A URL dbvitals cannot take apart with certainty; the message never quotes the URL."""


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
        if key.lower() in _SECRET_PARAMS and value:
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
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


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


def mask_text(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Free text (an exception message, a report) with credentials and known secrets removed."""
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"://{m['user']}:{MASK}@", text)
    text = _mask_params(text)
    values = {s for s in (*secrets, *_known) if s and len(s) >= MIN_MASKED_LENGTH}
    forms: set[str] = set()
    for secret in values:
        forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    return text


def _mask_params(text: str) -> str:
    """password=VALUE (and pass, pwd, secret, token...) with VALUE masked. The key is searched
    in an ASCII-lower-cased copy (same length) without IGNORECASE, whose first-character
    prefilter keeps the scan fast; a value once masked is consumed whole: linear."""
    if "=" not in text:
        return text
    lowered = text.translate(_ASCII_LOWER)
    out: list[str] = []
    done = 0
    for key in _PARAM_KEY_RE.finditer(lowered):
        if key.start() < done:
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
