"""What a collection's documents are, judged from evidence before any TTL is advised.

An *entity* (users, posts, follows) or a *ledger* (wallets, transactions, gem transactions) must
never be expired: deleting one loses state the application still reads, or money records an
audit asks for. Only an *event* collection (insert-only, time-stamped, growing) or the finished
documents of a *work item* collection (a status whose terminal values mark them done) may get a
TTL. Collection names alone decide nothing here; every verdict carries the evidence behind it.

All functions are pure: they read a bounded sample, the index list and the other collections'
samples (for references), never the server.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from checks.mongodb._inventory import CollectionInfo, Sample
from checks.mongodb._ttl import is_expiry_field, time_name_rank
from checks.mongodb.reference_type_mismatch import REFERENCE_NAME, referenced_collection

ENTITY = "entity"
LEDGER = "ledger"
EVENT = "event"
KEPT = "kept"  # listed in keep_forever

STATUS_NAME = re.compile(r"^(status|state|phase|stage|outcome|result)$", re.I)
# Values after which a document changes no more: its end can start a retention clock.
TERMINAL = frozenset({
    "completed", "complete", "done", "finished", "ended", "failed", "failure", "errored", "error",
    "resolved", "closed", "expired", "cancelled", "canceled", "rejected", "declined", "revoked",
    "dismissed", "accepted", "processed", "delivered", "succeeded", "success", "aborted",
    "timed_out", "timedout", "timeout", "archived", "discarded", "dead",
})
# Field names that mark when a document reached its end, best first.
END_NAME = re.compile(
    r"^(resolved|completed|finished|ended|closed|processed|cancell?ed|failed|rejected|accepted|declined|"
    r"revoked|delivered|dismissed|expired|archived|done|succeeded)(At|_at|On|_on|Date|_date|Time|_time)$", re.I)
UPDATED_NAME = re.compile(r"^(updated|modified|changed)(At|_at|On|_on|Date|_date|Time|_time)?$", re.I)
CREATED_NAME = re.compile(r"^(created|inserted)(At|_at|On|_on|Date|_date|Time|_time)?$", re.I)
# A boolean that keeps a document from expiring (pinned messages, saved posts, legal holds).
EXEMPT_NAME = re.compile(
    r"^(is_?)?(pinned|starred|saved|bookmarked|important|keep|kept|retained|permanent|protected|legal_?hold|on_?hold)$",
    re.I)
# Words of a field name that hold money or a balance: such documents are a ledger.
MONEY_WORDS = frozenset({
    "amount", "balance", "price", "total", "subtotal", "cost", "fee", "fees", "credit", "credits", "debit",
    "currency", "gems", "coins", "payout", "refund", "charge", "tax", "cents", "wage", "salary",
})
TERMINAL_SHARE = 0.9  # an end field must hold a date on at least this share of finished documents
UPDATED_SHARE = 0.1  # updated in place: at least this share of documents changed after creation
RECENT_DAYS = 30  # growth is read from the documents created in the last 30 days


def _words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def _normal(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def date_fields(drawn: Sample) -> list[str]:
    """Fields holding dates in at least half the sampled documents that have them."""
    return [n for n, f in drawn.fields.items() if n != "_id" and f.share("date") >= 0.5]


def reference_fields(drawn: Sample) -> list[str]:
    return [
        n for n, f in drawn.fields.items()
        if n != "_id" and REFERENCE_NAME.match(n) and (f.share("objectId") + f.share("string") + f.share("int")
                                                        + f.share("long")) >= 0.5
    ]


@dataclass(frozen=True)
class Lifecycle:
    """A status field whose values include terminal ones: finished documents can expire."""

    field: str
    values: dict[str, int]  # value -> sampled documents
    terminal: tuple[str, ...]  # the terminal values seen, as stored
    end_field: str | None  # the date that marks when a document finished
    end_basis: str  # why that field, in words

    @property
    def finished(self) -> int:
        return sum(n for v, n in self.values.items() if v in self.terminal)

    @property
    def filter(self) -> dict[str, Any]:
        """The partial filter selecting finished documents ($in needs MongoDB 6.0+ in a partial
        filter, so a single terminal value is an equality)."""
        if len(self.terminal) == 1:
            return {self.field: self.terminal[0]}
        return {self.field: {"$in": list(self.terminal)}}


def lifecycle(drawn: Sample) -> Lifecycle | None:
    for name, f in sorted(drawn.fields.items()):
        if not STATUS_NAME.match(name) or f.share("string") < 0.9:
            continue
        values = Counter(doc[name] for doc in drawn.drawn if isinstance(doc.get(name), str))
        terminal = tuple(sorted(v for v in values if _normal(v) in TERMINAL))
        if not terminal:
            continue
        end, basis = end_field(drawn, name, terminal)
        return Lifecycle(name, dict(values.most_common()), terminal, end, basis)
    return None


def end_field(drawn: Sample, status: str, terminal: tuple[str, ...]) -> tuple[str | None, str]:
    """The date field that marks when a finished document finished: one named for its end
    (resolvedAt, completedAt), else its last update, else its expiry, else its creation."""
    finished = [doc for doc in drawn.drawn if doc.get(status) in terminal]
    if not finished:
        return None, "no finished document in the sample"
    dated = [
        name for name in date_fields(drawn)
        if sum(isinstance(doc.get(name), dt.datetime) for doc in finished) >= TERMINAL_SHARE * len(finished)
    ]
    for pattern, why in (
        (END_NAME, "it records when a document finished"),
        (UPDATED_NAME, "it records the last change, which for a finished document is when it finished"),
    ):
        named = sorted(n for n in dated if pattern.match(n))
        if named:
            return named[0], why
    expiry = sorted(n for n in dated if is_expiry_field(n))
    if expiry:
        return expiry[0], "it records when a document stops being valid"
    created = sorted(n for n in dated if CREATED_NAME.match(n))
    if created:
        return created[0], (
            "no field records when a document finished, so retention runs from creation: a document that "
            "finished late is kept for less than the retention after it finished"
        )
    return None, "no date field is present on the finished documents"


@dataclass(frozen=True)
class ExemptFlag:
    """A boolean that keeps documents (pinned: true). A partial filter {flag: false} expires only
    documents that carry the flag as false: those missing it are kept too."""

    field: str
    true: int
    false: int
    missing: int

    @property
    def filter(self) -> dict[str, Any]:
        return {self.field: False}


def exempt_flag(drawn: Sample) -> ExemptFlag | None:
    for name in sorted(drawn.fields):
        if not EXEMPT_NAME.match(name) or drawn.fields[name].share("bool") < 0.9:
            continue
        values = [doc.get(name) for doc in drawn.drawn]
        true = sum(v is True for v in values)
        false = sum(v is False for v in values)
        return ExemptFlag(name, true, false, len(values) - true - false)
    return None


@dataclass(frozen=True)
class Growth:
    field: str
    per_day: float | None  # documents added per day, from the share created in the last 30 days
    span_days: float | None  # from the oldest to the newest sampled value
    recent_sampled: int  # sampled documents created in the last 30 days
    sampled: int

    def describe(self) -> str:
        if self.per_day is None:
            return "growth unknown"
        return (f"about {self.per_day:,.0f} documents a day ({self.recent_sampled} of {self.sampled} sampled documents "
                f"have {self.field} in the last {RECENT_DAYS} days)")


def growth(drawn: Sample, field: str, count: int | None, now: dt.datetime) -> Growth:
    values = [_aware(doc[field]) for doc in drawn.drawn if isinstance(doc.get(field), dt.datetime)]
    recent = sum(v >= now - dt.timedelta(days=RECENT_DAYS) for v in values)
    per_day = count * recent / max(drawn.documents, 1) / RECENT_DAYS if count is not None and drawn.documents else None
    span = (max(values) - min(values)).total_seconds() / 86400 if values else None
    return Growth(field, per_day, span, recent, drawn.documents)


def creation_field(drawn: Sample) -> str | None:
    """The date a document was created (or stamped) at, for an insert-only collection."""
    dated = date_fields(drawn)
    named = sorted(n for n in dated if CREATED_NAME.match(n))
    if named:
        return named[0]
    ranked = [(time_name_rank(n), n) for n in dated if not UPDATED_NAME.match(n) and not is_expiry_field(n)]
    ranked = [(r, n) for r, n in ranked if r is not None]
    return min(ranked)[1] if ranked else None


def updated_in_place(drawn: Sample) -> tuple[str, str, int] | None:
    """(updated field, created field, documents changed after creation) when a share of the
    sample was updated in place more than a second after it was created."""
    dated = date_fields(drawn)
    updated = sorted(n for n in dated if UPDATED_NAME.match(n))
    created = sorted(n for n in dated if CREATED_NAME.match(n))
    if not updated or not created:
        return None
    u, c = updated[0], created[0]
    changed = sum(
        1 for doc in drawn.drawn
        if isinstance(doc.get(u), dt.datetime) and isinstance(doc.get(c), dt.datetime)
        and (_aware(doc[u]) - _aware(doc[c])).total_seconds() > 1
    )
    return (u, c, changed) if changed >= UPDATED_SHARE * max(drawn.documents, 1) else None


KEEP = "keep"  # the evidence says the documents must stay
EXPIRE = "expire"  # it says they may expire
NEITHER = "neither"
# A balance held in the documents: a ledger whatever else they show.
BALANCE_WORDS = frozenset({"balance", "debit", "credit"})


@dataclass(frozen=True)
class Weighed:
    """One piece of evidence and which way it pointed. `strong` keep evidence alone is enough to
    call a TTL that exists wrong (documents someone references, a balance); weak evidence (one
    money-named field, a unique key, updates in place) keeps a TTL from being advised, but never
    condemns one the application chose."""

    name: str  # "references", "money fields", "unique keys", "updates in place", "status lifecycle", "age"
    points: str  # KEEP | EXPIRE | NEITHER
    words: str
    strong: bool = False

    def describe(self) -> str:
        return f"{self.points}{' (strong)' if self.strong else ''}: {self.words}"


@dataclass(frozen=True)
class Classification:
    kind: str  # ENTITY | LEDGER | EVENT | KEPT
    reasons: tuple[str, ...]
    lifecycle: Lifecycle | None = None
    weighed: tuple[Weighed, ...] = ()

    def describe(self) -> str:
        return f"{self.kind}: " + "; ".join(self.reasons)

    @property
    def strong(self) -> bool:
        """Evidence strong enough to call an existing TTL wrong without a declaration."""
        return any(w.points == KEEP and w.strong for w in self.weighed)

    def kept_by(self, *names: str) -> bool:
        return any(w.points == KEEP and w.name in names for w in self.weighed)

    def evidence(self) -> dict[str, str]:
        """Each piece of evidence and which way it pointed, for a finding's evidence."""
        return {w.name: w.describe() for w in self.weighed}


