"""The ``sockjs-server`` command.

Subcommands register themselves in :data:`COMMANDS`: a name, a help line,
a function that adds its arguments and one that runs it. Every server
subcommand shares :func:`~sockjs_server.cli.serving.add_run_arguments` (logging,
access log, metrics, uvloop); a user's mistake ends with one line on stderr
and exit status 2 (:class:`~sockjs_server.cli.serving.CommandError`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import re
from collections.abc import Callable

from aiohttp import web

from ..core.extras import install_hint
from ..core.options import TRANSPORTS, Options
from ..runtime.session import Handler
from . import testserver
from .serving import CommandError, CommandParser, add_run_arguments, port_number, run_command, serve, setup_logging

__all__ = [
    "main",
    "COMMANDS",
    "CommandError",
    "add_loop_argument",
    "add_web_server_argument",
    "serve_on_uvicorn",
    "serve_endpoints",
    "serve_on_granian",
    "serve_on_asgi_server",
    "add_server_arguments",
    "options_from_args",
    "serve",
    "setup_logging",
    "version",
]

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], None]


def add_server_arguments(parser: argparse.ArgumentParser, *, port: int = 8080) -> None:
    """``--host``/``--port`` and the SockJS endpoint options every server subcommand shares."""
    defaults = Options()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=port, help=f"port (default {port})")
    parser.add_argument("--heartbeat-delay", type=float, default=defaults.heartbeat_delay, help="seconds (default 25)")
    parser.add_argument("--disconnect-delay", type=float, default=defaults.disconnect_delay, help="seconds (default 5)")
    parser.add_argument("--response-limit", type=int, default=defaults.response_limit, help="bytes (default 131072)")
    parser.add_argument("--cookie-needed", action="store_true", help="set JSESSIONID for sticky load balancers")
    parser.add_argument("--no-websocket", action="store_true", help="disable the websocket transports")
    parser.add_argument("--sockjs-url", default=defaults.sockjs_url, help="sockjs-client URL for the iframe page")
    parser.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="allow this origin (repeatable); default: any",
    )
    parser.add_argument(
        "--disable-transport", action="append", default=[], metavar="NAME", help="refuse a transport (repeatable)"
    )
    add_run_arguments(parser)


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    """The options every server command shares (kept under its old name: it began with ``--uvloop``)."""
    add_run_arguments(parser)


#: An origin as browsers send it: scheme://host[:port] (a host name, an IPv4 or a bracketed IPv6 address).
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)(:[0-9]{1,5})?")


def _check_transports_and_origins(args: argparse.Namespace) -> None:
    """What Options would refuse in Python's words, said in the command line's."""
    unknown = sorted(set(args.disable_transport) - TRANSPORTS)
    if unknown:
        raise CommandError(
            f"bad option value: unknown transports in --disable-transport: {', '.join(unknown)} "
            f"(valid: {', '.join(sorted(TRANSPORTS))})"
        )
    for origin in args.allowed_origins or ():
        if not _ORIGIN.fullmatch(origin):
            raise CommandError(
                f"bad option value: --allowed-origin {origin!r} is not an origin: "
                "scheme://host[:port] as browsers send it, e.g. https://chat.example.com"
            )


def options_from_args(args: argparse.Namespace, **overrides: object) -> Options:
    """Build :class:`Options` from :func:`add_server_arguments`' arguments."""
    _check_transports_and_origins(args)
    values: dict[str, object] = {
        "heartbeat_delay": args.heartbeat_delay,
        "disconnect_delay": args.disconnect_delay,
        "response_limit": args.response_limit,
        "cookie_needed": args.cookie_needed,
        "websocket": not args.no_websocket,
        "sockjs_url": args.sockjs_url,
        "allowed_origins": frozenset(args.allowed_origins) if args.allowed_origins else None,
        "disabled_transports": frozenset(args.disable_transport),
    }
    values.update(overrides)
    try:
        return Options(**values)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        # Name the command-line option, not the Options field.
        message = re.sub(r"\b(heartbeat_delay|disconnect_delay|response_limit|disabled_transports|allowed_origins)\b",
                         lambda m: _FLAGS[m.group(1)], str(exc))  # fmt: skip
        raise CommandError(f"bad option value: {message}") from None


_FLAGS = {
    "heartbeat_delay": "--heartbeat-delay",
    "disconnect_delay": "--disconnect-delay",
    "response_limit": "--response-limit",
    "disabled_transports": "--disable-transport",
    "allowed_origins": "--allowed-origin",
}


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    try:
        return importlib.metadata.version("sockjs-server")
    except importlib.metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def add_web_server_argument(parser: argparse.ArgumentParser) -> None:
    """``--server``: which web layer and server run the endpoints."""
    parser.add_argument(
        "--server",
        choices=("aiohttp", "builtin", "uvicorn", "granian"),
        default="aiohttp",
        help="aiohttp (default), or the ASGI layer on the package's own HTTP/1.1 server (builtin: fastest on the "
        "HTTP transports, nothing more to install), on uvicorn or on granian (their extras: bash .ci/venv uvicorn "
        "in a checkout, or pip install -e '.[uvicorn]'); see bench/RESULTS.md",
    )


