"""Toasts carry names and server errors: shown as data, never as terminal control or markup."""

from __future__ import annotations

from tests.tui.helpers import synthetic_app


async def test_a_toast_escapes_control_bytes_and_reads_no_markup():
    app = synthetic_app(3)
    async with app.run_test(size=(80, 24)) as pilot:
        app.notify("key sess:\x1b[2J\n[b]x[/b] is down", title="t\x07")
        await pilot.pause()
        [toast] = list(app._notifications)
        assert "\x1b" not in toast.message and "\\x1b[2J\\n[b]x[/b]" in toast.message
        assert toast.title == "t\\x07" and toast.markup is False
