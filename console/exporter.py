"""`dbvitals serve`: Prometheus scrapes dbvitals (the multi-target exporter pattern).

`/probe?target=NAME[&check=GLOB]` runs that target's checks now, so Prometheus's scrape interval
is the schedule and its relabelling shards a fleet across `serve` processes. `/metrics` is the
exporter's own health (process, build, how long its runs and scrapes take, how old each target's
result is, errors), never findings, so scraping it beside the probes brings each finding once (as
redis_exporter keeps its own metrics apart from its targets'). A target's result (all its
checks; `check=` only selects which series are returned) is reused for `min_interval` seconds,
so a scrape storm, with whatever query strings, never runs a target's checks more often than
that and the cache holds one result per served target. A probe that outlasts the scrape's
timeout answers with the last result marked stale while the run goes on. The runs share one
sessions-per-server budget for the process's lifetime.

Log lines (stderr) are logfmt, one line per event: `ts=... level=info|warn|error msg="..."` and
fields such as `path`, `target`, `client`, `error`; a failed or timed-out scrape is one such line,
never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import fnmatch
import gzip
import math
import platform
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    Summary,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from checks.budget import ServerBudgets
from checks.config import Settings
from checks.registry import Registry
from checks.runner import Runner
from checks.model import Report
from console.version import version
from console.web_config import ServerTls, WebConfig

DEFAULT_SCRAPE_TIMEOUT = 10.0
MAX_SCRAPE_TIMEOUT = 3600.0  # Prometheus's scrape_timeout is at most its interval
FAILED_OUTCOMES = {"error", "timeout", "partial"}
CLOSE_TIMEOUT = 3.0  # for the runs in flight to unwind on stop
REQUEST_TIMEOUT = 60.0  # a client (or a TLS handshake) that stalls frees its thread after this


@dataclass
class TargetResult:
    report: Report
    finished_wall: float  # time.time() when the run ended
    finished_mono: float
    stale: bool = False


class ExporterHealth:
    """The exporter's own metrics, for `/metrics`: the process, the build, and how runs and
    scrapes go. Per target and check as findings are (never per finding or per query string)."""

    def __init__(self, served: Sequence[str]) -> None:
        disable_created_metrics()  # a `_created` series per labelled counter doubles them for nothing
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Gauge("dbvitals_build_info", "dbvitals's version and the Python it runs on; always 1.",
              ["version", "python"], registry=self.registry).labels(version(), platform.python_version()).set(1)
        Gauge("dbvitals_exporter_targets", "Targets this process serves.", registry=self.registry).set(len(served))
        self.scrape_duration = Histogram(
            "dbvitals_exporter_scrape_duration_seconds", "Time to answer a scrape, by path (/probe or /metrics).",
            ["path"], registry=self.registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.run_duration = Summary("dbvitals_exporter_run_duration_seconds",
                                    "Time a run of all a target's checks took.", ["target"], registry=self.registry)
        self.check_duration = Summary("dbvitals_exporter_check_duration_seconds",
                                      "Time each check took, per run.", ["target", "check"], registry=self.registry)
        self.check_failures = Counter("dbvitals_exporter_check_failures",
                                      "Check runs that ended in error, timeout or partial.",
                                      ["target", "check", "outcome"], registry=self.registry)
        self.errors = Counter("dbvitals_exporter_errors", "Scrapes answered with an error, by path and reason "
                              "(timeout, bad_request, unauthorized, internal).", ["path", "reason"],
                              registry=self.registry)
        self.last_run = Gauge("dbvitals_exporter_last_run_age_seconds", "Seconds since the target's last run "
                              "ended (absent before its first).", ["target"], registry=self.registry)
        self.finished: dict[str, float] = {}  # target -> time.monotonic() at the end of its last run
        self.lock = threading.Lock()

    def record_run(self, target: str, report: Report, seconds: float) -> None:
        self.run_duration.labels(target).observe(seconds)
        for row in report.checks:
            self.check_duration.labels(target, row["check"]).observe(row["duration_ms"] / 1000)
            if row["outcome"] in FAILED_OUTCOMES:
                self.check_failures.labels(target, row["check"], row["outcome"]).inc()
        with self.lock:
            self.finished[target] = time.monotonic()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        now = time.monotonic()
        with self.lock:
            for target, finished in self.finished.items():
                self.last_run.labels(target).set(now - finished)
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


@dataclass
class ResultCache:
    """The last result per target, and the run in flight for each: one entry per served target."""

    settings: Settings
    registry: Registry
    min_interval: float
    health: ExporterHealth
    budgets: ServerBudgets = field(default_factory=ServerBudgets)
    results: dict[str, TargetResult] = field(default_factory=dict)
    running: dict[str, asyncio.Task[TargetResult]] = field(default_factory=dict)

    async def get(self, target: str, timeout: float) -> TargetResult | None:
        cached = self.results.get(target)
        if cached is not None and time.monotonic() - cached.finished_mono < self.min_interval:
            return cached
        task = self.running.get(target)
        if task is None:
            task = self.running[target] = asyncio.create_task(self._run(target))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            # Still running: the last result, said to be stale; the run goes on for the next scrape.
            log_event("warn", "run outlasted the scrape timeout; the last result is served, marked stale",
                      target=target, timeout_seconds=f"{timeout:g}", last_result="yes" if cached else "none")
            return TargetResult(cached.report, cached.finished_wall, cached.finished_mono, stale=True) if cached else None

    async def _run(self, target: str) -> TargetResult:
        try:
            runner = Runner(self.settings, self.registry, targets=[target], budgets=self.budgets)
            started = time.monotonic()
            result = TargetResult(await runner.run(), time.time(), time.monotonic())
            self.results[target] = result
            self.health.record_run(target, result.report, result.finished_mono - started)
            return result
        finally:
            self.running.pop(target, None)


class FleetCollector:
    """The metrics of the given results, built afresh for each scrape."""

    def __init__(self, results: dict[str, TargetResult | None], settings: Settings, *, finding_ids: bool,
                 check: str = "") -> None:
        self.results = results
        self.settings = settings
        self.finding_ids = finding_ids
        self.check = check  # a glob: only the series of the checks it matches

    def _selected(self, check: str) -> bool:
        return not self.check or fnmatch.fnmatchcase(check, self.check)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("dbvitals_target_up", "Whether dbvitals could connect to the target (1) or not (0).",
                               labels=["target", "kind", "state"])
        latency = GaugeMetricFamily("dbvitals_target_latency_seconds", "Round trip to the target at the last run.",
                                    labels=["target"])
        findings = GaugeMetricFamily("dbvitals_findings", "Findings by target, check and severity at the last run "
                                     "(only the severities found: no series is 0).", labels=["target", "check", "severity"])
        duration = GaugeMetricFamily("dbvitals_check_duration_seconds", "How long each check took at the last run.",
                                     labels=["target", "check"])
        outcome = GaugeMetricFamily("dbvitals_check_outcome", "Each check's outcome at the last run, always 1: "
                                    "ok, findings, partial (cut short by its budget), error, timeout or skipped.", labels=["target", "check", "outcome"])
        failing = GaugeMetricFamily("dbvitals_check_failed", "1 when a check could not run (error or timeout) or was cut short by its budget (partial).",
                                    labels=["target", "check"])
        last_run = GaugeMetricFamily("dbvitals_last_run_timestamp_seconds", "When the target's last run ended "
                                     "(Unix time).", labels=["target"])
        stale = GaugeMetricFamily("dbvitals_result_stale", "1 when the run outlasted the scrape and the last result "
                                  "is served instead.", labels=["target"])
        ids = GaugeMetricFamily("dbvitals_finding", "One series per finding, its id as a label (serve.finding_id_labels).",
                                labels=["target", "check", "severity", "id"])
        for name, result in self.results.items():
            kind = str(self.settings.targets[name].kind)
            if result is None:  # the first run has not finished within the scrape
                up.add_metric([name, kind, "unknown"], 0)
                stale.add_metric([name], 1)
                continue
            report = result.report
            rows = [row for row in report.checks if self._selected(row["check"])]
            for status in report.targets:
                up.add_metric([status.name, kind, status.state.value], 1 if status.reachable else 0)
                if status.latency_ms is not None:
                    latency.add_metric([status.name], status.latency_ms / 1000)
            counts: dict[tuple[str, str], int] = {}
            for f in report.findings:
                if not self._selected(f.check):
                    continue
                counts[(f.check, f.severity.value)] = counts.get((f.check, f.severity.value), 0) + 1
                if self.finding_ids:
                    ids.add_metric([f.target, f.check, f.severity.value, f.id], 1)
            for (check, severity), count in sorted(counts.items()):
                findings.add_metric([name, check, severity], count)
            for row in rows:
                duration.add_metric([name, row["check"]], row["duration_ms"] / 1000)
                outcome.add_metric([name, row["check"], row["outcome"]], 1)
                failing.add_metric([name, row["check"]], 1 if row["outcome"] in FAILED_OUTCOMES else 0)
            last_run.add_metric([name], result.finished_wall)
            stale.add_metric([name], 1 if result.stale else 0)
        yield from (up, latency, findings, duration, outcome, failing, last_run, stale)
        if self.finding_ids:
            yield ids


class Exporter:
    """The asyncio side (checks) in a thread of its own; the HTTP side in the server's threads."""

    def __init__(self, settings: Settings, registry: Registry, served: Sequence[str]) -> None:
        self.settings = settings
        self.health = ExporterHealth(served)
        self.cache = ResultCache(settings, registry, settings.serve.min_interval, self.health)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dbvitals-checks", daemon=True)
        self.thread.start()

    def scrape(self, targets: Sequence[str], check: str, timeout: float, accept: str) -> tuple[bytes, str]:
        """The metrics of the targets; TimeoutError when the check loop did not answer in time."""
        async def gather() -> list[TargetResult | None]:
            return list(await asyncio.gather(*(self.cache.get(t, timeout) for t in targets)))

        future = asyncio.run_coroutine_threadsafe(gather(), self.loop)
        try:
            results = dict(zip(targets, future.result(timeout + 5), strict=True))
        except TimeoutError:
            future.cancel()
            raise
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(results, self.settings, finding_ids=self.settings.serve.finding_id_labels,
                                         check=check))
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    def close(self) -> None:
        """Cancel the runs in flight and let them unwind (close their sessions) before the loop
        stops: a run left pending is destroyed at exit with a traceback on stderr."""
        async def cancel_runs() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)

        try:
            asyncio.run_coroutine_threadsafe(cancel_runs(), self.loop).result(CLOSE_TIMEOUT + 1)
        except TimeoutError:
            log_event("warn", "runs still unwinding at exit", timeout_seconds=f"{CLOSE_TIMEOUT:g}")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def scrape_timeout(header: str | None) -> float | None:
    """The time a scrape may take, from Prometheus's header (less half a second for the answer
    to travel); None for a value that is no positive, finite, sensible number of seconds."""
    if not header:
        return DEFAULT_SCRAPE_TIMEOUT
    try:
        seconds = float(header)
    except ValueError:
        return None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_SCRAPE_TIMEOUT:
        return None
    return max(0.5, seconds - 0.5)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip;q=0` refuses it)."""
    for part in (header or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in {"gzip", "x-gzip"}:
            q = params.strip().lower()
            return not q.startswith("q=") or q[2:].strip() not in {"0", "0.0", "0.00", "0.000"}
    return False


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """User and password of an `Authorization: Basic` header; None when absent or malformed."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def handler_for(exporter: Exporter, served: Sequence[str], web: WebConfig) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dbvitals"
        timeout = REQUEST_TIMEOUT

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlsplit(self.path)
            if not self._authorised(url.path):
                return
            query = parse_qs(url.query)
            started = time.monotonic()
            if url.path == "/metrics":
                body, content_type = exporter.health.exposition(self.headers.get("Accept", ""))
                self._send(200, body, content_type)
            elif url.path == "/probe":
                names = query.get("target", [])
                if len(names) != 1 or names[0] not in served:
                    self._refuse(url.path, "probe needs target=NAME, one of the targets this process serves "
                                           f"({len(served)} configured; see `dbvitals targets`)\n")
                    return
                check = query.get("check", [""])[0]
                if check and not any(fnmatch.fnmatchcase(c, check) for c in exporter.cache.registry.checks):
                    self._refuse(url.path, "check= matches no check (run `dbvitals checks` for the catalog)\n")
                    return
                self._probe(url.path, names[0], check)
            elif url.path in {"/", "/-/healthy"}:
                self._text(200, "dbvitals exporter: /probe?target=NAME[&check=GLOB] for a target's findings, "
                                "/metrics for the exporter's own health\n")
                return
            else:
                self._text(404, "not found: /probe?target=NAME or /metrics\n")
                return
            exporter.health.scrape_duration.labels(url.path).observe(time.monotonic() - started)

        def _authorised(self, path: str) -> bool:
            if web.auth is None:
                return True
            credentials = basic_credentials(self.headers.get("Authorization"))
            if credentials is not None and web.auth.allows(*credentials):
                return True
            exporter.health.errors.labels(path if path in {"/probe", "/metrics"} else "other", "unauthorized").inc()
            self._send(401, b"unauthorized\n", "text/plain; charset=utf-8", {"WWW-Authenticate": 'Basic realm="dbvitals"'})
            return False

        def _probe(self, path: str, target: str, check: str) -> None:
            header = self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
            timeout = scrape_timeout(header)
            if timeout is None:
                self._refuse(path, f"X-Prometheus-Scrape-Timeout-Seconds: expected seconds from more than 0 to "
                                   f"{MAX_SCRAPE_TIMEOUT:.0f}\n")
                return
            try:
                body, content_type = exporter.scrape([target], check, timeout, self.headers.get("Accept", ""))
            except TimeoutError:
                exporter.health.errors.labels(path, "timeout").inc()
                log_event("warn", "scrape timed out", path=path, target=target, timeout_seconds=f"{timeout:g}")
                self._text(503, "the checks did not answer within the scrape timeout; try again\n")
                return
            except Exception as exc:  # noqa: BLE001 - one log line and a 500, never a traceback
                exporter.health.errors.labels(path, "internal").inc()
                log_event("error", "scrape failed", path=path, target=target, error=f"{type(exc).__name__}: {exc}")
                self._text(500, "the checks failed; the exporter's log says why\n")
                return
            self._send(200, body, content_type)

        def _refuse(self, path: str, text: str) -> None:
            exporter.health.errors.labels(path, "bad_request").inc()
            self._text(400, text)

        def _text(self, code: int, text: str) -> None:
            self._send(code, text.encode(), "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Vary", "Accept-Encoding")
            if accepts_gzip(self.headers.get("Accept-Encoding")):
                body = gzip.compress(body, compresslevel=6)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            pass  # a scrape every few seconds is not news; failures are logged where they happen

    return Handler


class ExporterServer(ThreadingHTTPServer):
    """Serves each request in a thread of its own; a request that fails outside the handler's own
    care (a client that hangs up, a TLS handshake refused) is one log line, not a traceback."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tls: ServerTls | None):
        super().__init__(address, handler)
        self.tls = tls

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        if self.tls is None:
            return connection, address
        # The context of the TLS files as they are now (a renewed certificate is used at once). The
        # handshake happens on the request's first read, in its own thread: a slow or silent
        # client never holds up accept().
        context = self.tls.context(lambda problem: log_event("error", problem))
        return context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, socket.timeout)):
            return  # the client left or stalled: nothing the operator can act on
        log_event("warn", "request failed", client=_client(client_address), error=f"{type(error).__name__}: {error}")


def _client(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else str(address)


def serve(settings: Settings, registry: Registry, host: str, port: int, served: Sequence[str],
          *, web: WebConfig | None = None, ready: Any = None) -> None:
    """Serve until SIGTERM or SIGINT, which stop it cleanly (the process's exit handlers then
    close its SSH tunnels). SIGHUP, which would otherwise end the process (a closed terminal, a
    service manager's reload), is said to change nothing: a new config needs a restart."""
    web = web or WebConfig()
    exporter = Exporter(settings, registry, served)
    server = ExporterServer((host, port), handler_for(exporter, served, web), web.tls)

    def stop(signum: int, _frame: Any) -> None:
        say(f"{signal.Signals(signum).name}: stopping")
        # shutdown() waits for serve_forever to return, which runs in this (the main) thread.
        threading.Thread(target=server.shutdown, name="dbvitals-shutdown", daemon=True).start()

    def hangup(_signum: int, _frame: Any) -> None:
        say("SIGHUP: the configuration is not reloaded; restart dbvitals serve to apply a new one")

    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hangup))}
    try:
        if ready is not None:
            ready(server.server_address)
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        exporter.close()


def log_event(level: str, message: str, **fields: str) -> None:
    """One logfmt line on stderr, where a service manager's journal reads it: `ts`, `level`,
    `msg`, then the fields, each value quoted when it needs to be (names from a database or a
    client are data, and a newline in one cannot start a line of its own)."""
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    pairs = [("ts", stamp), ("level", level), ("msg", message), *fields.items()]
    print(" ".join(f"{key}={logfmt_value(value)}" for key, value in pairs), file=sys.stderr, flush=True)


def logfmt_value(value: str) -> str:
    if value and all(c.isprintable() and c not in ' "=\\' for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in escaped) + '"'


def say(message: str) -> None:
    """An event of the service's life (a signal, the address it listens on), as a log line."""
    log_event("info", message)
