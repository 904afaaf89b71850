"""Built-in MongoDB checks, registered through the `dbvitals.checks` entry point."""

from checks.mongodb.connection import MongoConnection

CHECKS = [MongoConnection]
