"""The keyspace pass as a shared fact: redis.ttl-coverage and redis.big-keys declare it, the
runner reads the keyspace once per target and run, and reads each key's length only when
redis.big-keys is part of the run. Its options are its own: `[targets.NAME.facts."redis.keyspace"]`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from checks.contract import Fact, FactContext, FactOptions
from checks.redis._scan import KeyspaceScan, ScanPlan, scan_keyspace
from checks.secrets import url_password_decoded

BIG_KEYS = "redis.big-keys"  # named, not imported: the check imports this module


class KeyspaceScanOptions(FactOptions):
    """How the keyspace is read, for every check that reads it."""

    scan_limit: int | None = Field(
        default=None, ge=1,
        description="Stop after this many keys (over all databases) and extrapolate; unset: the whole keyspace.",
    )
    throttle: int | None = Field(
        default=None, ge=1, description="Keys read per second at most, to spare a busy production server; unset: no limit.",
    )
    scan_count: int = Field(default=1000, ge=10, le=100000, description="SCAN COUNT: keys asked for per SCAN call.")
    replica_url: str | None = Field(
        default=None,
        description="Scan this replica instead of the target (same databases; the target's password if the URL has none).",
    )
    memory_sample: bool = Field(
        default=True,
        description="Measure a sample of keys (MEMORY USAGE, OBJECT ENCODING, OBJECT IDLETIME or FREQ): per pattern "
                    "at least its reservoir of 16 keys, and one key in sample_every in the page script; big keys too.",
    )
    memory_samples: int = Field(
        default=5, ge=0, le=10000,
        description="MEMORY USAGE ... SAMPLES: nested values read to estimate a collection's size (0: all, exact but slow).",
    )
    sample_every: int = Field(
        default=100, ge=0, le=1_000_000,
        description="One key in this many is measured inside the page script (0: only the per-pattern reservoirs).",
    )


class KeyspaceFact(Fact[KeyspaceScan]):
    id = "redis.keyspace"
    engine = "redis"
    description = "One SCAN pass over the keyspace, aggregated per key pattern (TTLs, types, lengths, big keys)."
    Options = KeyspaceScanOptions

    async def compute(self, session: Any, context: FactContext) -> KeyspaceScan:
        big = context.request(BIG_KEYS)
        return await scan_keyspace(
            session,
            keyspace_plan(context.options, big.options if big is not None else None),
            context.config.url,
            # A replica_url without a password is given the target's: the password key, else the URL's.
            context.config.password.get_secret_value() if context.config.password is not None
            else url_password_decoded(context.config.url),
            # Lengths cost a read more per key: only when a check of this run judges them.
            lengths=big is not None,
        )


def keyspace_plan(options: KeyspaceScanOptions, big_keys: Any | None = None) -> ScanPlan:
    """The pass's plan: scan settings from the fact's options, big-key thresholds (when
    redis.big-keys runs) from its options."""
    return ScanPlan(
        scan_limit=options.scan_limit,
        throttle=options.throttle,
        count=options.scan_count,
        replica_url=options.replica_url,
        big_thresholds=tuple(sorted(big_keys.thresholds().items())) if big_keys is not None else (),
        big_keys_kept=big_keys.report_limit if big_keys is not None else ScanPlan.big_keys_kept,
        memory_sample=options.memory_sample,
        memory_samples=options.memory_samples,
        sample_every=options.sample_every,
    )
