"""Hostile names and secrets through every report format: whatever a database object is called
and whatever a password holds, each format still parses (JSON, SARIF, JUnit XML), shows no
secret in any escaped form, and carries no raw bidi override or carriage return."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checks.secrets
from checks.model import (
    CheckError, Finding, Fix, FixSafety, FixStep, Report, Severity, TargetState, TargetStatus,
)
from checks.secrets import MASK, remember_secrets, secret_forms
from console.formats import FORMATS, render

HOSTILE = "\"\\'<>&\n\r\t\x00\x1b\x7f\u202e\u2066\u2028 =?&é日"
names = st.text(st.one_of(st.sampled_from(HOSTILE), st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
                min_size=1, max_size=24)
secrets = st.text(st.one_of(st.sampled_from("\"\\'<>&=?#%{}[],: é"), st.characters(min_codepoint=0x21, max_codepoint=0x7E)),
                  min_size=4, max_size=16).filter(lambda s: s.strip() == s and s.strip(":, ") != "")


def report_with(name: str, secret: str) -> Report:
    leak = f"{name} password={secret} url redis://u:{secret}@h/0?ssl_password={secret}"
    finding = Finding(
        id="0123456789ab", check="redis.ttl-coverage", severity=Severity.HIGH, target="cache", object=name,
        title=f"keys {name} have no TTL", message=leak,
        evidence={name: leak, "pattern": f"api token={name}", "nested": [{"k": secret}]},
        fix=Fix(summary=f"expire {name}", safety=FixSafety.SAFE, lock="none",
                steps=(FixStep("redis", ["EXPIRE", name, "60"], description=leak),)),
    )
    return Report(
        targets=[TargetStatus("cache", "redis", TargetState.REFUSED, error=leak,
                              url=f"redis://:{secret}@h/0")],
        findings=[finding],
        errors=[CheckError("redis.memory", "cache", "error", leak)],
        duration_ms=1.0,
        checks=[{"target": "cache", "check": "redis.ttl-coverage", "outcome": "findings", "findings": 1,
                 "duration_ms": 1.0}],
    )


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, secret=secrets)
def test_every_format_parses_and_hides_the_secret(name, secret):
    checks.secrets._known.clear()
    forms = secret_forms(secret)
    masked_already = report_with(name, MASK)
    remember_secrets([secret])
    report = report_with(name, secret)
    for fmt in FORMATS:
        baseline = render(masked_already, fmt)
        if any(form in baseline for form in forms):
            continue  # the secret is part of the format's own text (an escape, a word): nothing to tell apart
        text = render(report, fmt)
        leaked = [form for form in forms if form in text]
        assert not leaked, (fmt, secret, leaked)
        if fmt in ("json", "sarif"):
            json.loads(text)  # valid whatever the name and the secret hold
            assert "\u202e" not in text and "\u2066" not in text and "\u2028" not in text
        if fmt == "junit":
            ET.fromstring(text.split("\n", 1)[1])
            assert "\r" not in text and "\u202e" not in text
    checks.secrets._known.clear()
    document = json.loads(render(report_with(name, "s3cr3t-value"), "json"))
    assert document["findings"][0]["object"] == name  # the name is carried intact
    assert document["findings"][0]["evidence"]["pattern"] == f"api token={name}"
