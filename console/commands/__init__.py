"""Subcommands registered in console.cli.EXTRA_COMMANDS, imported only when used."""
