"""Key patterns: `session:8f14e45f-…` and `session:c9f0f895-…` are both `session:{uuid}`.

`infer_pattern` replaces the variable parts of a key name with placeholders; it runs once
per scanned key, so it has a fast path for names without digits. `pattern_glob_and_regex`
turns a pattern back into a SCAN MATCH glob and a Python regex, so that the check that
reports a pattern and the fix executor that EXPIREs its keys agree on which keys it holds.
`rule_matches` decides whether a declared rule (`session:*`, `session:{userId}`) covers
an inferred pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Alternatives are tried left to right at each position: the most specific shapes first.
_VARIABLE = re.compile(
    r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<uuid>(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f]))"
    r"|(?P<date>(?<![0-9])(?:19|20)\d\d[-/](?:0[1-9]|1[0-2])(?:[-/](?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?)?(?![0-9]))"
    r"|(?P<ip>(?<![0-9.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9.]))"
    r"|(?P<objectid>(?<![0-9A-Za-z])(?=[0-9]*[a-f])(?=[a-f]*[0-9])[0-9a-f]{24}(?![0-9A-Za-z]))"
    r"|(?P<hash>(?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])(?=[a-fA-F]*[0-9])(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32})(?![0-9A-Za-z]))"
    r"|(?P<hex>(?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])(?=[a-fA-F]*[0-9])[0-9a-fA-F]{12,}(?![0-9A-Za-z]))"
    r"|(?P<ts>(?<![0-9A-Za-z.])1\d{9}(?:\d{3})?(?![0-9A-Za-z]))"
    r"|(?P<compactdate>(?<![0-9A-Za-z])(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![0-9A-Za-z]))"
    r"|(?P<id>(?<![0-9A-Za-z])\d+(?![0-9A-Za-z]))"
    r"|(?P<token>(?<![0-9A-Za-z_-])(?=[A-Za-z_-]*[0-9])(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}={0,2}(?![0-9A-Za-z_-]))"
)
_PLACEHOLDER = {
    "email": "{email}",
    "uuid": "{uuid}",
    "date": "{date}",
    "ip": "{ip}",
    "objectid": "{objectid}",
    "hash": "{hash}",
    "hex": "{hex}",
    "ts": "{ts}",
    "compactdate": "{date}",
    "id": "{id}",
    "token": "{token}",
}
_HAS_DIGIT = re.compile(r"[0-9]")
# Placeholders produced here, plus `{name}` (a collapsed literal) and `{...}` in declared rules.
_PLACEHOLDER_TEXT = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
SEPARATORS = ":/|#"
_SEGMENTS = re.compile(r"([:/|#])")


def _substitute(match: re.Match[str]) -> str:
    return _PLACEHOLDER[match.lastgroup or "id"]


def display_key(key: bytes | str) -> str:
    """A key as text: UTF-8, with undecodable bytes shown as \\xNN."""
    return key if isinstance(key, str) else key.decode("utf-8", "backslashreplace")


def infer_pattern(key: bytes | str) -> str:
    """The key's name with its variable parts replaced by placeholders."""
    if isinstance(key, bytes):
        return _infer_bytes(key)
    name = key
    if not _HAS_DIGIT.search(name):
        # No digit: only an email can vary here (hex ids, uuids, numbers all carry digits).
        return _VARIABLE.sub(_substitute, name) if "@" in name else name
    return _infer_by_segment(name)


def infer_pattern_whole(name: str) -> str:
    """The reference: one regex pass over the whole name (what `infer_pattern` must equal)."""
    return _VARIABLE.sub(_substitute, name)


_LITERAL_SEGMENTS: dict[str, str] = {}  # segments that stay as they are ("session", "profile")
_LITERAL_CACHE_SIZE = 50_000
_DATE_TIME_SPLIT = re.compile(r"(?:19|20)\d\d[-/]\d\d[-/]\d\d[T ]\d\d\Z")
_COMPACT_DATE = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\Z")


def _infer_by_segment(name: str) -> str:
    """Per `:`-separated segment, with the answers for literal segments and for all-digit ones
    found without the regex: a million keys go through here. Only a date-time (whose time has
    colons) spans segments; such a name takes the whole-name pass."""
    segments = name.split(":")
    out = []
    for segment in segments:
        known = _LITERAL_SEGMENTS.get(segment)
        if known is not None:
            out.append(known)
        elif segment.isdigit() and segment.isascii():
            length = len(segment)
            if length in (10, 13) and segment[0] == "1":
                out.append("{ts}")
            elif length == 8 and _COMPACT_DATE.match(segment):
                out.append("{date}")
            else:
                out.append("{id}")
        else:
            if _DATE_TIME_SPLIT.search(segment):
                return _VARIABLE.sub(_substitute, name)
            inferred = _VARIABLE.sub(_substitute, segment)
            if inferred == segment:
                if len(_LITERAL_SEGMENTS) >= _LITERAL_CACHE_SIZE:
                    _LITERAL_SEGMENTS.clear()
                _LITERAL_SEGMENTS[segment] = segment
            out.append(inferred)
    return ":".join(out)


