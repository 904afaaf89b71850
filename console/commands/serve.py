"""`dbvitals serve`: a Prometheus exporter of findings, check outcomes and target state."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from checks.registry import UsageError
from checks.runner import select_targets
from console.exporter import say, serve
from console.runtime import CliError, load_checks, load_settings
from console.web_config import WebConfigError, load_web_config

# Prometheus's default port allocations list has 9100-9999 all taken (9187, which dbvitals used
# first, is postgres_exporter's) and hands out new ports from 10000 up; 10187 is on no list we read.
DEFAULT_PORT = 10187


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Serve /probe?target=NAME[&check=GLOB] (a target's findings, checked now) and /metrics "
                          "(the exporter's own health) for Prometheus. Results are reused for serve.min_interval "
                          "seconds; a probe slower than the scrape timeout answers with the last result, marked "
                          "stale. deploy/ has a prometheus.yml, alerting rules and service definitions.")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help=f"address to listen on (default: serve.listen in the config, 127.0.0.1:{DEFAULT_PORT}); "
                             "a non-loopback address is accepted only when given here")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="PATH", type=Path,
                        help="TLS and basic auth, in the web config format Prometheus's exporters share "
                             "(tls_server_config, basic_auth_users with bcrypt hashes)")
    parser.add_argument("--target", action="append", metavar="NAME", help="serve only this target (repeatable)")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value}: expected HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}")
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    registry = load_checks(settings)
    try:
        served = select_targets(settings, args.target)
    except UsageError as exc:
        raise CliError(str(exc)) from None
    if not served:
        raise CliError("no targets configured (add a [targets.NAME] table; see config.example.toml)")
    listen = args.listen or settings.serve.listen
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise CliError(f"--listen {exc}" if args.listen else f"serve.listen: {exc}") from None
    if not is_loopback(host) and not args.listen:
        raise CliError(f"serve.listen = {listen!r} is not a loopback address: findings name your databases; "
                       "to expose them on the network, say so on the command line with --listen")

    try:
        web = load_web_config(args.web_config_file) if args.web_config_file else None
    except WebConfigError as exc:
        raise CliError(f"--web.config.file {exc}") from None
    scheme = "https" if web and web.tls else "http"

    def ready(address: tuple) -> None:
        say(f"{len(served)} targets on {scheme}://{address[0]}:{address[1]}/probe?target=NAME, "
            f"its own health on /metrics{' (basic auth)' if web and web.auth else ''}")

    try:
        serve(settings, registry, host, port, served, web=web, ready=ready)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}", code=1) from None
    except KeyboardInterrupt:
        pass
    return 0
