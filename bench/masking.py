"""Masking cost on hostile text: the time to mask 1 MB of each worst case (key names, driver
errors), beside the regex the masking used before (quadratic) on the same shapes at 5k and
10k characters, and how its time grew with size. #11 item 9 asks for 1 MB under a second.

Prints the figures; not a test. Run: .venv/bin/python bench/masking.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checks.secrets import mask_text, mask_url  # noqa: E402

# The userinfo pattern masking used before: every start position re-scans the scheme run.
OLD_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@", re.I)

SHAPES = {
    "one long word": lambda n: "a" * n,
    "scheme every 4 chars": lambda n: "a://" * (n // 4),
    "userinfo without @": lambda n: "x://" + "u" * (n - 5) + ":",
    "password= repeated": lambda n: "password=" * (n // 9),
    "= then a long value": lambda n: "=a" * (n // 2),
    "non-ASCII text": lambda n: "é" * n,
    "a key of 1 MB": lambda n: "sess:" + "9" * (n - 5),
}
SECRETS = ("hunter22", "s3cret/?#pw")


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def main() -> None:
    size = 1_000_000
    print(f"{'shape':24} {'mask_text 1 MB':>15} {'mask_url 1 MB':>14} {'old regex 5k':>13} {'old 10k':>9} {'old growth':>11}")
    worst = 0.0
    old_worst = (0.0, 1.0)
    for name, make in SHAPES.items():
        text = make(size)
        new_text = timed(mask_text, text, SECRETS)
        new_url = timed(mask_url, text)
        worst = max(worst, new_text, new_url)
        old_5k = timed(OLD_USERINFO.sub, "", make(5_000))
        old_10k = timed(OLD_USERINFO.sub, "", make(10_000))
        growth = old_10k / old_5k if old_5k > 0 else float("nan")
        old_worst = max(old_worst, (old_10k, growth))
        print(f"{name:24} {new_text * 1000:12.1f} ms {new_url * 1000:11.1f} ms {old_5k * 1000:10.1f} ms "
              f"{old_10k * 1000:6.1f} ms {growth:10.1f}x")
    old_10k, growth = old_worst
    # Quadratic: each doubling multiplies the time by about four; 10k -> 1 MB is 100x the size.
    print(f"worst case now, 1 MB: {worst * 1000:.1f} ms (budget 1000 ms); the old regex, worst case: "
          f"{old_10k * 1000:.0f} ms at 10k characters ({growth:.1f}x per doubling), "
          f"about {old_10k * 100 ** 2 / 3600:.1f} h extrapolated to 1 MB")


if __name__ == "__main__":
    main()
