"""STOMP over plain TCP, sharing a StompServer's broker, handlers and users.

Off by default; backend services publish with any standard STOMP client::

    stomp = StompServer()
    app.cleanup_ctx.append(tcp_listener(stomp, host="127.0.0.1", port=61613))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .server import StompServer

__all__ = ["start_tcp_server", "tcp_listener"]

logger = logging.getLogger(__name__)


async def start_tcp_server(stomp: StompServer, host: str = "127.0.0.1", port: int = 61613) -> asyncio.Server:
    """Listen for STOMP over TCP on ``host:port`` (port 0 picks a free one)."""
    server = await asyncio.start_server(stomp.handle_stream, host, port)
    for sock in server.sockets:
        logger.info("STOMP over TCP listening on %s", sock.getsockname())
    return server


def tcp_listener(
    stomp: StompServer, *, host: str = "127.0.0.1", port: int = 61613
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` entry running the TCP listener with the app."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        server = await start_tcp_server(stomp, host, port)
        try:
            yield
        finally:
            server.close()
            await stomp.close()
            await server.wait_closed()

    return context
