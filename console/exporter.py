"""`dbvitals serve`: Prometheus scrapes dbvitals (the multi-target exporter pattern).

`/probe?target=NAME[&check=GLOB]` runs that target's checks now, so Prometheus's scrape interval
is the schedule and its relabelling shards a fleet across `serve` processes; `/metrics` does the
same for every target the process serves. A target's result (all its checks; `check=` only
selects which series are returned) is reused for `min_interval` seconds, so a scrape storm, with
whatever query strings, never runs a target's checks more often than that and the cache holds one
result per served target. A probe that outlasts the scrape's timeout answers with the last result
marked stale while the run goes on. The runs share one sessions-per-server budget for the
process's lifetime.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from checks.budget import ServerBudgets
from checks.config import Settings
from checks.registry import Registry
from checks.runner import Runner
from checks.model import Report, Severity

OUTCOMES = ("ok", "findings", "partial", "error", "timeout", "skipped")
DEFAULT_SCRAPE_TIMEOUT = 10.0
MAX_SCRAPE_TIMEOUT = 3600.0  # Prometheus's scrape_timeout is at most its interval


@dataclass
class TargetResult:
    report: Report
    finished_wall: float  # time.time() when the run ended
    finished_mono: float
    stale: bool = False


@dataclass
class ResultCache:
    """The last result per target, and the run in flight for each: one entry per served target."""

    settings: Settings
    registry: Registry
    min_interval: float
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
            return TargetResult(cached.report, cached.finished_wall, cached.finished_mono, stale=True) if cached else None

    async def _run(self, target: str) -> TargetResult:
        try:
            runner = Runner(self.settings, self.registry, targets=[target], budgets=self.budgets)
            result = TargetResult(await runner.run(), time.time(), time.monotonic())
            self.results[target] = result
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
        findings = GaugeMetricFamily("dbvitals_findings", "Findings by target, check and severity at the last run.",
                                     labels=["target", "check", "severity"])
        duration = GaugeMetricFamily("dbvitals_check_duration_seconds", "How long each check took at the last run.",
                                     labels=["target", "check"])
        outcome = GaugeMetricFamily("dbvitals_check_outcome", "1 for each check's outcome at the last run: "
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
            for row in rows:
                for level in Severity:
                    counts[(row["check"], level.value)] = 0
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
                for value in OUTCOMES:
                    outcome.add_metric([name, row["check"], value], 1 if row["outcome"] == value else 0)
                failing.add_metric([name, row["check"]], 1 if row["outcome"] in {"error", "timeout", "partial"} else 0)
            last_run.add_metric([name], result.finished_wall)
            stale.add_metric([name], 1 if result.stale else 0)
        yield from (up, latency, findings, duration, outcome, failing, last_run, stale)
        if self.finding_ids:
            yield ids


class Exporter:
    """The asyncio side (checks) in a thread of its own; the HTTP side in the server's threads."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.cache = ResultCache(settings, registry, settings.serve.min_interval)
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


def handler_for(exporter: Exporter, served: Sequence[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dbvitals"

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/metrics":
                self._metrics(list(served), "")
            elif url.path == "/probe":
                names = query.get("target", [])
                if len(names) != 1 or names[0] not in served:
                    self._text(400, "probe needs target=NAME, one of the targets this process serves "
                                    f"({len(served)} configured; see `dbvitals targets`)\n")
                    return
                check = query.get("check", [""])[0]
                if check and not any(fnmatch.fnmatchcase(c, check) for c in exporter.cache.registry.checks):
                    self._text(400, "check= matches no check (run `dbvitals checks` for the catalog)\n")
                    return
                self._metrics(names, check)
            elif url.path in {"/", "/-/healthy"}:
                self._text(200, "dbvitals exporter: /metrics for every served target, /probe?target=NAME[&check=GLOB]\n")
            else:
                self._text(404, "not found: /metrics or /probe?target=NAME\n")

        def _metrics(self, targets: list[str], check: str) -> None:
            header = self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
            timeout = scrape_timeout(header)
            if timeout is None:
                self._text(400, f"X-Prometheus-Scrape-Timeout-Seconds: expected seconds from more than 0 to "
                                f"{MAX_SCRAPE_TIMEOUT:.0f}\n")
                return
            try:
                body, content_type = exporter.scrape(targets, check, timeout, self.headers.get("Accept", ""))
            except TimeoutError:
                self._text(503, "the checks did not answer within the scrape timeout; try again\n")
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _text(self, code: int, text: str) -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            pass  # a scrape every few seconds is not news; errors reach the client

    return Handler


def serve(settings: Settings, registry: Registry, host: str, port: int, served: Sequence[str],
          *, ready: Any = None) -> None:
    """Serve until SIGTERM or SIGINT, which stop it cleanly (the process's exit handlers then
    close its SSH tunnels). SIGHUP, which would otherwise end the process (a closed terminal, a
    service manager's reload), is said to change nothing: a new config needs a restart."""
    exporter = Exporter(settings, registry)
    server = ThreadingHTTPServer((host, port), handler_for(exporter, served))
    server.daemon_threads = True

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


def say(message: str) -> None:
    """One line on stderr, where a service manager's journal reads it."""
    print(f"dbvitals serve: {message}", file=sys.stderr, flush=True)
