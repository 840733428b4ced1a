"""The ``sockjs-server`` command.

Subcommands register themselves in :data:`COMMANDS`: a name, a help line,
a function that adds its arguments and one that runs it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from aiohttp import web

from . import testserver
from .options import Options
from .serving import serve

__all__ = ["main", "COMMANDS", "add_loop_argument", "add_server_arguments", "options_from_args", "serve"]

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], None]


def add_server_arguments(parser: argparse.ArgumentParser, *, port: int = 8080) -> None:
    """``--host``/``--port`` and the SockJS endpoint options every server subcommand shares."""
    defaults = Options()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")
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
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_loop_argument(parser)


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (pip install 'sockjs-server[uvloop]')"
    )


def options_from_args(args: argparse.Namespace, **overrides: object) -> Options:
    """Build :class:`Options` from :func:`add_server_arguments`' arguments."""
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
    return Options(**values)  # type: ignore[arg-type]


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _echo_configure(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)
    parser.add_argument("--prefix", default="/echo", help="endpoint URL prefix (default /echo)")


def _echo_run(args: argparse.Namespace) -> None:
    from . import add_endpoint
    from .testserver import echo

    setup_logging(args)
    app = web.Application()
    add_endpoint(app, args.prefix, echo, options=options_from_args(args))
    serve(app, args)


def _testserver_configure(parser: argparse.ArgumentParser) -> None:
    testserver.build_parser(parser)


COMMANDS: dict[str, tuple[str, Configure, Run]] = {
    "echo": ("an echo server on one SockJS endpoint", _echo_configure, _echo_run),
    "testserver": ("the sockjs-protocol conformance test server", _testserver_configure, testserver.run),
}


def _register_optional() -> None:
    """Subcommands that live in optional parts of the package."""
    for module_name in ("sockjs_server.stomp.cli", "sockjs_server.demo"):
        try:
            module = __import__(module_name, fromlist=["COMMAND"])
        except ImportError:
            continue
        command = getattr(module, "COMMAND", None)
        if command is not None:
            name, help_text, configure, run = command
            COMMANDS.setdefault(name, (help_text, configure, run))


def main(argv: list[str] | None = None) -> None:
    _register_optional()
    parser = argparse.ArgumentParser(prog="sockjs-server", description="SockJS-compatible real-time server.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, _run) in sorted(COMMANDS.items()):
        configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    COMMANDS[args.command][2](args)


if __name__ == "__main__":
    main()
