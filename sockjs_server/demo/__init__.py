"""The chat demo: ``sockjs-server demo --host 127.0.0.1 --port 8080``.

Rooms, presence, history and private messages over STOMP over SockJS, with a
transport picker, served from the repository's ``demo/`` folder (the page and
its ``npm ci``-installed browser libraries). See :mod:`.app`.
"""

from __future__ import annotations

import argparse

from .app import ChatDemo, DemoError, create_app, find_demo_dir

__all__ = ["COMMAND", "ChatDemo", "DemoError", "configure", "create_app", "find_demo_dir", "main", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    from sockjs_server.cli.serving import add_run_arguments, port_number
    from sockjs_server.stomp.cli import _relay_url

    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8080, help="port (default 8080)")
    add_run_arguments(parser)
    parser.add_argument(
        "--relay",
        type=_relay_url,
        metavar="URL",
        default=None,
        help="use RabbitMQ's STOMP plugin instead of the in-memory broker, e.g. stomp://guest:guest@127.0.0.1:61613/",
    )
    parser.add_argument(
        "--demo-dir", default=None, metavar="DIR", help="the demo/ folder (default: the checkout's, or $SOCKJS_SERVER_DEMO_DIR)"
    )


def run(args: argparse.Namespace) -> None:
    from sockjs_server.cli.serving import CommandError, serve, setup_logging
    from sockjs_server.stomp import Broker

    setup_logging(args)
    broker: Broker | None = None
    if args.relay:
        from sockjs_server.stomp.relay import relay_from_url

        broker = relay_from_url(args.relay)  # already checked by the parser
    try:
        app = create_app(args.demo_dir, broker=broker)
    except DemoError as exc:
        raise CommandError(str(exc)) from None
    serve(app, args, extra=["Chat demo at {base}/  (open it in two windows)"])


COMMAND = ("demo", "the chat demo (rooms, presence, private messages, transport picker)", configure, run)


def main(argv: list[str] | None = None) -> None:
    from sockjs_server.cli.serving import CommandParser, run_command

    parser = CommandParser(prog="python -m sockjs_server.demo", description=COMMAND[1])
    configure(parser)
    run_command(run, parser.parse_args(argv), "python -m sockjs_server.demo")
