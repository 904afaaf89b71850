"""Global options (--config, --group, --tag, --theme) are accepted before the command, after it
and after its action, for every command of the parser; given in two places they are refused."""

from __future__ import annotations

import argparse

import pytest

from console.cli import GLOBAL_OPTIONS, build_parser, parse_arguments


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every runnable command path (`check`, `snapshot save`, ...) with the least it needs to parse."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [(path, _required_arguments(parser))]
    found = [] if subparsers[0].required else [(path, _required_arguments(parser))] if path else []
    for name, subparser in subparsers[0].choices.items():
        found += command_paths(subparser, (*path, name))
    return found


def _required_arguments(parser: argparse.ArgumentParser) -> list[str]:
    arguments: list[str] = []
    for action in parser._actions:
        if not action.required:
            continue
        value = str(action.choices[0]) if action.choices else "1"
        arguments += [action.option_strings[0], value] if action.option_strings else [value]
    return arguments


PATHS = command_paths(build_parser())
VALUES = {"--config": ("x.toml", "x.toml"), "--group": ("web", ["web"]), "--tag": ("team=db", ["team=db"]),
          "--theme": ("nord", "nord"), "--width": ("90", 90)}


def test_the_walk_reaches_the_commands_and_their_actions():
    names = {" ".join(path) for path, _ in PATHS}
    assert {"check", "fix", "snapshot save", "snapshot show", "baseline save", "ui"} <= names
    assert {flag for flag, _ in GLOBAL_OPTIONS} == set(VALUES)


@pytest.mark.parametrize("path, required", PATHS, ids=[" ".join(p) for p, _ in PATHS])
@pytest.mark.parametrize("flag", list(VALUES))
def test_a_global_option_is_accepted_in_every_position(path, required, flag):
    given, expected = VALUES[flag]
    for position in range(len(path) + 1):
        words = [*path[:position], flag, given, *path[position:]]
        args = parse_arguments([*words, *required])
        assert getattr(args, flag.lstrip("-")) == expected, words
        assert not [key for key in vars(args) if "@" in key], words


@pytest.mark.parametrize("flag", list(VALUES))
def test_a_global_option_given_in_two_places_is_refused_with_exit_2(flag, capsys):
    given, _ = VALUES[flag]
    with pytest.raises(SystemExit) as stopped:
        parse_arguments([flag, given, "snapshot", "save", flag, given])
    assert stopped.value.code == 2
    assert f"{flag} given in two places" in capsys.readouterr().err


def test_without_the_option_it_is_none_as_before():
    args = parse_arguments(["snapshot", "save", "--label", "x"])
    assert (args.config, args.group, args.tag, args.theme, args.width, args.label) == (None, None, None, None, None, "x")


def test_an_action_takes_its_commands_own_options_too(capsys):
    for words in (["snapshot", "--store", "s.db", "list"], ["snapshot", "list", "--store", "s.db"]):
        assert parse_arguments(words).store == "s.db", words
    assert parse_arguments(["snapshot", "list"]).store is None
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(["snapshot", "--store", "a.db", "show", "latest", "--store", "b.db"])
    assert stopped.value.code == 2 and "--store given in two places" in capsys.readouterr().err
