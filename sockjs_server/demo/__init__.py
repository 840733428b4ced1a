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
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    from sockjs_server.cli import add_loop_argument

    add_loop_argument(parser)
    parser.add_argument(
        "--relay",
        metavar="URL",
        default=None,
        help="use RabbitMQ's STOMP plugin instead of the in-memory broker, e.g. stomp://guest:guest@127.0.0.1:61613/",
    )
    parser.add_argument(
        "--demo-dir", default=None, metavar="DIR", help="the demo/ folder (default: the checkout's, or $SOCKJS_SERVER_DEMO_DIR)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> None:
    import logging

    from aiohttp import web

    from sockjs_server.stomp import Broker

    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    broker: Broker | None = None
    if args.relay:
        from sockjs_server.stomp.relay import relay_from_url

        broker = relay_from_url(args.relay)
    try:
        app = create_app(args.demo_dir, broker=broker)
    except DemoError as exc:
        raise SystemExit(f"sockjs-server demo: {exc}") from None
    url = f"http://{args.host}:{args.port}/"

    def announce(line: str) -> None:
        if line.startswith("======== Running on"):
            line = f"sockjs-server demo: chat at {url}  (open it in two windows; Ctrl+C to stop)"
        print(line, flush=True)

    from sockjs_server.cli import serve

    serve(app, args, announce=announce)


COMMAND = ("demo", "the chat demo (rooms, presence, private messages, transport picker)", configure, run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sockjs_server.demo", description=COMMAND[1])
    configure(parser)
    run(parser.parse_args(argv))
