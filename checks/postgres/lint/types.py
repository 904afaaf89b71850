"""Column types pg-index-health's static checks advise against, one rule each."""

from __future__ import annotations

import re

from checks.postgres.lint._rule import LintFacts, LintRule, column_type_rule


class TimestampWithoutTimeZone(LintRule):
    id = "postgres.lint-timestamp-without-tz"
    title = "timestamp without time zone"
    rationale = ("timestamp without time zone stores a wall-clock reading with no zone: two servers or sessions in "
                 "different zones read different instants from it. timestamptz stores the instant.")

    def violations(self, facts: LintFacts, options):
        return column_type_rule(facts.catalog, lambda t: t.startswith(("timestamp without time zone", "timestamp(")) and
                                "with time zone" not in t, "use timestamptz, which stores an instant.")


class VarcharLength(LintRule):
    id = "postgres.lint-varchar-length"
    title = "varchar(n)"
    rationale = ("varchar(n) is text with a length check that is costly to change (a migration, an exclusive lock "
                 "for a shorter limit); text with a CHECK constraint, or plain text, says the same more flexibly.")

    def violations(self, facts: LintFacts, options):
        return column_type_rule(facts.catalog, lambda t: re.fullmatch(r"character varying\(\d+\)", t) is not None,
                                "use text (with a CHECK (length(...) <= n) where the limit is a business rule).")


class CharLength(LintRule):
    id = "postgres.lint-char"
    title = "char(n)"
    rationale = "char(n) pads with spaces, compares surprisingly and is never faster than text in PostgreSQL."

    def violations(self, facts: LintFacts, options):
        return column_type_rule(facts.catalog, lambda t: re.fullmatch(r"character(\(\d+\))?", t) is not None,
                                "use text (or varchar): char(n) pads values with spaces.")


class Money(LintRule):
    id = "postgres.lint-money"
    title = "money"
    rationale = "money depends on lc_monetary for its input and output and has a fixed scale: use numeric."

    def violations(self, facts: LintFacts, options):
        return column_type_rule(facts.catalog, lambda t: t == "money",
                                "use numeric(p, s) with the currency in its own column.")


class Json(LintRule):
    id = "postgres.lint-json"
    title = "json instead of jsonb"
    rationale = ("json keeps the text as written and reparses it on every access; jsonb is stored parsed, can be "
                 "indexed (GIN) and compared.")

    def violations(self, facts: LintFacts, options):
        return column_type_rule(facts.catalog, lambda t: t == "json", "use jsonb, which can be indexed and compared.")
