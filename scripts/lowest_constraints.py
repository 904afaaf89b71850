"""The lowest declared version of every direct runtime dependency, as pip constraints
(`name==min`), for scripts/test-lowest.sh: a floor in pyproject.toml that does not install or
does not work is found by CI, not by a user."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def constraints(pyproject: Path) -> list[str]:
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for requirement in declared:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"{pyproject}: {requirement!r} declares no minimum (>=): every dependency needs one")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    print("\n".join(constraints(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
