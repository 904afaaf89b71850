"""Pure judgement of the foreign-key and constraint checks: catalog facts in, findings out."""

from __future__ import annotations

from checks.model import FixSafety, Severity
from checks.postgres import disabled_trigger, duplicate_fk, fk_missing_index, intersected_fk, not_valid_constraint
from checks.postgres._preconditions import Precondition
from tests.unit.test_postgres_evaluate import Schema, objects, scope


def clients_accounts() -> Schema:
    s = Schema()
    s.table("clients", {"id": "bigint", "email": "text", "phone": "text"})
    s.primary_key("clients", ["id"])
    s.table("accounts", {"id": "bigint", "client_id": "bigint", "email": "text", "phone": "text"})
    s.primary_key("accounts", ["id"])
    return s


def test_duplicated_and_intersected_foreign_keys_are_told_apart():
    s = clients_accounts()
    s.constraint("f", "accounts", ["client_id"], name="fk_a", ref="clients", ref_columns=["id"])
    s.constraint("f", "accounts", ["client_id"], name="fk_b", ref="clients", ref_columns=["id"])
    s.constraint("f", "accounts", ["email", "phone"], name="fk_ep", ref="clients", ref_columns=["email", "phone"])
    s.constraint("f", "accounts", ["phone", "email"], name="fk_pe", ref="clients", ref_columns=["phone", "email"])
    snapshot = s.build()
    dup = duplicate_fk.DuplicateFk()
    [finding] = dup.evaluate(duplicate_fk.Facts(snapshot, {}), scope(dup))
    assert finding.object == "public.accounts.fk_b" and finding.fix.safety is FixSafety.UNSAFE
    assert finding.fix.inverse == ()  # no definition read: no inverse guessed
    inter = intersected_fk.IntersectedFk()
    [pair] = inter.evaluate(intersected_fk.Facts(snapshot), scope(inter))
    assert pair.object == "public.accounts.fk_ep" and pair.evidence["shared_columns"] == ["email", "phone"]
    missing = fk_missing_index.FkMissingIndex()
    findings = missing.evaluate(fk_missing_index.Facts(snapshot), scope(missing))
    assert sorted(f.evidence["also_serves"][0] for f in findings) == ["fk_b", "fk_pe"]  # two indexes, not four


def test_foreign_keys_to_different_tables_or_disjoint_columns_are_quiet():
    s = clients_accounts()
    s.table("branches", {"id": "bigint"})
    s.primary_key("branches", ["id"])
    s.constraint("f", "accounts", ["client_id"], name="fk_client", ref="clients", ref_columns=["id"])
    s.constraint("f", "accounts", ["id"], name="fk_branch", ref="branches", ref_columns=["id"])
    s.constraint("f", "accounts", ["email", "phone"], name="fk_ep", ref="clients", ref_columns=["email", "phone"])
    snapshot = s.build()
    assert duplicate_fk.DuplicateFk().evaluate(duplicate_fk.Facts(snapshot, {}), scope(duplicate_fk.DuplicateFk())) == []
    inter = intersected_fk.IntersectedFk()
    assert inter.evaluate(intersected_fk.Facts(snapshot), scope(inter)) == []


def test_inherited_copies_on_partitions_are_judged_at_the_parent():
    s = Schema()
    s.table("dict", {"ref_type": "integer"})
    s.primary_key("dict", ["ref_type"])
    s.table("t1", {"ref_type": "bigint"}, kind="p")
    s.table("t1_default", {"ref_type": "bigint"}, parent="t1")
    for name in ("t1_fk", "t1_fk_dup"):
        s.constraint("f", "t1", ["ref_type"], name=name, ref="dict", ref_columns=["ref_type"])
        s.constraint("f", "t1_default", ["ref_type"], name=name, ref="dict", ref_columns=["ref_type"], inherited=True)
    dup = duplicate_fk.DuplicateFk()
    assert objects(dup.evaluate(duplicate_fk.Facts(s.build(), {}), scope(dup))) == ["public.t1.t1_fk_dup"]


