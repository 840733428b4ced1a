"""Serving SockJS ASGI apps on uvicorn, with a shutdown that sends close frames first.

uvicorn stops listening, then waits for open responses to end and only then
runs the lifespan shutdown: a streaming response would keep it waiting for
up to ``heartbeat_delay``. Here the endpoints close their sessions first,
so every client gets ``c[1001,"Server shutting down"]`` at once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import uvicorn

from .asgi import SockJSApp

__all__ = ["Server", "config"]


def config(app: Any, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration for ``app`` with our defaults (httptools, websockets, lifespan on)."""
    defaults: dict[str, Any] = {"http": "httptools", "ws": "websockets-sansio", "lifespan": "on", "timeout_graceful_shutdown": 5}
    return uvicorn.Config(app, **{**defaults, **options})


class Server(uvicorn.Server):
    """A uvicorn server that closes the sessions of ``apps`` before it waits for connections."""

    def __init__(self, config: uvicorn.Config, apps: Sequence[SockJSApp] = ()) -> None:
        super().__init__(config)
        self.apps = tuple(apps)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await asyncio.gather(*(app.stop() for app in self.apps))
        await super().shutdown(sockets=sockets)
