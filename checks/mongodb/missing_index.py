"""mongodb.missing-index: query shapes that scan, and declared indexes that are absent.

Query shapes come from every source the server offers (see `_query_sources`): `$queryStats`,
the profiler (`system.profile`, only where someone turned it on: this check never does), the
slow-query log read with getLog, operations running now (currentOp), and
`[[targets.NAME.expect.queries]]`. The same shape from several sources is one shape; its
figures come from the most complete source. Each shape is explained in queryPlanner mode,
which plans the query without running it. With no source at all, one finding says what to
turn on, never a silent "ok".
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import Field

from checks.config import IndexExpectation, QueryExpectation
from checks.contract import Check, CheckOptions, Scope
from checks.model import Finding, Fix, FixAvailability, FixSafety, FixStep, Severity
from checks.mongodb._inventory import (
    CollectionInfo,
    OWN_COMMENT,
    IndexSpec,
    OverBudget,
    budgeted,
    coverage,
    create_indexes,
    describe_key,
    drop_index,
    IndexSuggestion,
    esr_index,
    index_name,
    call_budget,
    inventory,
    key_serves,
    limited,
    measured,
    predicates,
    query_shape,
    sample,
)
from checks.mongodb._query_sources import OWN_APP, current_op_entries, parse_slow_log, query_stats_entries
from checks.mongodb._schema import DynamicKeys, dynamic_objects
from checks.mongodb.profiler import read_profiler_setting

# Read from system.profile: the most recent operations that can be served by an index.
PROFILE_FILTER = {"op": {"$in": ["query", "command", "update", "remove"]}}
PROFILE_PROJECTION = {
    "op": 1, "ns": 1, "command": 1, "docsExamined": 1, "keysExamined": 1, "nreturned": 1,
    "nMatched": 1, "ndeleted": 1, "millis": 1, "planSummary": 1, "appName": 1, "ts": 1,
}
QUERY_STATS_LIMIT = 1000  # query shapes read from $queryStats
DUPLICATE_EXAMPLES = 5  # most repeated keys shown when a unique index would be refused
DYNAMIC_SAMPLE = 200  # documents sampled to tell a map from a sub-document (the checks' shared sample)
# Our own sampling and statistics commands, which must not be reported as the application's.
OWN_STAGES = {"$sample", "$indexStats", "$collStats"}
BUILD_LOCK = (
    "index build: an exclusive collection lock only at its start and end (MongoDB 4.2+); "
    "reads the whole collection meanwhile (I/O load)"
)


class MissingIndexOptions(CheckOptions):
    profile_entries: int = Field(
        default=1000, ge=0, description="Most recent system.profile entries read per database (0: ignore the profiler)."
    )
    min_examined_ratio: float = Field(
        default=10.0, gt=0, description="Documents examined per document returned above which an index scan is poor."
    )
    large_collection: int = Field(
        default=100_000, ge=0, description="Documents from which a scanning query is high severity."
    )
    small_collection: int = Field(
        default=1_000, ge=0, description="Documents under which a scanning query is low severity."
    )
    slow_log: bool = Field(default=True, description="Read slow-query lines from the server's log (getLog).")
    query_stats: bool = Field(default=True, description="Read $queryStats where the server offers it.")
    running_for: int = Field(
        default=5, ge=0, description="Seconds after which an operation running now (currentOp) is read as a shape."
    )


@dataclass(frozen=True)
class Plan:
    """The winning plan of a queryPlanner explain, reduced to what judges index use."""

    stages: tuple[str, ...]
    index: str | None = None
    index_key: dict[str, Any] | None = None

    @property
    def collection_scan(self) -> bool:
        return "COLLSCAN" in self.stages

    @property
    def in_memory_sort(self) -> bool:
        return "SORT" in self.stages

    @property
    def summary(self) -> str:
        return " <- ".join(self.stages) + (f" ({self.index})" if self.index else "")


def plan_from_explain(explain: dict[str, Any]) -> Plan:
    winning = explain.get("queryPlanner", {}).get("winningPlan", {})
    winning = winning.get("queryPlan", winning)  # the slot-based engine (7.0+) nests the plan
    stages: list[str] = []
    index = key = None
    node: Any = winning
    while isinstance(node, dict) and node:
        stage = str(node.get("stage", "?"))
        stages.append(stage)
        if stage in ("IXSCAN", "COUNT_SCAN", "DISTINCT_SCAN") and index is None:
            index, key = node.get("indexName"), dict(node.get("keyPattern") or {})
        children = node.get("inputStages") or [node.get("inputStage")]
        node = children[0] if children else None
    return Plan(stages=tuple(stages), index=index, index_key=key)


@dataclass
class QueryShape:
    database: str
    collection: str
    filter: dict[str, Any]  # one real example: explained, never shown
    sort: dict[str, int] | None
    sources: list[str]
    executions: int = 0
    docs_examined: int | None = None  # None: the server did not report it
    keys_examined: int | None = None
    returned: int | None = None
    millis: int = 0
    plan_summaries: set[str] = field(default_factory=set)
    plan: Plan | None = None
    count: int | None = 0  # documents in the collection; None: did not answer in time (see `unknown`)
    size: int | None = 0  # bytes
    unknown: str = ""
    indexes: tuple[IndexSpec, ...] = ()
    explain_error: str | None = None

    @property
    def shape(self) -> dict[str, Any]:
        return query_shape(self.filter)

    @property
    def key(self) -> str:
        return shape_key(self.collection, self.filter, self.sort)

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.collection}"


def shape_key(collection: str, filter_: dict[str, Any], sort: dict[str, Any] | None) -> str:
    return json.dumps([collection, query_shape(filter_), list((sort or {}).items())], default=str)


@dataclass(frozen=True)
class ProfilerState:
    database: str
    level: int | None
    slowms: int | None
    entries: int  # entries read
    reports_examined: bool  # whether entries carry docsExamined (SecantusDB's do not)


@dataclass(frozen=True)
class Duplicates:
    """Keys held by more than one document, which a unique index build refuses (E11000)."""

    keys: int | None  # keys held more than once; None: not counted (over the call budget)
    documents: int = 0  # documents holding them
    examples: tuple[dict[str, Any], ...] = ()  # the most repeated keys, with their counts
    reason: str = ""  # why they were not counted


@dataclass(frozen=True)
class DeclaredIndex:
    expectation: IndexExpectation
    database: str
    collection_exists: bool
    indexes: tuple[IndexSpec, ...]
    duplicates: Duplicates | None = None  # counted for a missing unique index on an existing collection


@dataclass(frozen=True)
class SourceState:
    """One query source: whether it gave this check anything to judge, and what it said."""

    name: str
    available: bool
    detail: str
    shapes: int = 0


@dataclass
class MissingIndexFacts:
    shapes: list[QueryShape]
    profilers: list[ProfilerState]
    declared: list[DeclaredIndex]
    sources: list[SourceState] = field(default_factory=list)
    dynamic: dict[tuple[str, str], dict[str, DynamicKeys]] = field(default_factory=dict)  # (db, coll) -> maps


def operation_of(entry: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, int] | None] | None:
    """(collection, filter, sort) of a profiled operation an index could serve, else None."""
    command = entry.get("command") or {}
    ns = str(entry.get("ns", ""))
    collection = ns.split(".", 1)[1] if "." in ns else ""
    if not collection or collection.startswith("system.") or entry.get("appName") == OWN_APP:
        return None
    if command.get("comment") == OWN_COMMENT:  # dbvitals's own reads, where no app name was recorded
        return None
    op = entry.get("op")
    if op in ("update", "remove"):
        return collection, dict(command.get("q") or {}), None
    if "find" in command:
        return collection, dict(command.get("filter") or {}), _sort(command.get("sort"))
    if "count" in command or "distinct" in command:
        return collection, dict(command.get("query") or {}), None
    if "findAndModify" in command or "findandmodify" in command:
        return collection, dict(command.get("query") or {}), _sort(command.get("sort"))
    if "aggregate" in command:
        pipeline = list(command.get("pipeline") or [])
        if any(set(stage) & OWN_STAGES for stage in pipeline if isinstance(stage, dict)):
            return None
        filter_: dict[str, Any] = {}
        sort = None
        for stage in pipeline:
            if "$match" in stage and not filter_ and sort is None:
                filter_ = dict(stage["$match"])
            elif "$sort" in stage and sort is None:
                sort = _sort(stage["$sort"])
            else:
                break
        return collection, filter_, sort
    return None


def _sort(value: Any) -> dict[str, int] | None:
    if not value:
        return None
    return {str(k): int(v) for k, v in dict(value).items() if isinstance(v, (int, float))} or None


def merge_profile(entries: list[dict[str, Any]], database: str, source: str = "profiler") -> list[QueryShape]:
    """Profiler-shaped entries grouped by query shape, their figures summed. An entry may stand
    for several executions ($queryStats: `executions`)."""
    shapes: dict[str, QueryShape] = {}
    for entry in entries:
        operation = operation_of(entry)
        if operation is None:
            continue
        collection, filter_, sort = operation
        if not filter_ and not sort:
            continue  # reading everything: no index helps
        key = shape_key(collection, filter_, sort)
        shape = shapes.setdefault(key, QueryShape(database, collection, filter_, sort, [source]))
        shape.executions += int(entry.get("executions", 1))
        shape.millis += int(entry.get("millis") or 0)
        if "docsExamined" in entry:
            shape.docs_examined = (shape.docs_examined or 0) + int(entry["docsExamined"])
            shape.keys_examined = (shape.keys_examined or 0) + int(entry.get("keysExamined") or 0)
            returned = entry.get("nreturned", entry.get("nMatched", entry.get("ndeleted", 0)))
            shape.returned = (shape.returned or 0) + int(returned or 0)
        if entry.get("planSummary"):
            shape.plan_summaries.add(str(entry["planSummary"]))
    return list(shapes.values())


def by_database(entries: list[dict[str, Any]], databases: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Server-wide entries (log, $queryStats, currentOp) split by the judged database of their ns."""
    split: dict[str, list[dict[str, Any]]] = {db: [] for db in databases}
    for entry in entries:
        db = str(entry.get("ns", "")).split(".", 1)[0]
        if db in split:
            split[db].append(entry)
    return split


