"""Generated SQL names any object correctly: quote_ident agrees with the server's own
quote_ident(), and a table and column created through it carry exactly the intended names."""

from __future__ import annotations

import asyncio

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.postgres._catalog import fit_name, qualified, quote_ident

names = st.one_of(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=30),
    st.sampled_from(["user", "select", "Order Lines", 'say "hi"', "name", "_x", "2fa", "prix_€", "a.b", "Ω"]),
).map(fit_name).filter(lambda name: bool(name) and not name.lower().startswith("pg_"))  # pg_*: reserved for schemas


def test_quoting_round_trips_through_the_server(pg_db):
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(pg_db.url))

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(schema=names, table=names, column=names)
    def round_trip(schema: str, table: str, column: str) -> None:
        async def go() -> None:
            assert quote_ident(table) == await conn.fetchval("SELECT quote_ident($1)", table)
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
                await conn.execute(f"CREATE TABLE {qualified(schema, table)} ({quote_ident(column)} int)")
                row = await conn.fetchrow(
                    "SELECT n.nspname, c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1 WHERE c.oid = $1::regclass",
                    qualified(schema, table))
                assert tuple(row) == (schema, table, column)
            finally:
                await tx.rollback()

        loop.run_until_complete(go())

    try:
        round_trip()
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
