"""mongodb.ttl-coverage on data shaped like the audits, against a real server: every collection
that needs a TTL is reported with a safe field and filter and an exact first-pass count, and no
entity or ledger is."""

from __future__ import annotations

import datetime as dt

from checks.model import FixSafety
from tests import support
from tests.data import mongodb_audit


def _matches(doc, filter_):
    for name, wanted in (filter_ or {}).items():
        value = doc.get(name)
        if isinstance(wanted, dict):
            if value not in wanted["$in"]:
                return False
        elif value != wanted:
            return False
    return True


def test_audit_shaped_data_gets_ttl_advice_only_where_documents_may_go(mongo_db, loaded_machine_budget):
    now = dt.datetime.now(dt.timezone.utc)
    data = mongodb_audit.seed(mongo_db.db, now)
    settings = support.settings_for(app={"kind": "mongodb", "url": mongo_db.url, "check_timeout": 120})
    report = support.run_report(settings, checks=["mongodb.ttl-coverage"])
    assert report.errors == []
    findings = {f.object.split(".", 1)[1]: f for f in report.findings}
    assert set(findings) == set(mongodb_audit.NEEDS_TTL)
    cutoff = now - dt.timedelta(days=365)
    for name, (field, filter_) in mongodb_audit.NEEDS_TTL.items():
        finding = findings[name]
        spec = finding.fix.steps[0].command["indexes"][0]
        assert list(spec["key"]) == [field] and spec.get("partialFilterExpression") == filter_, name
        assert spec["expireAfterSeconds"] == 365 * 86400
        assert finding.fix.safety is FixSafety.MANUAL
        docs, _ = data[name]
        expected = sum(1 for d in docs if _matches(d, filter_) and isinstance(d.get(field), dt.datetime) and d[field] < cutoff)
        assert finding.evidence["first_pass_deletes"] == expected, name
        assert f"deletes {expected:,} documents" in finding.fix.notes
    assert findings["gamerounds"].evidence["first_pass_deletes"] > 500  # rounds finished over a year ago
    # every piece of evidence is shown with the way it pointed
    assert findings["moderation_flags"].evidence["weighed_evidence"] == {
        "references": "neither: no other collection's sampled documents reference it",
        "money fields": "neither: none",
        "unique keys": "neither: none besides _id",
        "updates in place": "neither: updated, as its status lifecycle moves",
        "status lifecycle": "expire: status takes terminal values dismissed, resolved",
        "age": "expire: createdAt spans 300 days in the sample: old documents stay",
    }
    assert findings["invites"].fix.steps[0].command["indexes"][0]["key"] == {"expiresAt": -1}


def test_keep_forever_and_declared_rules_take_the_collection_out_of_the_heuristic(mongo_db, loaded_machine_budget):
    now = dt.datetime.now(dt.timezone.utc)
    mongodb_audit.seed(mongo_db.db, now)
    settings = support.settings_for(app={
        "kind": "mongodb", "url": mongo_db.url, "check_timeout": 120,
        "checks": {"mongodb.ttl-coverage": {"keep_forever": ["game*", "messages"]}},
        "expect": {"ttl": [{"collection": "webhook_events", "field": "receivedAt", "after": "30d"}]},
    })
    report = support.run_report(settings, checks=["mongodb.ttl-coverage"])
    objects = sorted(f.object.split(".", 1)[1] for f in report.findings)
    assert objects == ["invites", "moderation_flags", "webhook_events"]
    [rule] = [f for f in report.findings if f.object.endswith("webhook_events")]
    assert rule.title.startswith("Retention rule") and rule.fix.safety is FixSafety.UNSAFE