def weigh(info: CollectionInfo, drawn: Sample, referenced_by: list[str], cycle: Lifecycle | None) -> tuple[Weighed, ...]:
    """Every piece of evidence about whether the documents may expire, each with its direction."""
    found = []
    if referenced_by:
        found.append(Weighed("references", KEEP, f"referenced by {', '.join(sorted(referenced_by)[:5])}: deleting one "
                             "leaves references to nothing", strong=True))
    else:
        found.append(Weighed("references", NEITHER, "no other collection's sampled documents reference it"))
    money = sorted(n for n, f in drawn.fields.items() if MONEY_WORDS & set(_words(n)) or f.share("decimal") >= 0.5)
    balance = [n for n in money if BALANCE_WORDS & set(_words(n))]
    if balance or (len(money) >= 2 and cycle is None):
        found.append(Weighed("money fields", KEEP, f"{', '.join(money)}: "
                             + ("a balance is kept in them" if balance else "amounts with no lifecycle: a ledger"), strong=True))
    elif money:
        found.append(Weighed("money fields", KEEP, f"{', '.join(money)}: money-named, but "
                             + ("one field alone" if len(money) == 1 else "on work items with a lifecycle")
                             + " does not make a ledger"))
    else:
        found.append(Weighed("money fields", NEITHER, "none"))
    unique = [i for i in info.indexes if i.unique and not i.is_id]
    if unique:
        found.append(Weighed("unique keys", KEEP, "unique key " + ", ".join(
            i.describe().removesuffix(" unique=True") for i in unique[:3]) + ": an expired document's key can come back"))
    else:
        found.append(Weighed("unique keys", NEITHER, "none besides _id"))
    changed = updated_in_place(drawn)
    if changed and cycle is None:
        u, c, n = changed
        found.append(Weighed("updates in place", KEEP, f"{n} of {drawn.documents} sampled documents have {u} later than {c}"))
    elif changed:
        found.append(Weighed("updates in place", NEITHER, "updated, as its status lifecycle moves"))
    else:
        found.append(Weighed("updates in place", EXPIRE, "none seen: insert-only"))
    if cycle is not None:
        found.append(Weighed("status lifecycle", EXPIRE, f"{cycle.field} takes terminal values {', '.join(cycle.terminal)}"))
    else:
        found.append(Weighed("status lifecycle", NEITHER, "no status field with terminal values"))
    found.append(_age(drawn))
    return tuple(found)