def serve_on_uvicorn(endpoints: list[tuple[str, Handler, Options]], args: argparse.Namespace, labels: dict[str, str]) -> None:
    """``--server uvicorn``: the endpoints as ASGI apps on uvicorn."""
    serve_on_asgi_server("uvicorn", endpoints, args, labels)


def serve_on_granian(endpoints: list[tuple[str, Handler, Options]], args: argparse.Namespace, labels: dict[str, str]) -> None:
    """``--server granian``: the endpoints as ASGI apps on granian."""
    serve_on_asgi_server("granian", endpoints, args, labels)


def serve_on_asgi_server(
    server: str, endpoints: list[tuple[str, Handler, Options]], args: argparse.Namespace, labels: dict[str, str]
) -> None:
    """The endpoints as ASGI apps on ``server``: ``builtin`` (sockjs_server.servers.builtin.server), or ``uvicorn`` or
    ``granian`` (the optional extra of that name)."""
    try:
        from ..asgi.app import SockJSApp

        serve_asgi = importlib.import_module(f"sockjs_server.servers.{server}").serve
    except ImportError:
        raise CommandError(f"--server {server} needs {server}: {install_hint(server)}") from None
    routes = {prefix: SockJSApp(handler, options=options, prefix=prefix) for prefix, handler, options in endpoints}
    metrics_path = getattr(args, "metrics_path", None)
    if not metrics_path:
        serve_asgi(routes, args, labels=labels)
        return
    if not metrics_path.startswith("/"):
        raise CommandError(f"--metrics-path must be a URL path starting with '/', e.g. /metrics, not {metrics_path!r}")
    try:
        from ..metrics import MetricsApp

        metrics = MetricsApp(routes.values(), path=metrics_path)
    except ImportError:
        raise CommandError(f"--metrics-path needs prometheus_client: {install_hint('metrics')}") from None
    serve_asgi(routes, args, labels=labels, fallback=metrics, fallback_lines=[("Prometheus metrics", metrics_path)])


def serve_endpoints(endpoints: list[tuple[str, Handler, Options]], args: argparse.Namespace, labels: dict[str, str]) -> None:
    """Serve ``endpoints`` (prefix, handler, options) on the web server ``--server`` names."""
    server = getattr(args, "server", "aiohttp")
    if server in ("builtin", "uvicorn", "granian"):
        serve_on_asgi_server(server, endpoints, args, labels)
        return
    if server != "aiohttp":
        raise CommandError(f"--server {server} cannot serve this command yet")
    from .. import add_endpoint

    app = web.Application()
    for prefix, handler, options in endpoints:
        add_endpoint(app, prefix, handler, options=options)
    serve(app, args, labels=labels)


def _echo_configure(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)
    parser.add_argument("--prefix", default="/echo", help="endpoint URL prefix (default /echo)")
    add_web_server_argument(parser)


def _echo_run(args: argparse.Namespace) -> None:
    from .. import add_endpoint
    from .testserver import echo

    setup_logging(args)
    if args.server != "aiohttp":
        if not args.prefix.startswith("/") or args.prefix.endswith("/"):
            raise CommandError(f"bad --prefix: prefix must start with '/' and not end with '/': {args.prefix!r}")
        serve_on_asgi_server(args.server, [(args.prefix, echo, options_from_args(args))], args, {args.prefix: "SockJS echo"})
        return
    app = web.Application()
    try:
        add_endpoint(app, args.prefix, echo, options=options_from_args(args))
    except ValueError as exc:
        raise CommandError(f"bad --prefix: {exc}") from None
    serve(app, args, labels={args.prefix: "SockJS echo"})


def _testserver_configure(parser: argparse.ArgumentParser) -> None:
    testserver.build_parser(parser)
    add_web_server_argument(parser)


def _testserver_run(args: argparse.Namespace) -> None:
    testserver.run(args, serve_endpoints)


COMMANDS: dict[str, tuple[str, Configure, Run]] = {
    "echo": ("an echo server on one SockJS endpoint", _echo_configure, _echo_run),
    "testserver": ("the sockjs-protocol conformance test server", _testserver_configure, _testserver_run),
}


#: The entry-point group where parts of the package (STOMP, the demo) and other packages
#: declare subcommands (pyproject.toml): the command line names none of them itself.
COMMAND_GROUP = "sockjs_server.commands"


def _register_plugins() -> None:
    """The subcommands declared in :data:`COMMAND_GROUP`, each loaded only when the command runs."""
    for entry in importlib.metadata.entry_points(group=COMMAND_GROUP):
        try:
            command = entry.load()
        except ImportError:
            continue  # a plug-in whose own dependencies are missing
        name, help_text, configure, run = command
        COMMANDS.setdefault(name, (help_text, configure, run))


def main(argv: list[str] | None = None) -> None:
    _register_plugins()
    parser = CommandParser(prog="sockjs-server", description="SockJS-compatible real-time server.")
    parser.add_argument("--version", action="version", version=f"sockjs-server {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, _run) in sorted(COMMANDS.items()):
        configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    run_command(COMMANDS[args.command][2], args, f"sockjs-server {args.command}")


if __name__ == "__main__":
    main()
