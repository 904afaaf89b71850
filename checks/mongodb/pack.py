"""Built-in MongoDB checks, registered through the `dbvitals.checks` entry point."""

from checks.mongodb.connection import MongoConnection
from checks.mongodb.dynamic_keys import DynamicKeyMaps
from checks.mongodb.field_type_drift import FieldTypeDrift
from checks.mongodb.missing_index import MissingIndex
from checks.mongodb.pool import MongoPool
from checks.mongodb.redundant_index import RedundantIndex
from checks.mongodb.reference_type_mismatch import ReferenceTypeMismatch
from checks.mongodb.schema_validation import SchemaValidation
from checks.mongodb.transactions_unsupported import TransactionsUnsupported
from checks.mongodb.ttl_coverage import TtlCoverage
from checks.mongodb.transactions_unused import TransactionsUnused
from checks.mongodb.ttl_misconfigured import TtlMisconfigured
from checks.mongodb.unbounded_array import UnboundedArray
from checks.mongodb.unused_index import UnusedIndex

CHECKS = [
    MongoConnection,
    MissingIndex,
    MongoPool,
    TtlCoverage,
    TtlMisconfigured,
    RedundantIndex,
    UnusedIndex,
    ReferenceTypeMismatch,
    TransactionsUnsupported,
    TransactionsUnused,
    UnboundedArray,
    SchemaValidation,
    FieldTypeDrift,
    DynamicKeyMaps,
]
