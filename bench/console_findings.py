"""How the console copes with 10,000 findings: start-up, filtering, sorting, keypresses.

Prints the figures; not a test. Run: .venv/bin/python bench/console_findings.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.filtering import parse  # noqa: E402
from console.widgets.finding_store import FindingStore, finding_fields  # noqa: E402
from console.widgets.findings_table import FindingsTable  # noqa: E402
from tests.tui.helpers import synthetic_app, synthetic_findings, synthetic_statuses  # noqa: E402

COUNT = 10_000


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import console.app; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parents[1]).stdout) for _ in range(3)]
    return min(runs)


def store_figures(findings) -> None:
    store = FindingStore()
    started = time.perf_counter()
    slots: dict[tuple[str, str], list] = {}
    for f in findings:
        slots.setdefault((f.target, f.check), []).append(f)
    for (target, check), group in slots.items():
        store.replace(target, check, group)
    print(f"store {COUNT:,} findings            {ms(time.perf_counter() - started)}")
    started = time.perf_counter()
    store.ordered()
    print(f"first sort (cached after)          {ms(time.perf_counter() - started)}")
    query = "table_0999"
    per_key, per_key_cpu = [], []
    # Five rounds of typing the query; the CPU time is this process's own, which other load on
    # a shared machine does not inflate (the wall time beside it does).
    for _ in range(5):
        for end in range(1, len(query) + 1):
            started, started_cpu = time.perf_counter(), time.process_time()
            store.select(parse(query[:end]))
            per_key.append(time.perf_counter() - started)
            per_key_cpu.append(time.process_time() - started_cpu)
    print(f"filter per keystroke, text         {ms(statistics.median(per_key))} median, {ms(max(per_key))} worst"
          f" (CPU {ms(statistics.median(per_key_cpu)).strip()} median)")
    started = time.perf_counter()
    store.select(parse("sev:high", finding_fields((), ())))
    print(f"filter by severity                 {ms(time.perf_counter() - started)}")


async def pilot_baseline() -> float:
    """What Pilot itself costs per key (it waits for the app to go idle), with 12 findings."""
    app = synthetic_app(12)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("slash")
        per_key = []
        for char in "table_0999":
            started = time.perf_counter()
            await pilot.press(char)
            per_key.append(time.perf_counter() - started)
        return statistics.median(per_key)


async def app_figures() -> None:
    print(f"keypress in / with 12 findings     {ms(await pilot_baseline())} median (Pilot's own cost per key)")
    app = synthetic_app(0)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        print(f"app start to first screen          {ms(time.perf_counter() - started)} (headless, checks in background)")
        table = app.main_screen.query_one(FindingsTable)
        findings = synthetic_findings(COUNT)
        started = time.perf_counter()
        app.ingest(synthetic_statuses(), findings)
        app.main_screen.refresh_findings()
        await pilot.pause()
        print(f"ingest {COUNT:,} and draw              {ms(time.perf_counter() - started)}")
        assert len(table.shown) == COUNT

        await pilot.press("slash")
        per_key = []
        for char in "table_0999":
            started = time.perf_counter()
            await pilot.press(char)
            per_key.append(time.perf_counter() - started)
        started = time.perf_counter()
        app.main_screen.refresh_findings()
        await pilot.pause()
        redraw = time.perf_counter() - started
        print(f"keypress in / (to handled)         {ms(statistics.median(per_key))} median, {ms(max(per_key))} worst")
        print(f"filter + redraw after typing       {ms(redraw)} ({len(table.shown)} shown)")

        await pilot.press("enter", "x")
        started = time.perf_counter()
        app.main_screen.refresh_findings()
        await pilot.pause()
        print(f"clear filter, redraw {COUNT:,}         {ms(time.perf_counter() - started)}")
        started = time.perf_counter()
        await pilot.press("s")
        await pilot.pause()
        print(f"sort by the next column            {ms(time.perf_counter() - started)}")
        per_key = []
        for _ in range(20):
            started = time.perf_counter()
            await pilot.press("pagedown")
            per_key.append(time.perf_counter() - started)
        print(f"page down                          {ms(statistics.median(per_key))} median")
        started = time.perf_counter()
        await pilot.press("end")
        print(f"jump to the last of {COUNT:,}          {ms(time.perf_counter() - started)}")


def main() -> None:
    print(f"console with {COUNT:,} synthetic findings (python {sys.version.split()[0]})")
    print(f"import console.app (cold process)  {ms(import_time())}")
    store_figures(synthetic_findings(COUNT))
    asyncio.run(app_figures())


if __name__ == "__main__":
    main()
