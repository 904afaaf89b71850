"""`dbvitals init [PATH]`: write the starter config (the documented config.example.toml, shipped
inside the package) where dbvitals will find it."""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

from checks.config import DEFAULT_CONFIG_NAME, user_config_path
from console.runtime import CliError

EXAMPLE = "config.example.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (f"Write the starter config, which documents every key, to PATH (default: "
                          f"$XDG_CONFIG_HOME/dbvitals/config.toml, or ./{DEFAULT_CONFIG_NAME} without a home "
                          "directory). An existing file is never overwritten.")
    parser.add_argument("path", nargs="?", metavar="PATH", help="where to write it")


def starter_config() -> str:
    return resources.files("console").joinpath(EXAMPLE).read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else user_config_path() or Path(DEFAULT_CONFIG_NAME)
    text = starter_config()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a file that appears meanwhile is not overwritten either. 0600: it will hold passwords.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"init: {path} already exists: not overwritten (give another PATH, or edit it)") from None
    except OSError as exc:
        raise CliError(f"init: cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {path}: edit its [targets.*], then run `dbvitals targets`")
    return 0
