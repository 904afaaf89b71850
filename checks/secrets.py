"""Keeping passwords out of everything dbvitals prints, logs or writes."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = {"password", "pass", "pwd", "sslpassword", "authmechanismproperties", "secret", "token"}
# user:password@ in anything that looks like a URL, for free text such as driver errors.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@", re.I)
_PARAM = re.compile(r"(?P<key>(?:password|pass|pwd|sslpassword|secret|token)=)(?P<value>[^&\s]+)", re.I)


def mask_url(url: str) -> str:
    """The URL with its password (userinfo or query parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{hostinfo}"
        elif parts.scheme.startswith("redis") and userinfo:
            # redis://secret@host: a bare userinfo is the password (legacy AUTH form).
            netloc = f"{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text (an exception message, say) with credentials and known secrets removed."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _PARAM.sub(lambda m: f"{m['key']}{MASK}", text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


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
