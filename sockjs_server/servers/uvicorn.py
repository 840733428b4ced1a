"""Serving SockJS ASGI apps on uvicorn, with a shutdown that sends close frames first.

uvicorn stops listening, then waits for open responses to end and only then
runs the lifespan shutdown: a streaming response would keep it waiting for
up to ``heartbeat_delay``. Here the endpoints close their sessions first,
so every client gets ``c[1001,"Server shutting down"]`` at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import uvicorn

from ..asgi.app import SockJSApp, SockJSRouter

__all__ = ["Server", "config", "serve"]


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


class _Announcing(Server):
    """Says where each endpoint is once listening (the real port when ``--port 0``)."""

    def __init__(self, config: uvicorn.Config, apps: Sequence[SockJSApp], lines: Sequence[tuple[str, str]], announce: Callable[[str], None]) -> None:
        super().__init__(config, apps)
        self.lines = lines
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        for label, path in self.lines:
            self.announce(f"{label} at http://{host}:{port}{path}")
        self.announce("(Ctrl+C to stop)")


def _print_flush(line: str) -> None:
    print(line, flush=True)


def serve(
    routes: Mapping[str, SockJSApp],
    args: argparse.Namespace,
    *,
    labels: Mapping[str, str],
    announce: Callable[[str], None] = _print_flush,
    fallback: Callable[..., Awaitable[None]] | None = None,
    fallback_lines: Sequence[tuple[str, str]] = (),
) -> None:
    """Serve ``routes`` (prefix -> app) on uvicorn at ``--host``/``--port`` (the CLI's ``--server uvicorn``);
    other paths go to ``fallback`` (e.g. the metrics), announced as ``fallback_lines`` (label, path)."""
    router = SockJSRouter(routes, fallback)
    loop = "uvloop" if getattr(args, "uvloop", False) else "auto"
    level = "debug" if getattr(args, "verbose", False) else getattr(args, "log_level", "info")
    settings = config(
        router, host=args.host, port=args.port, loop=loop, log_level=level,
        access_log=getattr(args, "access_log", "no-sessions") == "all", log_config=None,
    )  # fmt: skip
    lines = [(labels.get(prefix, "SockJS endpoint"), prefix) for prefix in routes] + list(fallback_lines)
    # uvicorn raises the signal that stopped it again once it has stopped:
    # Ctrl+C and SIGTERM end the command cleanly (status 0), as with aiohttp.
    from .listening import listening_socket

    # Made here so that a port in use or a bad host ends the command with our one-line
    # error (uvicorn logs it and exits with status 3).
    sock = listening_socket(args)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _Announcing(settings, router.apps, lines, announce).run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(Exception):
    """SIGTERM, raised again by uvicorn after its graceful shutdown."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated
