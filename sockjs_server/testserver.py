"""The conformance test server: the endpoints the sockjs-protocol suite expects.

Run ``python -m sockjs_server.testserver --host 127.0.0.1 --port 8081``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from . import ENDPOINTS, Endpoint, Handler, Options, Session, add_endpoint
from .asgi import SockJSApp, SockJSRouter
from .serving import CommandParser, add_run_arguments, port_number, run_command, serve, setup_logging

__all__ = ["make_app", "make_asgi_app", "main"]


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


async def close(session: Session) -> None:
    await session.close(3000, "Go away!")


async def ticker(session: Session) -> None:
    while not session.closed:
        await session.send("tick!")
        await asyncio.sleep(1)


async def amplify(session: Session) -> None:
    """Answer message ``n`` with ``2**n`` x's (``n`` capped at 19)."""
    async for message in session:
        try:
            n = int(message)
        except ValueError:
            n = 1
        n = min(max(n, 0), 19)
        await session.send("x" * 2**n)


def make_broadcast() -> tuple[list[Endpoint], object]:
    holder: list[Endpoint] = []

    async def broadcast(session: Session) -> None:
        async for message in session:
            await holder[0].broadcast(message)

    return holder, broadcast


def _endpoints(sockjs_url: str | None, response_limit: int) -> list[tuple[str, Handler, Options]]:
    """Every endpoint of the protocol suite: (prefix, handler, options); ``/broadcast`` last."""
    base: dict[str, object] = {"response_limit": response_limit}
    if sockjs_url:
        base["sockjs_url"] = sockjs_url

    def opts(**extra: object) -> Options:
        return Options(**{**base, **extra})  # type: ignore[arg-type]

    return [
        ("/echo", echo, opts()),
        ("/disabled_websocket_echo", echo, opts(websocket=False)),
        ("/cookie_needed_echo", echo, opts(cookie_needed=True)),
        ("/close", close, opts()),
        ("/ticker", ticker, opts()),
        ("/amplify", amplify, opts()),
    ]


def make_app(*, sockjs_url: str | None = None, response_limit: int = 4096) -> web.Application:
    """An application with every endpoint of the protocol suite."""
    app = web.Application()
    for prefix, handler, options in _endpoints(sockjs_url, response_limit):
        add_endpoint(app, prefix, handler, options=options)
    holder, broadcast = make_broadcast()
    options = _endpoints(sockjs_url, response_limit)[0][2]
    holder.append(add_endpoint(app, "/broadcast", broadcast, options=options))  # type: ignore[arg-type]
    return app


def make_asgi_app(*, sockjs_url: str | None = None, response_limit: int = 4096) -> SockJSRouter:
    """The same endpoints as :func:`make_app`, as one ASGI application."""
    routes = {prefix: SockJSApp(handler, options=options, prefix=prefix) for prefix, handler, options in _endpoints(sockjs_url, response_limit)}
    holder, broadcast = make_broadcast()
    app = SockJSApp(broadcast, options=routes["/echo"].endpoint.options, prefix="/broadcast")  # type: ignore[arg-type]
    holder.append(app.endpoint)
    routes["/broadcast"] = app
    return SockJSRouter(routes)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or CommandParser(prog="python -m sockjs_server.testserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8081, help="port (default 8081)")
    parser.add_argument("--sockjs-url", default=None, help="sockjs-client URL for the iframe page")
    parser.add_argument("--response-limit", type=int, default=4096, help="streaming response limit (default 4096)")
    add_run_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    setup_logging(args)
    app = make_app(sockjs_url=args.sockjs_url, response_limit=args.response_limit)
    serve(app, args, labels={e.prefix: f"SockJS test endpoint {e.prefix}" for e in app[ENDPOINTS]})


def main(argv: list[str] | None = None) -> None:
    run_command(run, build_parser().parse_args(argv), "python -m sockjs_server.testserver")


if __name__ == "__main__":
    main()