def test_not_valid_constraints_and_disabled_triggers():
    check = not_valid_constraint.NotValidConstraintCheck()
    chk = not_valid_constraint.NotValidConstraint(1, "public", "accounts", "chk", "c", "CHECK ((id > 0)) NOT VALID",
                                                  None, -1, ("id",), (), "(id > 0)")
    fk = not_valid_constraint.NotValidConstraint(2, "public", "accounts", "fk", "f", "FOREIGN KEY (client_id) ...",
                                                 "clients", 10.0, ("client_id",), ("id",), None)
    facts = not_valid_constraint.Facts((chk, fk), {
        1: Precondition(chk.requirement, chk.failing_what, None, unknown="counting took longer than 5 s"),
        2: Precondition(fk.requirement, fk.failing_what, 0)})
    findings = {f.object: f for f in check.evaluate(facts, scope(check))}
    assert findings["public.accounts.chk"].evidence["rows_estimate"] is None
    assert findings["public.accounts.chk"].fix.safety is FixSafety.MANUAL  # not known to hold: not safe
    assert findings["public.accounts.chk"].evidence["precondition"]["failing"] == "unknown"
    assert findings["public.accounts.fk"].fix.safety is FixSafety.SAFE
    assert findings["public.accounts.fk"].fix.steps[0].command == "ALTER TABLE public.accounts VALIDATE CONSTRAINT fk;"
    assert "ROW SHARE on clients" in findings["public.accounts.fk"].fix.lock
    assert check.evaluate(not_valid_constraint.Facts((), {}), scope(check)) == []

    triggers = disabled_trigger.DisabledTriggerCheck()
    rows = tuple(disabled_trigger.DisabledTrigger("public", "accounts", f"RI_ConstraintTrigger_c_{n}", True, "fk", "f",
                                                  "FOREIGN KEY (client_id) REFERENCES clients(id)") for n in (1, 2))
    [finding] = triggers.evaluate(disabled_trigger.Facts(rows), scope(triggers))
    assert finding.severity is Severity.HIGH and finding.object == "public.accounts"
    assert finding.evidence["constraints"] == {"fk": "FOREIGN KEY (client_id) REFERENCES clients(id)"}
    assert triggers.evaluate(disabled_trigger.Facts(()), scope(triggers)) == []


def test_orphaned_references_only_for_unenforced_same_type_references_with_orphans():
    from checks.postgres import orphaned_references as orphans
    from checks.postgres.fk_type_mismatch import find_references

    s = clients_accounts()
    s.table("visits", {"id": "bigint", "client_id": "bigint"})
    s.table("notes", {"id": "bigint", "client_id": "integer"})  # mistyped: fk-type-mismatch's
    s.constraint("f", "accounts", ["client_id"], name="fk", ref="clients", ref_columns=["id"])  # enforced
    snapshot = s.build()
    references, _ = find_references(snapshot, [], implied=True)
    judged = orphans.unenforced(references)
    assert [(r.table.name, r.columns[0].name) for r in judged] == [("visits", "client_id")]
    check = orphans.OrphanedReferences()
    key = (s.names["visits"], s.num("visits", "client_id"))
    [finding] = check.evaluate(orphans.Facts(tuple(references), {key: orphans.Count(400, 40, False)}), scope(check))
    assert finding.evidence["share"] == 0.1 and finding.evidence["whole_table"] is False
    assert check.evaluate(orphans.Facts(tuple(references), {key: orphans.Count(400, 0, True)}), scope(check)) == []


def test_orphaned_references_not_counted_are_listed_once():
    from checks.postgres import orphaned_references as orphans
    from checks.postgres.fk_type_mismatch import find_references

    s = clients_accounts()
    s.table("visits", {"id": "bigint", "client_id": "bigint"})
    snapshot = s.build()
    references, _ = find_references(snapshot, [], implied=True)
    key = (s.names["visits"], s.num("visits", "client_id"))
    check = orphans.OrphanedReferences()
    [info] = check.evaluate(orphans.Facts(tuple(references), {key: orphans.Count(None, None, False, "not counted: budget_seconds ran out")}),
                            scope(check))
    assert info.severity is Severity.INFO and info.evidence["references"] == ["public.visits.client_id"]
