"""Subcommands registered in console.cli.EXTRA_COMMANDS."""
