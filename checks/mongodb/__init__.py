"""Built-in MongoDB checks, registered through the `dbvitals.checks` entry point."""

from checks.mongodb.connection import MongoConnection
from checks.mongodb.missing_index import MissingIndex
from checks.mongodb.pool import MongoPool

CHECKS = [MongoConnection, MissingIndex, MongoPool]
