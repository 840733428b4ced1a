"""The conformance test server: the endpoints the sockjs-protocol suite expects.

Run ``sockjs-server testserver --port 8081`` (``--server uvicorn`` for the ASGI
layer), or ``python -m sockjs_server.cli.testserver --port 8081`` (aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from aiohttp import web

from .. import Endpoint, Handler, Options, Session, add_endpoint
from ..asgi.app import SockJSApp, SockJSRouter
from .serving import CommandParser, add_run_arguments, port_number, run_command, serve, setup_logging

__all__ = ["EndpointSpec", "endpoint_labels", "endpoints", "make_app", "make_asgi_app", "main", "run"]

EndpointSpec = tuple[str, Handler, Options]
"""One endpoint as any web layer takes it: (prefix, handler, options)."""

ServeEndpoints = Callable[[list[EndpointSpec], argparse.Namespace, dict[str, str]], None]
"""Serves endpoints on the command line's ``--host``/``--port``, given the labels to print."""


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


async def broadcast(session: Session) -> None:
    """Send every message to every session of this endpoint."""
    endpoint = session.endpoint
    assert isinstance(endpoint, Endpoint)
    async for message in session:
        await endpoint.broadcast(message)


def endpoints(*, sockjs_url: str | None = None, response_limit: int = 4096) -> list[EndpointSpec]:
    """Every endpoint of the protocol suite as (prefix, handler, options), for any web layer."""
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
        ("/broadcast", broadcast, opts()),
    ]


def endpoint_labels(specs: list[EndpointSpec]) -> dict[str, str]:
    """What the server prints for each endpoint once it listens."""
    return {prefix: f"SockJS test endpoint {prefix}" for prefix, _, _ in specs}


def make_app(*, sockjs_url: str | None = None, response_limit: int = 4096) -> web.Application:
    """An application with every endpoint of the protocol suite."""
    return _aiohttp_app(endpoints(sockjs_url=sockjs_url, response_limit=response_limit))


def _aiohttp_app(specs: list[EndpointSpec]) -> web.Application:
    app = web.Application()
    for prefix, handler, options in specs:
        add_endpoint(app, prefix, handler, options=options)
    return app


def make_asgi_app(*, sockjs_url: str | None = None, response_limit: int = 4096) -> SockJSRouter:
    """The same endpoints as :func:`make_app`, as one ASGI application."""
    specs = endpoints(sockjs_url=sockjs_url, response_limit=response_limit)
    return SockJSRouter({prefix: SockJSApp(handler, options=options, prefix=prefix) for prefix, handler, options in specs})


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or CommandParser(prog="python -m sockjs_server.cli.testserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8081, help="port (default 8081)")
    parser.add_argument("--sockjs-url", default=None, help="sockjs-client URL for the iframe page")
    parser.add_argument("--response-limit", type=int, default=4096, help="streaming response limit (default 4096)")
    add_run_arguments(parser)
    return parser


def _serve_on_aiohttp(specs: list[EndpointSpec], args: argparse.Namespace, labels: dict[str, str]) -> None:
    serve(_aiohttp_app(specs), args, labels=labels)


def run(args: argparse.Namespace, serve_endpoints: ServeEndpoints = _serve_on_aiohttp) -> None:
    """Serve every endpoint with ``serve_endpoints`` (the command line passes one that honours ``--server``)."""
    setup_logging(args)
    specs = endpoints(sockjs_url=args.sockjs_url, response_limit=args.response_limit)
    serve_endpoints(specs, args, endpoint_labels(specs))


def main(argv: list[str] | None = None) -> None:
    run_command(run, build_parser().parse_args(argv), "python -m sockjs_server.cli.testserver")


if __name__ == "__main__":
    main()