class MissingIndex(Check):
    id = "mongodb.missing-index"
    engine = "mongodb"
    title = "Queries that scan collections, and declared indexes that are missing"
    severity = Severity.HIGH
    fix_availability = FixAvailability.SOMETIMES
    rationale = (
        "A query without a fitting index reads every document (COLLSCAN) or sorts its results in memory: "
        "cheap on a small collection, a CPU and I/O storm once it grows, and the in-memory sort fails outright "
        "past 100 MB. Declared indexes turn a schema's recommended indexes into a pre-deploy gate."
    )
    Options = MissingIndexOptions

    async def gather(self, session: Any, scope: Scope) -> MissingIndexFacts:
        options: MissingIndexOptions = scope.options
        databases = await session.databases()
        expect = scope.config.expect
        expectations: tuple[QueryExpectation | IndexExpectation, ...] = (*expect.queries, *expect.indexes)
        named = [e.database for e in expectations if e.database]
        shapes: dict[str, QueryShape] = {}
        sources: list[SourceState] = []

        def add(database: str, found: list[QueryShape]) -> int:
            """Shapes already seen keep the figures of the more complete source read first."""
            for shape in found:
                existing = shapes.get(f"{database}\0{shape.key}")
                if existing is None:
                    shapes[f"{database}\0{shape.key}"] = shape
                else:
                    existing.sources.extend(s for s in shape.sources if s not in existing.sources)
            return len(found)

        # Most complete figures first: $queryStats totals, then the profiler, the log, running operations.
        stats_state, stats_entries = await self._query_stats(session, options)
        split = by_database(stats_entries, databases)
        count = sum(add(db, merge_profile(split[db], db, "$queryStats")) for db in databases)
        sources.append(SourceState(stats_state.name, stats_state.available, stats_state.detail, count))
        profilers: list[ProfilerState] = []
        count = 0
        for database in databases:
            profiler, entries = await self._profile(session, database, options.profile_entries)
            profilers.append(profiler)
            count += add(database, merge_profile(entries, database))
        sources.append(_profiler_source(profilers, count))
        log_state, log_entries = await self._slow_log(session, options)
        split = by_database(log_entries, databases)
        count = sum(add(db, merge_profile(split[db], db, "slow-query log")) for db in databases)
        sources.append(SourceState(log_state.name, log_state.available, log_state.detail, count))
        running_state, running = await self._current_op(session, options)
        split = by_database(running, databases)
        count = sum(add(db, merge_profile(split[db], db, "currentOp")) for db in databases)
        sources.append(SourceState(running_state.name, running_state.available, running_state.detail, count))
        for query in expect.queries:
            database = query.database or session.default_database or (databases[0] if databases else None)
            if database is None:
                continue
            add(database, [_declared_shape(query, database)])
        sources.append(SourceState("declared queries", bool(expect.queries), f"{len(expect.queries)} in the config",
                                   len(expect.queries)))
        infos = {db: {i.name: i for i in await inventory(session, db)} for db in dict.fromkeys([*databases, *named])}
        budget = call_budget(scope.config)
        await asyncio.gather(*(self._explain(session, s, infos, budget) for s in shapes.values()))
        dynamic = await self._dynamic(session, list(shapes.values()), infos, budget)
        declared_indexes = [d for exp in expect.indexes if (d := _declared_index(exp, session.default_database, infos))]
        declared_indexes = [await self._count_duplicates(session, d, budget) for d in declared_indexes]
        return MissingIndexFacts(list(shapes.values()), profilers, declared_indexes, sources, dynamic)

    async def _count_duplicates(self, session: Any, declared: DeclaredIndex, budget: float) -> DeclaredIndex:
        """Before a unique index is offered as a safe build, the keys it would refuse are counted:
        one aggregate grouping the documents it would hold by its key (under the call budget)."""
        exp = declared.expectation
        want = expected_spec(exp)
        if not exp.unique or not declared.collection_exists or any(i.key == tuple(want["key"].items()) for i in declared.indexes):
            return declared
        held: dict[str, Any] = dict(exp.partial_filter or {})
        if exp.sparse:  # a sparse index holds only documents with a key field
            held["$or"] = [{name: {"$exists": True}} for name in want["key"]]
        key = {f"k{i}": f"${name}" for i, name in enumerate(want["key"])}
        names = dict(zip(key, want["key"]))
        pipeline = [
            *([{"$match": held}] if held else []),
            {"$group": {"_id": key, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
            {"$facet": {
                "examples": [{"$sort": {"n": -1, "_id": 1}}, {"$limit": DUPLICATE_EXAMPLES}],
                "total": [{"$group": {"_id": None, "keys": {"$sum": 1}, "documents": {"$sum": "$n"}}}],
            }},
        ]
        coll = session.client[declared.database][exp.collection]

        async def run() -> list[dict[str, Any]]:
            return await (await coll.aggregate(pipeline, comment=OWN_COMMENT)).to_list(1)

        try:
            [reply] = await budgeted(session, "counting duplicate keys", budget, run)
        except OverBudget as exc:
            return replace(declared, duplicates=Duplicates(None, reason=exc.reason))
        total = (reply.get("total") or [{}])[0]
        examples = tuple({**{names[k]: v for k, v in row["_id"].items()}, "documents": row["n"]} for row in reply.get("examples", []))
        return replace(declared, duplicates=Duplicates(int(total.get("keys", 0)), int(total.get("documents", 0)), examples))

    async def _dynamic(
        self, session: Any, shapes: list[QueryShape], infos: dict[str, dict[str, CollectionInfo]], budget: float
    ) -> dict[tuple[str, str], dict[str, DynamicKeys]]:
        """Objects used as maps, in the collections whose queries filter on a dotted path: the
        sample (memoised, shared with the other checks) tells a map from a sub-document."""
        wanted = {(s.database, s.collection) for s in shapes if any("." in f for f in _fields(s.filter))}
        found = {}
        for db, coll in sorted(wanted):
            info = infos.get(db, {}).get(coll)
            if info is not None:
                drawn = await sample(session, info, DYNAMIC_SAMPLE, budget)
                found[(db, coll)] = dynamic_objects(drawn)
        return found

    async def _query_stats(self, session: Any, options: MissingIndexOptions) -> tuple[SourceState, list[dict[str, Any]]]:
        from pymongo.errors import OperationFailure  # the driver only when a check runs

        name = "$queryStats"
        if not options.query_stats:
            return SourceState(name, False, "off (query_stats = false)"), []

        async def read() -> list[dict[str, Any]]:
            cursor = await session.client.admin.aggregate([{"$queryStats": {}}], comment=OWN_COMMENT)
            return await cursor.to_list(QUERY_STATS_LIMIT)

        try:
            documents = await limited(session, read())
        except OperationFailure as exc:
            return SourceState(name, False, f"not offered by this server ({exc.code}: {str(exc)[:120]})"), []
        return SourceState(name, True, f"{len(documents)} query shapes"), query_stats_entries(documents)

    async def _slow_log(self, session: Any, options: MissingIndexOptions) -> tuple[SourceState, list[dict[str, Any]]]:
        from pymongo.errors import OperationFailure  # the driver only when a check runs

        name = "slow-query log"
        if not options.slow_log:
            return SourceState(name, False, "off (slow_log = false)"), []
        try:
            reply = await limited(session, session.client.admin.command({"getLog": "global"}))
        except OperationFailure as exc:  # needs the getLog privilege (clusterMonitor)
            return SourceState(name, False, f"getLog refused ({exc.code}: {str(exc)[:120]}); it needs clusterMonitor"), []
        log = parse_slow_log([str(line) for line in reply.get("log", [])])
        if not log.structured:
            # Said without the line count, which moves with the server's own log: the same answer twice.
            return SourceState(name, False, "getLog's lines are not in mongod's structured format "
                                            "(MongoDB 4.4+): no slow-query lines to read"), []
        own = [e for e in log.entries if e.get("appName") == "dbvitals"]
        return SourceState(name, True, f"{len(log.entries) - len(own)} slow operations in the last {log.lines} lines"), log.entries

    async def _current_op(self, session: Any, options: MissingIndexOptions) -> tuple[SourceState, list[dict[str, Any]]]:
        from pymongo.errors import OperationFailure  # the driver only when a check runs

        name = "currentOp"
        try:
            reply = await limited(session, session.client.admin.command({"currentOp": 1, "active": True}))
        except OperationFailure as exc:  # needs inprog (clusterMonitor) to see other users' operations
            return SourceState(name, False, f"refused ({exc.code}: {str(exc)[:120]})"), []
        entries = current_op_entries(list(reply.get("inprog", [])), options.running_for)
        # Only operations running now: it never tells alone that nothing is slow.
        return SourceState(name, False, f"{len(entries)} scans or long operations running now"), entries

    async def _profile(self, session: Any, database: str, limit: int) -> tuple[ProfilerState, list[dict[str, Any]]]:
        from pymongo.errors import OperationFailure  # the driver only when a check runs

        entries: list[dict[str, Any]] = []
        try:
            setting = await read_profiler_setting(session.client, database)
        except OperationFailure:  # not authorised to read it: the profiler is unknown, the rest still runs
            return ProfilerState(database, None, None, 0, False), entries
        if limit:
            db = session.client[database]
            names = await limited(session, db.list_collection_names(filter={"name": "system.profile"}))
            if names:
                cursor = db["system.profile"].find(PROFILE_FILTER, PROFILE_PROJECTION).sort("ts", -1).limit(limit)
                entries = await limited(session, cursor.to_list(limit))
        state = ProfilerState(
            database=database,
            level=setting.level,
            slowms=setting.slowms,
            entries=len(entries),
            reports_examined=any("docsExamined" in e for e in entries),
        )
        return state, entries

    async def _explain(
        self, session: Any, shape: QueryShape, infos: dict[str, dict[str, CollectionInfo]], budget: float
    ) -> None:
        info = infos.get(shape.database, {}).get(shape.collection)
        if info is None:
            shape.plan = Plan(stages=("EOF",))  # no such collection: nothing to scan yet
            return
        shape.indexes = info.indexes
        find: dict[str, Any] = {"find": shape.collection, "filter": shape.filter}
        if shape.sort:
            find["sort"] = shape.sort
        from pymongo.errors import OperationFailure  # the driver only when a check runs

        try:
            explain = await limited(
                session, session.client[shape.database].command({"explain": find, "verbosity": "queryPlanner"})
            )
        except OperationFailure as exc:  # a profiled filter this server cannot plan: not judged
            shape.explain_error = f"{exc.code}: {str(exc)[:200]}"
            return
        shape.plan = plan_from_explain(explain)
        info = await measured(session, info, budget)  # sizes rank the impact and sit in the evidence
        shape.count, shape.size, shape.unknown = info.count, info.size, info.unknown

    def evaluate(self, facts: MissingIndexFacts, scope: Scope) -> list[Finding]:
        options: MissingIndexOptions = scope.options
        examined_known = {p.database: p.reports_examined for p in facts.profilers}
        problems = [(s, problem) for s in facts.shapes if (problem := self._problem(s, options))]
        problems.sort(key=lambda item: -_impact(item[0]))
        suggestions = suggest(problems, facts.dynamic)
        findings = []
        wildcards: dict[tuple[str, str], list[tuple[QueryShape, Finding]]] = {}
        for rank, (shape, problem) in enumerate(problems, 1):
            suggested = suggestions.get(shape.key)
            finding = self._shape_finding(scope, shape, problem, rank, len(problems), examined_known, options, suggested)
            wildcard = next((k for k in suggested.suggestion.key if k.endswith(".$**")), None) if suggested else None
            if wildcard is None:
                findings.append(finding)
            else:  # one finding per wildcard index, however many of the map's keys are queried
                group = wildcards.setdefault((shape.namespace, wildcard), [])
                if not group:
                    findings.append(finding)
                group.append((shape, finding))
        for group in wildcards.values():
            if len(group) > 1:
                findings[findings.index(group[0][1])] = self._wildcard_finding(scope, group)
        profilers = {p.database: p for p in facts.profilers}
        for finding in findings:
            profiler = profilers.get(finding.evidence["namespace"].split(".", 1)[0])
            if profiler is not None:
                finding.evidence["profiler"] = (
                    f"level {'unknown' if profiler.level is None else profiler.level}, slowms {profiler.slowms}, "
                    f"{profiler.entries} recent entries read"
                )
        findings.extend(f for d in facts.declared if (f := self._declared_finding(scope, d)))
        if facts.sources and not any(src.available for src in facts.sources):
            findings.append(self._blind(scope, facts.sources))
        return findings

    def _blind(self, scope: Scope, sources: list[SourceState]) -> Finding:
        """No source of the application's queries: say so, and what to turn on."""
        return self.finding(
            scope,
            object="queries",
            title="No query source: scanning queries cannot be found",
            message=(
                "No source tells which queries the application runs, so no missing index can be found (this is not "
                f"an \"ok\"). Turn one on: the profiler for a while (dbvitals profiler --target {scope.target} "
                "--level 1 --for 30m, then run the check during it); or, on a self-hosted mongod 4.4+, let the check "
                "read the slow-query log (getLog needs the clusterMonitor role; operations slower than slowms, 100 ms "
                "by default, are logged); or declare the application's queries in [[targets.NAME.expect.queries]]."
            ),
            evidence={"sources": {src.name: src.detail for src in sources}},
            severity=Severity.INFO,
            key="no-source",
        )

    def _problem(self, shape: QueryShape, options: MissingIndexOptions) -> str | None:
        plan = shape.plan
        if plan is None or plan.stages == ("EOF",) or (not shape.filter and not shape.sort):
            return None
        if plan.collection_scan:
            if shape.count is None:
                return f"scans the whole collection (COLLSCAN over an unknown number of documents: {shape.unknown})"
            return f"scans the whole collection (COLLSCAN over {shape.count:,} documents)"
        if plan.in_memory_sort and shape.sort:
            suggestion = esr_index(shape.filter, shape.sort)
            used = next((i for i in shape.indexes if i.name == plan.index), None)
            served = coverage(used, suggestion) if suggestion and used else None
            if served is not None and served.serves:
                # The chosen index already yields this order (a SORT stage over it is the server's
                # planner, e.g. SecantusDB's, not a missing index).
                return None
            return f"sorts in memory: index {plan.index} does not provide the sort order"
        if shape.docs_examined is not None and shape.docs_examined >= 1000:
            ratio = shape.docs_examined / max(shape.returned or 0, 1)
            if ratio >= options.min_examined_ratio:
                return (
                    f"uses index {plan.index} poorly: {shape.docs_examined:,} documents examined for "
                    f"{shape.returned or 0:,} returned ({ratio:,.0f} per result)"
                )
        return None

    def _shape_finding(
        self, scope: Scope, shape: QueryShape, problem: str, rank: int, total: int,
        examined_known: dict[str, bool], options: MissingIndexOptions, suggested: Suggested | None = None,
    ) -> Finding:
        suggestion = suggested.suggestion if suggested else esr_index(shape.filter, shape.sort)
        covers = [(i, c) for i in shape.indexes if suggestion and (c := coverage(i, suggestion)) is not None]
        covered_by = next((i for i, c in covers if c.serves), None)
        evidence_covers = {i.name: c.words for i, c in covers}
        if shape.docs_examined is not None:
            basis = "documents examined minus returned, as the profiler reports them"
        elif "profiler" in shape.sources and not examined_known.get(shape.database, True):
            basis = (
                "collection size × executions: the profiler entries carry no docsExamined/nreturned "
                "(this server does not report them), so impact is ranked by collection size"
            )
        else:
            basis = "collection size × executions (a declared query: no execution figures)"
        if shape.docs_examined is None and shape.size is None:
            basis += f"; the size is unknown ({shape.unknown}), so this shape ranks last"
        severity = self._severity(shape, options)
        evidence: dict[str, Any] = {
            "namespace": shape.namespace,
            "query_shape": shape.shape,
            "sort": shape.sort,
            "sources": sorted(set(shape.sources)),
            "plan": shape.plan.summary if shape.plan else None,
            "collection_documents": shape.count if shape.count is not None else f"unknown: {shape.unknown}",
            "collection_bytes": shape.size if shape.size is not None else f"unknown: {shape.unknown}",
            "existing_indexes": [i.describe() for i in shape.indexes],
            "rank": f"{rank} of {total}",
            "impact": _impact(shape),
            "impact_basis": basis,
        }
        if "profiler" in shape.sources:
            evidence.update(
                executions=shape.executions,
                total_millis=shape.millis,
                docs_examined=shape.docs_examined if shape.docs_examined is not None else "unknown",
                keys_examined=shape.keys_examined if shape.keys_examined is not None else "unknown",
                returned=shape.returned if shape.returned is not None else "unknown",
                plan_summaries=sorted(shape.plan_summaries) or "unknown",
            )
        if covers:
            evidence["existing_index_with_these_fields"] = evidence_covers
        fix = None
        message = f"{shape.namespace}: the query {json.dumps(shape.shape)}"
        message += f" sorted by {json.dumps(shape.sort)}" if shape.sort else ""
        message += f" {problem}."
        if suggestion is None:
            message += " Its filter ($or, $expr, $where or $text) needs an index per branch or a rewrite; no single index is suggested."
        elif covered_by is not None:
            message += (
                f" The suggested key {describe_key(suggestion.key)} is not needed: {evidence_covers[covered_by.name]}. "
                "The planner did not choose it (hidden, or a hint/collation mismatch): check the query."
            )
        else:
            name = index_name(suggestion.key)
            evidence["suggested_index"] = suggestion.key
            evidence["ordering"] = suggestion.order
            if suggestion.alternative:
                evidence["alternative_if_range_is_selective"] = suggestion.alternative
            message += f" Suggested index {describe_key(suggestion.key)} by the {suggestion.order}."
            if covers:
                message += " " + " ".join(f"{c.words}." for _, c in covers)
            if suggested is not None and suggested.collapsed:
                evidence["collapsed"] = suggested.collapsed
                message += f" {suggested.collapsed}."
            fix = Fix(
                summary=f"Create index {name} on {shape.namespace}",
                steps=(
                    FixStep("mongodb", create_indexes(shape.collection, {"key": suggestion.key, "name": name}),
                            f"build {describe_key(suggestion.key)}", database=shape.database),
                ),
                safety=FixSafety.SAFE,
                lock=BUILD_LOCK,
                inverse=(FixStep("mongodb", drop_index(shape.collection, name), f"drop {name}", database=shape.database),),
                notes=suggestion.order,
            )
        return self.finding(
            scope,
            object=shape.namespace,
            title=f"Query on {shape.collection} {problem.split(':')[0].split(' (')[0]}",
            message=message,
            evidence=evidence,
            severity=severity,
            fix=fix,
            key=shape.key,
        )

    def _wildcard_finding(self, scope: Scope, group: list[tuple[QueryShape, Finding]]) -> Finding:
        """The query shapes on one map's keys as one finding: they all want the same wildcard
        index, so one finding (the highest ranked shape's, with every shape listed) says it."""
        first_shape, first = group[0]
        field = next(k for k in first.evidence["suggested_index"]).removesuffix(".$**")
        shapes = [shape.shape for shape, _ in group]
        return self.finding(
            scope,
            object=first.object,
            title=f"{len(group)} queries on the keys of {first_shape.collection}.{field} scan",
            message=f"{first_shape.namespace}: {len(group)} query shapes filter on keys of the map {field} "
            f"(e.g. {json.dumps(shapes[0])}) and scan. One wildcard index {describe_key(first.evidence['suggested_index'])} "
            f"serves a query on any of its keys. {first.evidence['ordering']}.",
            evidence={**first.evidence, "query_shape": shapes[0], "query_shapes": shapes, "shapes": len(group),
                      "sources": sorted({src for shape, _ in group for src in shape.sources})},
            severity=max((f.severity for _, f in group), key=lambda severity: severity.rank),
            fix=first.fix,
            key=f"wildcard:{field}",
        )

    def _severity(self, shape: QueryShape, options: MissingIndexOptions) -> Severity:
        if shape.count is None and shape.docs_examined is None:
            return Severity.MEDIUM  # the size did not answer in time: neither small nor large is claimed
        scanned = max(shape.count or 0, shape.docs_examined or 0)
        if scanned >= options.large_collection:
            return Severity.HIGH
        if scanned >= options.small_collection:
            return Severity.MEDIUM
        return Severity.LOW

    def _declared_finding(self, scope: Scope, declared: DeclaredIndex) -> Finding | None:
        exp = declared.expectation
        coll, db = exp.collection, declared.database
        want = expected_spec(exp)
        want_key = tuple(want["key"].items())
        same_key = next((i for i in declared.indexes if i.key == want_key), None)
        evidence: dict[str, Any] = {
            "namespace": f"{db}.{coll}",
            "expected": want,
            "collection_exists": declared.collection_exists,
            "existing_indexes": [i.create_spec() for i in declared.indexes],
        }
        if same_key is None:
            same_name = next((i for i in declared.indexes if exp.name and i.name == exp.name), None)
            if same_name is not None:
                return self._different(scope, declared, same_name, want, evidence, f"has key {describe_key(same_name.key_document)}")
            safety = FixSafety.UNSAFE if exp.expire_after is not None else FixSafety.SAFE
            notes = (("A TTL index deletes every already-expired document on its first pass. " if exp.expire_after else "")
                     or None)
            message = ""
            dup = declared.duplicates
            if dup is not None:
                evidence["duplicate_keys"] = dup.keys if dup.keys is not None else f"unknown: {dup.reason}"
                if dup.keys:
                    evidence["documents_with_duplicate_keys"] = dup.documents
                    evidence["duplicate_examples"] = [dict(e) for e in dup.examples]
                    safety = FixSafety.MANUAL
                    message = (f" The build would fail (E11000): {dup.keys:,} keys are held by {dup.documents:,} documents, "
                               f"e.g. {json.dumps(dup.examples[0], default=str)}.")
                    notes = (f"Clean up first: {dup.keys:,} keys are held by more than one document ({dup.documents:,} "
                             "documents). Decide which document keeps each key, merge or delete the others, count again "
                             "(none may remain), then build the index.")
                elif dup.keys is None:
                    safety = FixSafety.UNSAFE
                    notes = f"Duplicate keys were not counted ({dup.reason}): the build fails (E11000) if any exist."
            elif exp.unique:
                notes = "A unique index build fails if duplicates exist; find them first."
            return self.finding(
                scope,
                object=f"{db}.{coll}",
                title=f"Declared index {describe_key(want['key'])} is missing",
                message=f"{db}.{coll} has no index on {describe_key(want['key'])}, which the config declares"
                + ("" if declared.collection_exists else " (the collection does not exist yet)") + "." + message,
                evidence=evidence,
                severity=Severity.HIGH,
                key=f"declared:{json.dumps(want['key'])}",
                fix=Fix(
                    summary=f"Create the declared index {want['name']}",
                    steps=(FixStep("mongodb", create_indexes(coll, want), f"build {want['name']}", database=db),),
                    safety=safety,
                    lock=BUILD_LOCK,
                    inverse=(FixStep("mongodb", drop_index(coll, want["name"]), f"drop {want['name']}", database=db),),
                    notes=notes,
                ),
            )
        differences = option_differences(same_key, want)
        if not differences:
            return None
        return self._different(scope, declared, same_key, want, evidence, "; ".join(differences))

    def _different(
        self, scope: Scope, declared: DeclaredIndex, existing: IndexSpec, want: dict[str, Any],
        evidence: dict[str, Any], difference: str,
    ) -> Finding:
        coll, db = declared.expectation.collection, declared.database
        only_ttl = set(option_differences(existing, want, names=True)) == {"expireAfterSeconds"} and existing.is_ttl and "expireAfterSeconds" in want
        steps: tuple[FixStep, ...]
        inverse: tuple[FixStep, ...]
        if only_ttl:
            steps = (FixStep("mongodb", {"collMod": coll, "index": {"name": existing.name, "expireAfterSeconds": want["expireAfterSeconds"]}},
                             "change the TTL in place", database=db),)
            inverse = (FixStep("mongodb", {"collMod": coll, "index": {"name": existing.name, "expireAfterSeconds": existing.options["expireAfterSeconds"]}},
                               "restore the TTL", database=db),)
            lock = "collMod: a brief exclusive collection lock"
        else:
            steps = (
                FixStep("mongodb", drop_index(coll, existing.name), f"drop {existing.name}", database=db),
                FixStep("mongodb", create_indexes(coll, want), f"build {want['name']}", database=db),
            )
            inverse = (
                FixStep("mongodb", drop_index(coll, want["name"]), f"drop {want['name']}", database=db),
                FixStep("mongodb", create_indexes(coll, existing.create_spec()), f"rebuild {existing.name}", database=db),
            )
            lock = BUILD_LOCK + "; queries lose the index between the drop and the end of the build"
        return self.finding(
            scope,
            object=f"{db}.{coll}",
            title=f"Index {existing.name} differs from the declared one",
            message=f"{db}.{coll}: index {existing.name} differs from the declared index "
            f"{describe_key(want['key'])}: {difference}.",
            evidence={**evidence, "existing": existing.create_spec()},
            severity=Severity.MEDIUM,
            key=f"declared:{json.dumps(want['key'])}",
            fix=Fix(
                summary=f"Make {existing.name} match the declared index",
                steps=steps,
                safety=FixSafety.UNSAFE,
                lock=lock,
                inverse=inverse,
            ),
        )


COMPARED_OPTIONS = ("unique", "sparse", "partialFilterExpression", "expireAfterSeconds")


def expected_spec(exp: IndexExpectation) -> dict[str, Any]:
    key = {k: (int(v) if isinstance(v, (int, float)) else v) for k, v in exp.keys.items()}
    spec: dict[str, Any] = {"key": key, "name": exp.name or index_name(key)}
    if exp.unique:
        spec["unique"] = True
    if exp.sparse:
        spec["sparse"] = True
    if exp.partial_filter is not None:
        spec["partialFilterExpression"] = exp.partial_filter
    if exp.expire_after is not None:
        spec["expireAfterSeconds"] = int(exp.expire_after.total_seconds())
    return spec


def option_differences(existing: IndexSpec, want: dict[str, Any], *, names: bool = False) -> list[str]:
    found = []
    for option in COMPARED_OPTIONS:
        have = existing.options.get(option)
        expected = want.get(option)
        if option in ("unique", "sparse"):
            have, expected = bool(have), bool(expected)
        if have != expected:
            found.append(option if names else f"{option} is {json.dumps(have, default=str)}, declared {json.dumps(expected, default=str)}")
    return found


def _impact(shape: QueryShape) -> int:
    if shape.docs_examined is not None:
        return max(shape.docs_examined - (shape.returned or 0), 0)
    return (shape.size or 0) * max(shape.executions, 1)


@dataclass(frozen=True)
class Suggested:
    suggestion: IndexSuggestion
    collapsed: str = ""  # why this shape's own key gave way to another suggestion


def suggest(problems: list[tuple[QueryShape, str]], dynamic: dict[tuple[str, str], dict[str, DynamicKeys]]) -> dict[str, Suggested]:
    """One suggestion per shape, then collapsed per collection: a filter on a map's keys gets a
    wildcard index on the map (one for every key, never one index per key), and a key that is
    the prefix of another suggested key gives way to it (one compound index serves both)."""
    own: dict[str, Suggested] = {}
    for shape, _ in problems:
        maps = dynamic.get((shape.database, shape.collection), {})
        mapped = sorted({f.split(".", 1)[0] for f in _fields(shape.filter) if f.split(".", 1)[0] in maps})
        if mapped:
            top = maps[mapped[0]]
            own[shape.key] = Suggested(IndexSuggestion(
                key={f"{top.field}.$**": 1},
                order=(f"wildcard rule: {top.field} is an object used as a map ({top.distinct_keys} distinct keys in "
                       f"{top.documents} sampled documents, {top.mean_keys:g} per document), so one wildcard index serves "
                       f"a query on any of its keys where one index per key would never end; or model it as an array of "
                       f"{{k, v}} with an index on {{{top.field}.k: 1, {top.field}.v: 1}}"),
            ))
            continue
        suggestion = esr_index(shape.filter, shape.sort)
        if suggestion is not None:
            own[shape.key] = Suggested(suggestion)
    by_collection: dict[tuple[str, str], list[IndexSuggestion]] = {}
    for shape, _ in problems:
        if shape.key in own:
            by_collection.setdefault((shape.database, shape.collection), []).append(own[shape.key].suggestion)
    collapsed = {}
    for shape, _ in problems:
        mine = own.get(shape.key)
        if mine is None:
            continue
        longer = [o for o in by_collection[(shape.database, shape.collection)]
                  if len(o.key) > len(mine.suggestion.key) and key_serves(tuple(o.key.items()), mine.suggestion.key)]
        if longer:
            wider = max(longer, key=lambda o: len(o.key))
            collapsed[shape.key] = Suggested(wider, (
                f"its own key {describe_key(mine.suggestion.key)} is a prefix of {describe_key(wider.key)}, suggested for "
                "another query shape on this collection: that one index serves both"))
        else:
            collapsed[shape.key] = mine
    return collapsed


def _fields(filter_: dict[str, Any]) -> list[str]:
    preds = predicates(filter_)
    return [p.field for p in preds] if preds else []


def _profiler_source(profilers: list[ProfilerState], shapes: int) -> SourceState:
    on = [p for p in profilers if (p.level or 0) > 0 or p.entries]
    detail = "; ".join(
        f"{p.database}: level {'unknown' if p.level is None else p.level}, {p.entries} entries" for p in profilers
    ) or "no database"
    return SourceState("profiler", bool(on), detail, shapes)


def _declared_shape(query: QueryExpectation, database: str) -> QueryShape:
    label = f"config: {query.name}" if query.name else "config"
    assert query.collection is not None  # a MongoDB target's queries name a collection (MongoTarget)
    return QueryShape(database, query.collection, dict(query.filter), dict(query.sort) if query.sort else None, [label])


def _declared_index(
    exp: IndexExpectation, default_database: str | None, infos: dict[str, dict[str, CollectionInfo]]
) -> DeclaredIndex | None:
    database = exp.database or default_database
    if database is None:
        holding = [db for db, colls in infos.items() if exp.collection in colls]
        database = holding[0] if holding else next(iter(infos), None)
    if database is None:
        return None
    info = infos.get(database, {}).get(exp.collection)
    return DeclaredIndex(exp, database, info is not None, info.indexes if info else ())
