"""Key-pattern inference, the pattern -> (glob, regex) contract with the fix executor, and
declared-rule matching: tables of cases."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.redis._patterns import (
    ephemeral_reason,
    first_matching,
    infer_pattern,
    infer_pattern_whole,
    key_in_pattern,
    pattern_glob_and_regex,
    rule_matches,
)


@pytest.mark.parametrize(
    "key, pattern",
    [
        ("session:8f14e45f-ceea-467f-a0e6-9b4a6d1e5b20", "session:{uuid}"),
        ("session:C9F0F895-FB98-4B91-99F5-1A7B2C3D4E5F", "session:{uuid}"),
        ("user:42:profile", "user:{id}:profile"),
        ("rate:vote:17:2026-05-03", "rate:vote:{id}:{date}"),
        ("post:votes:99", "post:votes:{id}"),
        ("leaderboard:alltime", "leaderboard:alltime"),
        ("user:bob.smith+x@example.co.uk", "user:{email}"),
        ("doc:507f1f77bcf86cd799439011", "doc:{objectid}"),
        ("cache:5d41402abc4b2a76b9719d911017c592", "cache:{hash}"),
        ("blob:da39a3ee5e6b4b0d3255bfef95601890afd80709", "blob:{hash}"),
        ("etag:0a1b2c3d4e5f6a7b", "etag:{hex}"),
        ("event:1715000000", "event:{ts}"),
        ("event:1715000000123", "event:{ts}"),
        ("ip:10.0.0.1:hits", "ip:{ip}:hits"),
        ("stats:20260503", "stats:{date}"),
        ("stats:2026-05", "stats:{date}"),
        ("feed:user:12:2026-05-03T10:11:12Z", "feed:user:{id}:{date}"),
        ("reset:AbCdEf0123456789xyzQWERT", "reset:{token}"),
        ("page_2", "page_{id}"),
        ("v2:users", "v2:users"),  # a version is part of the name
        ("order/2026/05/items", "order/{date}/items"),  # year/month
        (b"bin:\xff\xfe:12", "bin:\\xff\\xfe:{id}"),
        ("plain", "plain"),
    ],
)
def test_infer_pattern(key, pattern):
    assert infer_pattern(key) == pattern
    assert key_in_pattern(key, pattern)


@pytest.mark.parametrize(
    "key, pattern",
    [
        ("session:admin", "session:{uuid}"),  # a literal is not a uuid
        ("user:1715000000", "user:{id}"),  # that is a {ts}
        ("user:42:settings", "user:{id}:profile"),
        ("xsession:8f14e45f-ceea-467f-a0e6-9b4a6d1e5b20", "session:{uuid}"),  # anchored
    ],
)
def test_regex_keeps_other_keys_out(key, pattern):
    assert not key_in_pattern(key, pattern)


@pytest.mark.parametrize(
    "pattern, glob",
    [
        ("session:{uuid}", "session:*"),
        ("rate:vote:{id}:{date}", "rate:vote:*:*"),
        ("a*b:[x]:{id}", "a\\*b:\\[x\\]:*"),  # a literal * in a key name is escaped
        ("bin:\\xff:{id}", "bin:?:*"),  # an undecodable byte matches any one byte
        ("user:{name}:profile", "user:*:profile"),
        ("tmp:{any}", "tmp:*"),
    ],
)
def test_glob(pattern, glob):
    assert pattern_glob_and_regex(pattern)[0] == glob


def test_regex_is_anchored_python():
    _, regex = pattern_glob_and_regex("user:{name}:profile")
    assert re.fullmatch(regex, "user:alice:profile")
    assert not re.fullmatch(regex, "user:a:b:profile")


_alphabet = "0123456789abcdefXYZT:-_./@ +"


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["session", "2026-05-03", "2026-05-03T10:11:12Z", "1715000000", "20260503",
                                 "507f1f77bcf86cd799439011", "a@b.io", "10.0.0.1", "42", "T10", "2026"])
                | st.text(alphabet=_alphabet, max_size=12), min_size=1, max_size=5))
def test_segment_fast_path_equals_whole_regex(parts):
    key = ":".join(parts)
    assert infer_pattern(key) == infer_pattern_whole(key)
    assert infer_pattern(key.encode()) == infer_pattern_whole(key)  # as SCAN returns it
    assert key_in_pattern(key, infer_pattern(key))


@pytest.mark.parametrize(
    "rule, pattern, matches",
    [
        ("session:*", "session:{uuid}", True),
        ("session:{sessionId}", "session:{uuid}", True),
        ("rate:vote:{userId}:{date}", "rate:vote:{id}:{date}", True),
        ("leaderboard:alltime", "leaderboard:alltime", True),
        ("leaderboard:alltime", "leaderboard:weekly", False),
        ("post:votes:{postId}", "post:{id}:title", False),
        ("user:{id}:profile", "user:{email}:profile", True),
    ],
)
def test_rule_matches(rule, pattern, matches):
    assert rule_matches(rule, pattern) is matches


def test_most_specific_rule_wins():
    assert first_matching(["session:*", "session:admin:*"], "session:admin:{id}") == "session:admin:*"
    assert first_matching(["cache:*"], "user:{id}") is None


@pytest.mark.parametrize(
    "pattern, ephemeral",
    [
        ("session:{uuid}", True),
        ("userSession:{id}", True),
        ("rl:{ip}", True),
        ("lock:order:{id}", True),
        ("otp:{email}", True),
        ("stats:{date}", True),
        ("user:{id}:profile", False),
        ("leaderboard:alltime", False),
        ("post:{id}:title", False),
    ],
)
def test_ephemeral_reason(pattern, ephemeral):
    assert (ephemeral_reason(pattern) is not None) is ephemeral
