"""postgres.disabled-trigger: triggers switched off with ALTER TABLE ... DISABLE TRIGGER. When they
are the internal triggers of a foreign key (DISABLE TRIGGER ALL), that key is no longer enforced."""

from __future__ import annotations

from dataclasses import dataclass

from checks.contract import Check, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, Severity
from checks.postgres._catalog import qualified, quote_ident
from checks.postgres._fixes import sql
from checks.units import counted

# One row per disabled trigger; a foreign key's internal triggers grouped under its constraint.
QUERY = """
SELECT n.nspname AS schema, c.relname AS table_name, t.tgname AS name, t.tgisinternal AS internal,
       con.conname AS constraint_name, con.contype::text AS constraint_kind,
       CASE WHEN con.oid IS NOT NULL THEN pg_get_constraintdef(con.oid) END AS constraint_definition
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_constraint con ON con.oid = t.tgconstraint
WHERE t.tgenabled = 'D'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT (t.tgisinternal AND con.oid IS NULL)
ORDER BY n.nspname, c.relname, t.tgname
"""


@dataclass(frozen=True)
class DisabledTrigger:
    schema: str
    table_name: str
    name: str
    internal: bool
    constraint_name: str | None
    constraint_kind: str | None
    constraint_definition: str | None

    @property
    def table(self) -> str:
        return qualified(self.schema, self.table_name)


@dataclass(frozen=True)
class Facts:
    triggers: tuple[DisabledTrigger, ...]


class DisabledTriggerCheck(Check):
    id = "postgres.disabled-trigger"
    engine = "postgres"
    title = "Disabled trigger"
    severity = Severity.LOW
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "A disabled trigger silently stops doing its job. A foreign key is enforced by internal triggers: "
        "DISABLE TRIGGER ALL (often left behind by a bulk load) turns the key off while it still looks declared."
    )

    async def gather(self, session, scope: Scope) -> Facts:
        return Facts(tuple(DisabledTrigger(**dict(r)) for r in await session.fetch(QUERY)))

    def evaluate(self, facts: Facts, scope: Scope) -> list[Finding]:
        findings = []
        by_constraint: dict[tuple[str, str], list[DisabledTrigger]] = {}
        for trigger in facts.triggers:
            if trigger.internal:
                assert trigger.constraint_name is not None  # QUERY keeps internal triggers of a constraint only
                by_constraint.setdefault((trigger.table, trigger.constraint_name), []).append(trigger)
                continue
            findings.append(self.finding(
                scope, object=f"{trigger.table}.{quote_ident(trigger.name)}",
                title=f"trigger {trigger.name} on {trigger.table_name} is disabled",
                message=f"The trigger {quote_ident(trigger.name)} on {trigger.table} is disabled: it does not fire.",
                evidence={"trigger": trigger.name, "table": trigger.table},
                fix=Fix(summary=f"Enable {trigger.name}",
                        steps=(sql(f"ALTER TABLE {trigger.table} ENABLE TRIGGER {quote_ident(trigger.name)};"),),
                        safety=FixSafety.UNSAFE, lock=f"SHARE ROW EXCLUSIVE on {trigger.table}, briefly",
                        inverse=(sql(f"ALTER TABLE {trigger.table} DISABLE TRIGGER {quote_ident(trigger.name)};"),)),
            ))
        # One finding per table: DISABLE TRIGGER ALL switches off every key of the table at once.
        by_table: dict[str, dict[str, list[DisabledTrigger]]] = {}
        for (table, constraint), triggers in by_constraint.items():
            by_table.setdefault(table, {})[constraint] = triggers
        for table, constraints in by_table.items():
            names = sorted(constraints)
            definitions = {c: t[0].constraint_definition for c, t in constraints.items()}
            findings.append(self.finding(
                scope, object=table, key="constraints", severity=Severity.HIGH,
                title=(f"{counted(len(names), 'constraint')} on {table} not enforced: "
                       f"{'its trigger is' if len(names) == 1 else 'their triggers are'} disabled"),
                message=(f"{', '.join(quote_ident(n) for n in names)} on {table} have their internal triggers disabled "
                         "(ALTER TABLE ... DISABLE TRIGGER ALL), so writes are not checked against them. Rows written "
                         "meanwhile may break them; enabling the triggers does not check those rows."),
                evidence={"table": table, "constraints": definitions,
                          "disabled_triggers": sorted(t.name for ts in constraints.values() for t in ts)},
                fix=Fix(
                    summary=f"Re-enable the triggers on {table}, then validate its constraints",
                    steps=(sql(f"ALTER TABLE {table} ENABLE TRIGGER ALL;"),),
                    safety=FixSafety.MANUAL,
                    lock=f"SHARE ROW EXCLUSIVE on {table}, briefly; needs a superuser for internal triggers",
                    notes=("ENABLE TRIGGER ALL also enables user triggers disabled on purpose. Then check the rows "
                           "written while it was off: drop each constraint and add it back NOT VALID, then VALIDATE."),
                ),
            ))
        return findings