_LITERAL_BYTES: dict[bytes, str] = {}  # the same segments as read off the wire


def _infer_bytes(key: bytes) -> str:
    """`infer_pattern` of a key as SCAN returns it, without decoding it whole: the segments
    already known as literals and the all-digit ones are answered from the bytes (a colon is
    never part of a multi-byte UTF-8 character, so the segments decode one by one as the
    name does); any other segment is inferred as text, and a date-time sends the whole name
    through `_infer_by_segment`."""
    out = []
    for segment in key.split(b":"):
        known = _LITERAL_BYTES.get(segment)
        if known is not None:
            out.append(known)
        elif segment.isdigit():  # bytes: ASCII digits only
            length = len(segment)
            if length in (10, 13) and segment[0] == 0x31:  # "1"
                out.append("{ts}")
            elif length == 8 and _COMPACT_DATE.match(segment.decode()):
                out.append("{date}")
            else:
                out.append("{id}")
        else:
            text = segment.decode("utf-8", "backslashreplace")
            if _DATE_TIME_SPLIT.search(text):
                return _infer_by_segment(display_key(key))
            inferred = _VARIABLE.sub(_substitute, text) if _HAS_DIGIT.search(text) or "@" in text else text
            if inferred == text:
                if len(_LITERAL_BYTES) >= _LITERAL_CACHE_SIZE:
                    _LITERAL_BYTES.clear()
                _LITERAL_BYTES[segment] = text
            out.append(inferred)
    return ":".join(out)


def split_segments(pattern: str) -> list[str]:
    """`a:b/c` -> ["a", ":", "b", "/", "c"]: separators kept, so joining gives the pattern back."""
    return _SEGMENTS.split(pattern)


def is_placeholder(segment: str) -> bool:
    return bool(_PLACEHOLDER_TEXT.fullmatch(segment))


# --- From a pattern back to the keys it names -----------------------------------------------------

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
_UNDECODABLE = re.compile(r"\\x[0-9a-f]{2}")


def _glob_literal(literal: str) -> str:
    """Glob-escaped literal text; a byte shown as \\xNN (not UTF-8) matches any one byte,
    since the glob runs on raw bytes: the regex, run on the displayed key, stays exact."""
    pieces = _UNDECODABLE.split(literal)
    return "?".join(_GLOB_SPECIAL.sub(r"\\\1", piece) for piece in pieces)


def pattern_glob_and_regex(pattern: str) -> tuple[str, str]:
    """(SCAN MATCH glob, anchored Python regex) for the keys an inferred pattern stands for.

    Every placeholder becomes `*` in the glob (SCAN narrows the candidates on the server)
    and, in the regex, exactly what `infer_pattern` would have replaced with it — so a key
    matches the regex if and only if it belongs to this pattern (`session:{uuid}` does not
    take `session:admin`). `{name}` (a collapsed literal) matches any text without a
    separator, `{any}` (what was left when too many patterns appeared) any text at all; a
    `*` in a pattern is a literal `*` of the key names.
    """
    glob_parts: list[str] = []
    regex_parts: list[str] = []
    position = 0
    for match in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", pattern):
        literal = pattern[position:match.start()]
        glob_parts.append(_glob_literal(literal))
        regex_parts.append(re.escape(literal))
        glob_parts.append("*")
        if match.group(1) == "any":
            regex_parts.append(".*")
        else:
            regex_parts.append(_PLACEHOLDER_REGEX.get(match.group(1), f"[^{re.escape(SEPARATORS)}]+"))
        position = match.end()
    literal = pattern[position:]
    glob_parts.append(_glob_literal(literal))
    regex_parts.append(re.escape(literal))
    glob = re.sub(r"\*{2,}", "*", "".join(glob_parts))
    return glob, "^" + "".join(regex_parts) + r"\Z"