def _age(drawn: Sample) -> Weighed:
    """How the documents' creation times spread: a collection whose old documents stay, while
    new ones keep coming, accumulates."""
    field = creation_field(drawn)
    values = [_aware(doc[field]) for doc in drawn.drawn if field and isinstance(doc.get(field), dt.datetime)]
    if not values:
        return Weighed("age", NEITHER, "no creation time in the sampled documents")
    span = (max(values) - min(values)).total_seconds() / 86400
    if span >= RECENT_DAYS:
        return Weighed("age", EXPIRE, f"{field} spans {span:,.0f} days in the sample: old documents stay")
    return Weighed("age", NEITHER, f"{field} spans {span:,.0f} days in the sample")


def classify(
    info: CollectionInfo, drawn: Sample, referenced_by: list[str], kept: bool,
) -> Classification:
    """Entity, ledger, event or kept, with every piece of evidence weighed (`Classification.weighed`).
    Any evidence to keep the documents makes it an entity or a ledger, so no TTL is advised on
    a guess; only strong evidence (`Classification.strong`) calls an existing TTL wrong. A
    work-item collection (a status with terminal values) counts as events: its finished
    documents are the ones that may expire, and its updates are the lifecycle itself."""
    cycle = lifecycle(drawn)
    weighed = weigh(info, drawn, referenced_by, cycle)
    if kept:
        return Classification(KEPT, ("listed in keep_forever",), cycle, weighed)
    money = sorted(n for n, f in drawn.fields.items() if MONEY_WORDS & set(_words(n)) or f.share("decimal") >= 0.5)
    if money:
        return Classification(LEDGER, (f"money-like fields: {', '.join(money)}",), cycle, weighed)
    reasons = []
    if referenced_by:
        reasons.append(f"referenced by {', '.join(sorted(referenced_by)[:5])}")
    unique = [i for i in info.indexes if i.unique and not i.is_id]
    if unique:
        reasons.append("unique key " + ", ".join(i.describe().removesuffix(" unique=True") for i in unique[:3]))
    changed = updated_in_place(drawn)
    if changed and cycle is None:
        u, c, n = changed
        reasons.append(f"updated in place: {n} of {drawn.documents} sampled documents have {u} later than {c}")
    refs = reference_fields(drawn)
    others = [n for n in drawn.fields if n != "_id" and n not in refs and n not in date_fields(drawn)]
    if len(refs) >= 2 and len(others) <= 1 and cycle is None:
        reasons.append(f"a relationship: references {', '.join(refs)} and little else")
        weighed = (*weighed, Weighed("relationship", KEEP, f"references {', '.join(refs)} and little else"))
    if reasons:
        return Classification(ENTITY, tuple(reasons), cycle, weighed)
    if cycle is not None:
        return Classification(EVENT, (
            f"work items: {cycle.field} takes terminal values {', '.join(cycle.terminal)}",), cycle, weighed)
    return Classification(EVENT, ("insert-only: never referenced, no unique key, no update after creation",), cycle, weighed)


def referenced_collections(samples: list[Sample], names: dict[str, list[str]],
                           declared: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """(database, collection) -> the "collection.field" references pointing at it: found by
    name (userId -> users) in the other collections' samples, and declared in the config."""
    found: dict[tuple[str, str], list[str]] = {}
    for drawn in samples:
        for field in reference_fields(drawn):
            target = referenced_collection(field, names.get(drawn.database, []))
            if target is not None and target != drawn.collection:
                found.setdefault((drawn.database, target), []).append(f"{drawn.collection}.{field}")
    for database, source, target in declared:
        found.setdefault((database, target), []).append(source)
    return found
