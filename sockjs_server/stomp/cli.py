"""The ``stomp`` subcommand: STOMP over SockJS at /stomp on the in-memory broker.

    sockjs-server stomp --host 127.0.0.1 --port 8080 [--stomp-port 61613] [--relay stomp://guest:guest@127.0.0.1:61613/]
    python -m sockjs_server.stomp ...            # the same
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["COMMAND", "configure", "run", "build_app", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    from sockjs_server.cli import add_server_arguments

    add_server_arguments(parser)
    parser.add_argument("--prefix", default="/stomp", help="SockJS endpoint URL prefix (default /stomp)")
    parser.add_argument(
        "--stomp-port", type=int, default=None, metavar="N", help="also serve STOMP over plain TCP on this port (default: off)"
    )
    parser.add_argument("--app-prefix", default="/app", help="application destination prefix (default /app)")
    parser.add_argument("--user-prefix", default="/user", help="user destination prefix (default /user)")
    parser.add_argument(
        "--relay", default=None, metavar="URL", help="relay to RabbitMQ's STOMP plugin, e.g. stomp://guest:guest@127.0.0.1:61613/ (default: in-memory broker)"
    )


def build_app(args: argparse.Namespace) -> web.Application:
    """The aiohttp application the subcommand serves."""
    from sockjs_server import add_endpoint
    from sockjs_server.cli import options_from_args

    from .memory import MemoryBroker
    from .relay import relay_from_url
    from .server import StompServer
    from .tcp import tcp_listener

    broker = relay_from_url(args.relay) if args.relay else MemoryBroker()
    stomp = StompServer(broker, app_prefix=args.app_prefix, user_prefix=args.user_prefix)
    app = web.Application()

    async def broker_lifetime(app: web.Application) -> AsyncIterator[None]:
        await broker.start()  # the relay logs whether RabbitMQ is available
        yield
        await broker.close()

    app.cleanup_ctx.append(broker_lifetime)
    add_endpoint(app, args.prefix, stomp, options=options_from_args(args))
    if args.stomp_port is not None:
        app.cleanup_ctx.append(tcp_listener(stomp, host=args.host, port=args.stomp_port))
    else:

        async def close_stomp(app: web.Application) -> None:
            await stomp.close()

        app.on_shutdown.append(close_stomp)
    return app


def run(args: argparse.Namespace) -> None:
    from sockjs_server.cli import setup_logging

    setup_logging(args)
    from sockjs_server.cli import serve

    serve(build_app(args), args)


COMMAND = ("stomp", "STOMP over SockJS at /stomp on the in-memory broker", configure, run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sockjs_server.stomp", description=COMMAND[1])
    configure(parser)
    run(parser.parse_args(argv))