def _group_regex(name: str) -> str:
    """The alternative of _VARIABLE that produces one placeholder, as a standalone regex."""
    source = _VARIABLE.pattern
    start = source.index(f"(?P<{name}>")
    depth = 0
    for index in range(start, len(source)):
        if source[index] == "(" and source[index - 1] != "\\":
            depth += 1
        elif source[index] == ")" and source[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return "(?:" + source[start + len(f"(?P<{name}>"):index] + ")"
    raise ValueError(name)


def _placeholder_regexes() -> dict[str, str]:
    """Per placeholder, a regex for exactly the text `infer_pattern` replaces with it: its own
    alternative(s), each guarded against the alternatives tried before it at that position."""
    groups = list(_PLACEHOLDER)
    alternatives = {g: _group_regex(g) for g in groups}
    by_placeholder: dict[str, list[str]] = {}
    for index, group in enumerate(groups):
        earlier = "|".join(alternatives[g] for g in groups[:index])
        guarded = f"(?:(?!{earlier}){alternatives[group]})" if earlier else alternatives[group]
        by_placeholder.setdefault(_PLACEHOLDER[group].strip("{}"), []).append(guarded)
    return {name: "(?:" + "|".join(parts) + ")" for name, parts in by_placeholder.items()}


_PLACEHOLDER_REGEX = _placeholder_regexes()


def key_in_pattern(key: bytes | str, pattern: str) -> bool:
    """Whether a key belongs to an inferred pattern (what the fix executor decides per key)."""
    return re.fullmatch(pattern_glob_and_regex(pattern)[1], display_key(key)) is not None


# --- Declared rules ----------------------------------------------------------------------------------

def _rule_regex(rule: str) -> re.Pattern[str]:
    """A declared pattern as a regex over pattern text: `*` is anything, `{anything}` one
    or more characters (a placeholder of ours, or a literal the rule leaves open)."""
    parts: list[str] = []
    position = 0
    for match in re.finditer(r"\{[^{}]*\}|\*", rule):
        parts.append(re.escape(rule[position:match.start()]))
        parts.append(".*" if match.group(0) == "*" else ".+")
        position = match.end()
    parts.append(re.escape(rule[position:]))
    return re.compile("".join(parts), re.S)


def rule_matches(rule: str, pattern: str, example: str | None = None) -> bool:
    """Whether a declared rule covers an inferred pattern (or, failing that, its example key)."""
    regex = _rule_regex(rule)
    if regex.fullmatch(pattern):
        return True
    return example is not None and regex.fullmatch(example) is not None


def first_matching(rules: Iterable[str], pattern: str, example: str | None = None) -> str | None:
    """The most specific declared rule covering the pattern: the one with the most literal text."""
    matching = [r for r in rules if rule_matches(r, pattern, example)]
    if not matching:
        return None
    return max(matching, key=lambda r: len(re.sub(r"\{[^{}]*\}|\*", "", r)))


# --- Words that mark short-lived data --------------------------------------------------------------

EPHEMERAL_WORDS: dict[str, str] = {
    "session": "session", "sessions": "session", "sess": "session",
    "cache": "cache", "cached": "cache", "caches": "cache",
    "rate": "rate limit", "ratelimit": "rate limit", "rl": "rate limit", "throttle": "rate limit",
    "limiter": "rate limit", "quota": "rate limit",
    "lock": "lock", "locks": "lock", "mutex": "lock", "lease": "lock",
    # A streak lapses once a period is missed: a key the lapse never removes counts on for ever.
    "streak": "streak", "streaks": "streak",
    "token": "token", "tokens": "token", "jwt": "token", "refresh": "token", "csrf": "token", "nonce": "token",
    "otp": "one-time code", "2fa": "one-time code", "mfa": "one-time code", "verify": "one-time code",
    "verification": "one-time code", "reset": "one-time code", "magic": "one-time code", "confirm": "one-time code",
    "feed": "feed", "timeline": "feed", "inbox": "feed",
    "online": "online marker", "presence": "online marker", "heartbeat": "online marker", "seen": "online marker",
    "lastseen": "online marker", "typing": "online marker",
    "tmp": "temporary", "temp": "temporary", "idempotency": "temporary", "dedup": "temporary",
}
_WORDS = re.compile(r"[A-Za-z0-9]+")


def ephemeral_reason(pattern: str) -> str | None:
    """Why a pattern's keys look short-lived: a word of its name, or a date/time in it."""
    literal = _PLACEHOLDER_TEXT.sub(" ", pattern)
    for word in _WORDS.findall(literal):
        lowered = word.lower()
        if lowered in EPHEMERAL_WORDS:
            return f'"{word}" in the name ({EPHEMERAL_WORDS[lowered]})'
        # camelCase and snake parts: rateLimit, userSession
        for part in re.findall(r"[a-z0-9]+|[A-Z][a-z0-9]*", word):
            if part.lower() in EPHEMERAL_WORDS:
                return f'"{word}" in the name ({EPHEMERAL_WORDS[part.lower()]})'
    if "{date}" in pattern or "{ts}" in pattern:
        return "a date or timestamp in the name (a time bucket that is never reused)"
    return None


# --- Time buckets, periods and counters in a name ----------------------------------------------------

MINUTE, HOUR, DAY, WEEK, MONTH = 60, 3600, 86400, 604800, 31 * 86400
BUCKET_NAMES = {MINUTE: "minute", HOUR: "hour", DAY: "day", WEEK: "week", MONTH: "month"}
# A literal word that names a period: a key reused every period (reset by a job), or the
# granularity of the date beside it.
PERIOD_WORDS = {"hourly": HOUR, "daily": DAY, "today": DAY, "yesterday": DAY, "weekly": WEEK, "monthly": MONTH}
# Words of counters that something else may aggregate (votes synced to a database, view counts).
COUNTER_WORDS = {"vote", "votes", "upvotes", "downvotes", "count", "counts", "counter", "counters", "like", "likes",
                 "view", "views", "click", "clicks", "score", "scores", "total", "totals", "tally"}
# Words of sets or boards meant to cover all time: never trimmed, never expired by a guess.
ALL_TIME_WORDS = {"alltime", "lifetime", "global", "forever", "permanent"}
_DATE_TEXT = re.compile(
    r"(?<![0-9])(?:19|20)\d\d(?P<sep>[-/]?)(?:0[1-9]|1[0-2])(?:(?P=sep)(?P<day>0[1-9]|[12]\d|3[01])"
    r"(?:[T ](?P<hour>\d\d):(?P<minute>\d\d))?)?(?![0-9])"
)


def literal_words(pattern: str) -> list[str]:
    """The lower-cased words of a pattern's literal text (placeholders left out), camelCase split."""
    words = []
    for word in _WORDS.findall(_PLACEHOLDER_TEXT.sub(" ", pattern)):
        words.append(word.lower())
        parts = [p.lower() for p in re.findall(r"[a-z0-9]+|[A-Z][a-z0-9]*", word)]
        if len(parts) > 1:
            words.extend(parts)
    return words


def period_word(pattern: str) -> tuple[str, int] | None:
    """A word naming a period (daily, weekly...) in the pattern's literal text, with its length."""
    return next(((w, PERIOD_WORDS[w]) for w in literal_words(pattern) if w in PERIOD_WORDS), None)


def is_all_time(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("alltime", "all-time", "all_time", "lifetime")) or bool(
        set(literal_words(name)) & ALL_TIME_WORDS)


def counter_word(pattern: str) -> str | None:
    return next((w for w in literal_words(pattern) if w in COUNTER_WORDS), None)


def time_bucket(pattern: str, examples: Iterable[str]) -> int | None:
    """The length in seconds of the time bucket a pattern's keys are named after, or None.

    `{date}` takes its granularity from the example keys: a month (2026-05), a day
    (2026-05-01, 20260501), an hour or a minute (2026-05-01T10:00); a day followed by a last
    segment of two digits 00-23 in at least 3 examples is an hour (`rl:2026-05-01:13`).
    Where the examples disagree or are few, the longer bucket: its TTL is the safe side. `{ts}` is a
    bucket only when every example is a multiple of a minute, hour or day (a window start,
    not an event time). A period word beside the date (`hourly:{date}`) wins."""
    named = period_word(pattern)
    samples = [e for e in examples if e]
    if "{date}" in pattern:
        if named is not None:
            return named[1]
        sizes = [_date_bucket(example) for example in samples]
        known = [size for size in sizes if size is not None]
        if not known:
            return DAY
        if HOUR in known and len(known) < 3 and "{date}:{id}" in pattern:
            return DAY  # an hour read off fewer than 3 examples could be a small id: the longer bucket is safe
        return max(known)  # examples that disagree: the longest bucket, whose TTL keeps all of them
    if "{ts}" in pattern and samples:
        stamps = []
        for example in samples:
            found = re.search(r"(?<![0-9])1\d{9}(?:\d{3})?(?![0-9])", example)
            if found is None:
                return None
            value = int(found.group(0))
            stamps.append(value // 1000 if len(found.group(0)) == 13 else value)
        for size in (DAY, HOUR, MINUTE):
            if all(stamp % size == 0 for stamp in stamps):
                return named[1] if named else size
    return None


def _date_bucket(example: str) -> int | None:
    found = _DATE_TEXT.search(example)
    if found is None:
        return None
    if found.group("day") is None:
        return MONTH
    if found.group("hour") is not None:
        return HOUR if found.group("minute") == "00" else MINUTE
    following = example[found.end():]
    hour = re.fullmatch(r"[:/|#](\d\d)", following)  # the last segment, two digits
    if hour is not None and int(hour.group(1)) <= 23:
        return HOUR
    return DAY
