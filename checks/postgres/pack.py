"""Built-in PostgreSQL checks, registered through the `dbvitals.checks` entry point."""

from checks.postgres.bloat import Bloat
from checks.postgres.connection import PostgresConnection
from checks.postgres.disabled_trigger import DisabledTriggerCheck
from checks.postgres.duplicate_fk import DuplicateFk
from checks.postgres.duplicate_index import DuplicateIndex
from checks.postgres.fk_missing_index import FkMissingIndex
from checks.postgres.fk_type_mismatch import FkTypeMismatch
from checks.postgres.intersected_fk import IntersectedFk
from checks.postgres.invalid_index import InvalidIndex
from checks.postgres.locked_relation import LockedRelation
from checks.postgres.lint.indexes import BooleanIndex, BtreeOnArray, IndexNulls, TimestampInTheMiddle, UnnecessaryWhere
from checks.postgres.lint.keys import IntegerKey, Serial
from checks.postgres.lint.tables import AllNullable, NameOverflow
from checks.postgres.lint.types import CharLength, Json, Money, TimestampWithoutTimeZone, VarcharLength
from checks.postgres.locks import Locks
from checks.postgres.long_transactions import LongTransactions
from checks.postgres.missing_index import MissingIndex
from checks.postgres.no_primary_key import NoPrimaryKey
from checks.postgres.not_valid_constraint import NotValidConstraintCheck
from checks.postgres.orphaned_references import OrphanedReferences
from checks.postgres.pool import PostgresPool
from checks.postgres.redundant_index import RedundantIndex
from checks.postgres.replication import Replication
from checks.postgres.sequence_exhaustion import SequenceExhaustion
from checks.postgres.settings import Settings
from checks.postgres.unused_index import UnusedIndex
from checks.postgres.vacuum import Vacuum

CHECKS = [
    PostgresConnection,
    PostgresPool,
    FkTypeMismatch,
    FkMissingIndex,
    DuplicateFk,
    IntersectedFk,
    NotValidConstraintCheck,
    OrphanedReferences,
    DisabledTriggerCheck,
    MissingIndex,
    DuplicateIndex,
    RedundantIndex,
    UnusedIndex,
    InvalidIndex,
    NoPrimaryKey,
    SequenceExhaustion,
    LongTransactions,
    Vacuum,
    Replication,
    Locks,
    Settings,
    Bloat,
    # The schema lint: one rule per check, low severity, for the pre-deploy gate.
    IntegerKey,
    Serial,
    TimestampWithoutTimeZone,
    VarcharLength,
    CharLength,
    Money,
    Json,
    BtreeOnArray,
    BooleanIndex,
    IndexNulls,
    UnnecessaryWhere,
    TimestampInTheMiddle,
    AllNullable,
    NameOverflow,
    LockedRelation,
]
