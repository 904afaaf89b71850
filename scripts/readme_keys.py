"""Print the console's key table, generated from the screens' BINDINGS (console/keys.py);
with --write, replace the table in README.md with it. tests/tui/test_keys.py fails when the
README's table differs from what this prints.

    .venv/bin/python scripts/readme_keys.py [--write]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.app import DbVitalsApp  # noqa: E402
from console.keys import readme_table, replace_readme_table  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"


def main(argv: list[str]) -> int:
    table = readme_table(DbVitalsApp)
    if "--write" in argv:
        README.write_text(replace_readme_table(README.read_text(encoding="utf-8"), table), encoding="utf-8")
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
