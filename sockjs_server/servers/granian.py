"""Serving SockJS ASGI apps on granian (a Rust HTTP server), with a shutdown that sends close frames first.

granian runs embedded in this process's event loop (``granian.server.embed``):
its Rust threads parse HTTP and websocket frames, the app runs on the loop.
When it stops, granian drops open websockets without a close frame and waits
for open responses to end before it runs the lifespan shutdown; here the
endpoints close their sessions first, so every client gets
``c[1001,"Server shutting down"]`` at once, as on aiohttp and uvicorn.

The listening socket is built before the worker starts (granian builds one
per worker on Linux), so that ``port=0`` works and :attr:`Server.port` is the
real port.  That uses granian internals: the ``granian`` extra pins its minor version.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from granian._granian import ListenerSpec
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server as _EmbeddedServer

from ..core.extras import install_hint
from ..asgi.app import SockJSApp, SockJSRouter

__all__ = ["Server", "run", "serve"]

_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    # granian's own lines go wherever the application's logging sends them (not to stdout).
    "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}},
}


class _NotExperimental(logging.Filter):
    """Drops granian's "Embedded server is experimental!" line, said on every start (the README names the mode)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "experimental" not in record.getMessage()


class Server(_EmbeddedServer):
    """granian's embedded ASGI server that closes the sessions of ``apps`` before it stops.

    ``options`` are granian's own (``log_access``, ``http``, ``backpressure``...).
    Run it with ``await server.serve()``; :meth:`stop` ends it (from a signal handler too).
    """

    def __init__(self, app: Any, apps: Sequence[SockJSApp] = (), *, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
        defaults: dict[str, Any] = {
            "interface": Interfaces.ASGI,
            "http": HTTPModes.http1,
            "websockets": True,
            "log_dictconfig": _LOGGING,
            "backlog": 1024,
            # Concurrent requests per worker: every SockJS session may hold one (a poll, a stream, a websocket).
            "backpressure": 65536,
        }
        super().__init__(app, address=host, port=port, **{**defaults, **options})
        logging.getLogger("_granian").addFilter(_NotExperimental())
        self.apps = tuple(apps)
        self.port = port
        self.started = asyncio.Event()

    def _init_shared_socket(self) -> None:
        # One socket built here and shared with the worker (granian's own non-Linux path): the real port is known.
        address = socket.getaddrinfo(self.bind_addr, self.bind_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][4]
        self.bind_addr = str(address[0])  # granian takes IP addresses only
        try:
            holder = ListenerSpec(self.bind_addr, self.bind_port, self.backlog).build()
        except RuntimeError as exc:  # granian says "Address already in use (os error 98)"
            match = re.search(r"\(os error (\d+)\)", str(exc))
            if match is None:
                raise
            code = int(match.group(1))
            where = (self.bind_addr, self.bind_port)
            raise OSError(code, f"error while attempting to bind on address {where}: {os.strerror(code)}") from None
        fd = holder.get_fd()
        self._ssp, self._shd, self._sfd = None, holder, fd  # type: ignore[assignment]
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.listen(self.backlog)  # connections wait from now on, until the worker accepts them
            self.port = self.bind_port = sock.getsockname()[1]

    def startup(self, spawn_target: Any, target_loader: Any) -> None:
        super().startup(spawn_target, target_loader)  # type: ignore[no-untyped-call]
        self.started.set()

    async def shutdown(self, exit_code: int = 0) -> None:
        await asyncio.gather(*(app.stop() for app in self.apps))
        await super().shutdown(exit_code)  # type: ignore[no-untyped-call]


def run(
    app: Any,
    apps: Sequence[SockJSApp] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    on_start: Callable[[Server], None] | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` on granian until SIGINT or SIGTERM (as ``uvicorn.run`` does); ``apps`` are the
    :class:`SockJSApp`\\ s in it, whose sessions get a close frame first. ``on_start(server)`` runs
    once it listens. A port in use or an unknown host raises :class:`OSError`."""
    server = Server(app, apps, host=host, port=port, **options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        serving = asyncio.ensure_future(server.serve())
        started = asyncio.ensure_future(server.started.wait())
        await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if server.started.is_set() and on_start is not None:
            on_start(server)
        await serving

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    _wait_for_other_threads()


def _wait_for_other_threads(limit: float = 2.0) -> None:
    """Let granian's runtime threads end before the interpreter finalizes: one still tearing
    down then aborts the process ("panic in a function that cannot unwind", status -6)."""
    deadline = time.monotonic() + limit
    try:
        while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    except OSError:  # no /proc (not Linux): a short grace instead
        time.sleep(0.2)


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
    """Serve ``routes`` (prefix -> app) on granian at ``--host``/``--port`` (the CLI's ``--server granian``);
    other paths go to ``fallback`` (e.g. the metrics), announced as ``fallback_lines`` (label, path)."""
    from .listening import CommandError, listen_error, listening_socket

    # A port in use or a bad host: our one-line error before granian says anything.
    listening_socket(args).close()
    router = SockJSRouter(routes, fallback)
    level = "debug" if getattr(args, "verbose", False) else getattr(args, "log_level", "info")
    loop_factory = None
    if getattr(args, "uvloop", False):
        try:
            loop_factory = importlib.import_module("uvloop").new_event_loop
        except ImportError:
            raise CommandError(f"--uvloop needs uvloop: {install_hint('uvloop')}") from None

    def say_where(server: Server) -> None:
        for label, path in [(labels.get(prefix, "SockJS endpoint"), prefix) for prefix in routes] + list(fallback_lines):
            announce(f"{label} at http://{args.host}:{server.port}{path}")
        announce("(Ctrl+C to stop)")

    try:
        run(
            router, router.apps, host=args.host, port=args.port, loop_factory=loop_factory, on_start=say_where,
            log_level=level, log_access=getattr(args, "access_log", "no-sessions") == "all",
        )  # fmt: skip
    except OSError as exc:
        message = listen_error(exc, args)
        if message is None:
            raise
        raise CommandError(message) from None
