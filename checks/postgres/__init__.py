"""Built-in PostgreSQL checks, registered through the `dbvitals.checks` entry point."""

from checks.postgres.connection import PostgresConnection
from checks.postgres.pool import PostgresPool

CHECKS = [PostgresConnection, PostgresPool]
