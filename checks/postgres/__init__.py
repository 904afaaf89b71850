"""Built-in PostgreSQL checks, registered through the `dbvitals.checks` entry point."""

from checks.postgres.connection import PostgresConnection

CHECKS = [PostgresConnection]
