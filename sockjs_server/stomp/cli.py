"""The ``stomp`` subcommand: STOMP over SockJS at /stomp on the in-memory broker.

    sockjs-server stomp --host 127.0.0.1 --port 8080 [--stomp-port 61613] [--relay stomp://guest:guest@127.0.0.1:61613/]
                        [--users FILE [--vhost NAME ...]] [--max-frame-size BYTES]
    sockjs-server stomp adduser --users FILE NAME   # password from the terminal (asked twice) or stdin's first line
    python -m sockjs_server.stomp ...               # the same
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["COMMAND", "configure", "run", "build_app", "main", "add_user"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _relay_url(text: str) -> str:
    """argparse type: a relay URL that :func:`~.relay.relay_from_url` accepts."""
    from .relay import relay_from_url

    try:
        relay_from_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; expected e.g. stomp://guest:guest@127.0.0.1:61613/") from None
    return text


def configure(parser: argparse.ArgumentParser) -> None:
    from sockjs_server.cli import add_server_arguments
    from sockjs_server.cli.serving import port_number

    from .connection import StompOptions

    add_server_arguments(parser)
    parser.add_argument("--prefix", default="/stomp", help="SockJS endpoint URL prefix (default /stomp)")
    parser.add_argument(
        "--stomp-port", type=port_number, default=None, metavar="N", help="also serve STOMP over plain TCP on this port (default: off)"
    )
    parser.add_argument("--app-prefix", default="/app", help="application destination prefix (default /app)")
    parser.add_argument("--user-prefix", default="/user", help="user destination prefix (default /user)")
    parser.add_argument(
        "--relay", type=_relay_url, default=None, metavar="URL", help="relay to RabbitMQ's STOMP plugin, e.g. stomp://guest:guest@127.0.0.1:61613/; several nodes of a cluster: "
        "stomp://guest:guest@rabbit1:61613,rabbit2:61613/ (default: in-memory broker)"
    )
    parser.add_argument(
        "--users",
        default=None,
        metavar="FILE",
        help="check CONNECT login/passcode against this users file (see 'stomp adduser'); default: anyone connects, anonymously",
    )
    parser.add_argument(
        "--vhost",
        action="append",
        dest="vhosts",
        default=None,
        metavar="NAME",
        help="a virtual host clients may name in CONNECT's host header, with --users (repeatable; default '/')",
    )
    parser.add_argument(
        "--max-frame-size",
        type=_positive_int,
        default=StompOptions().max_frame_size,
        metavar="BYTES",
        help=f"largest STOMP frame a connected client may send (default {StompOptions().max_frame_size})",
    )
    sub = parser.add_subparsers(dest="stomp_command", metavar="{adduser}")
    adduser = sub.add_parser(
        "adduser",
        help="add a user to a users file, or change its password",
        description="Add NAME to the users file (created if missing) or change its password. The password is "
        "asked twice on a terminal, else read from the first line of stdin; only its salted scrypt hash is stored.",
    )
    adduser.add_argument("--users", required=True, metavar="FILE", help="the users file")
    adduser.add_argument("name", metavar="NAME", help="the login")


def build_app(args: argparse.Namespace) -> web.Application:
    """The aiohttp application the subcommand serves.

    Raises :class:`~.auth.UsersFileError` when the users file is unreadable or malformed.
    """
    from sockjs_server import add_endpoint
    from sockjs_server.cli import options_from_args

    from .auth import Users, UsersAuthenticator
    from .connection import StompOptions
    from .memory import MemoryBroker
    from .relay import relay_from_url
    from .server import StompServer
    from .tcp import tcp_listener

    authenticate = None
    if args.users is not None:
        vhosts = args.vhosts or ["/"]
        authenticate = UsersAuthenticator(Users.load(args.users), vhosts, default_vhost=vhosts[0])
    defaults = StompOptions()
    frame_size = args.max_frame_size
    stomp_options = StompOptions(max_frame_size=frame_size, max_pending_bytes=max(defaults.max_pending_bytes, frame_size))
    broker = relay_from_url(args.relay) if args.relay else MemoryBroker()
    stomp = StompServer(
        broker, options=stomp_options, app_prefix=args.app_prefix, user_prefix=args.user_prefix, authenticate=authenticate
    )
    app = web.Application()

    async def broker_lifetime(app: web.Application) -> AsyncIterator[None]:
        await broker.start()  # the relay logs whether RabbitMQ is available
        yield
        await broker.close()

    app.cleanup_ctx.append(broker_lifetime)
    # A frame must fit in one websocket message or xhr_send body (with room for its JSON
    # quoting), and in the half of a session's send queue a STOMP client may fill.
    room = frame_size + 64 * 1024
    sockjs = options_from_args(args)
    wanted = {"max_message_size": room, "max_request_size": room, "max_queue_bytes": 2 * room}
    overrides = {name: size for name, size in wanted.items() if getattr(sockjs, name) < size}
    add_endpoint(app, args.prefix, stomp, options=options_from_args(args, **overrides))
    if args.stomp_port is not None:
        app.cleanup_ctx.append(tcp_listener(stomp, host=args.host, port=args.stomp_port))
    else:

        async def close_stomp(app: web.Application) -> None:
            await stomp.close()

        app.on_shutdown.append(close_stomp)
    return app


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords differ")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def add_user(users_file: str, name: str, password: str) -> bool:
    """Add ``name`` (or change its password) in ``users_file``; True when it was new."""
    from pathlib import Path

    from .auth import Users

    users = Users.load(users_file) if Path(users_file).exists() else Users()
    new = name not in users
    users.set_password(name, password)
    users.save(users_file)
    return new


def _adduser(args: argparse.Namespace) -> None:
    from .auth import UsersFileError

    try:
        new = add_user(args.users, args.name, _read_password(args.name))
    except (UsersFileError, ValueError, OSError) as exc:
        print(f"sockjs-server stomp adduser: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{'added' if new else 'changed the password of'} user {args.name!r} in {args.users}")


def run(args: argparse.Namespace) -> None:
    if getattr(args, "stomp_command", None) == "adduser":
        _adduser(args)
        return
    from sockjs_server.cli.serving import CommandError, serve, setup_logging

    from .auth import UsersFileError

    if args.vhosts and args.users is None:
        raise CommandError("--vhost needs --users (virtual hosts are checked for logged-in users)")
    setup_logging(args)
    try:
        app = build_app(args)
    except UsersFileError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # --prefix, --app-prefix, --user-prefix
        raise CommandError(str(exc)) from None
    extra = [f"STOMP over TCP at {args.host}:{args.stomp_port}"] if args.stomp_port else []  # 0: logged once bound
    serve(app, args, extra=extra)


COMMAND = ("stomp", "STOMP over SockJS at /stomp on the in-memory broker", configure, run)


def main(argv: list[str] | None = None) -> None:
    from sockjs_server.cli.serving import CommandParser, run_command

    parser = CommandParser(prog="python -m sockjs_server.stomp", description=COMMAND[1])
    configure(parser)
    run_command(run, parser.parse_args(argv), "python -m sockjs_server.stomp")
