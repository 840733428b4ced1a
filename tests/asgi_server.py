"""Serving an ASGI app with uvicorn inside a test's event loop, for aiohttp's ``TestClient``.

The app runs in the test's own loop, so tests look into its endpoints and
sessions directly, as they do with the aiohttp layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from aiohttp.test_utils import BaseTestServer
from yarl import URL

from sockjs_server.asgi import SockJSApp, SockJSRouter
from sockjs_server.servers.uvicorn import Server, config


def _bound_socket(host: str) -> socket.socket:
    """A socket bound to a free port of ``host``, for the server to listen on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def _sockjs_apps(app: Any) -> tuple[SockJSApp, ...]:
    """The SockJS endpoints in ``app`` (a router, one endpoint, or neither), which get close frames at stop."""
    return app.apps if isinstance(app, SockJSRouter) else (app,) if isinstance(app, SockJSApp) else ()


class _Server(Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner keeps its own signal handlers


class UvicornServer(BaseTestServer):
    """``app`` on uvicorn (httptools, websockets) at a free port on 127.0.0.1."""

    def __init__(self, app: Any, **config: Any) -> None:
        super().__init__(host="127.0.0.1")
        self.app = app
        self.config = config
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def _make_runner(self, **kwargs: Any) -> Any:  # pragma: no cover - not an aiohttp app
        raise NotImplementedError

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        if self._server is not None:
            return
        sock = _bound_socket(self.host)
        self.port = sock.getsockname()[1]
        app = self.app
        apps = _sockjs_apps(app)
        options = {"log_level": "warning", "timeout_graceful_shutdown": 1, **self.config}
        server = self._server = _Server(config(app, **options), apps)
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def close(self) -> None:
        if self._server is not None and not self._closed:
            self._server.should_exit = True
            assert self._task is not None
            await self._task
            self._closed = True


def _thread_count() -> int:
    """Threads of this process, Rust ones included (0 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


class GranianServer(BaseTestServer):
    """``app`` on granian (embedded in the test's loop) at a free port on 127.0.0.1."""

    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(host="127.0.0.1")
        self.app = app
        self.options = options
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def _make_runner(self, **kwargs: Any) -> Any:  # pragma: no cover - not an aiohttp app
        raise NotImplementedError

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        if self._server is not None:
            return
        from sockjs_server.servers.granian import Server as Granian

        app = self.app
        apps = _sockjs_apps(app)
        options = {"log_level": "warning", **self.options}
        self._threads = _thread_count()
        server = self._server = Granian(app, apps, host=self.host, port=0, **options)
        self._task = asyncio.get_running_loop().create_task(server.serve())
        await asyncio.wait({self._task, asyncio.ensure_future(server.started.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()
        self.port = server.port
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def close(self) -> None:
        if self._server is not None and not self._closed:
            self._server.stop()
            assert self._task is not None
            await self._task
            # granian's runtime threads end a moment after it stopped: one still tearing
            # down when the test run's interpreter finalizes would abort the run.
            for _ in range(200):
                if _thread_count() <= self._threads:
                    break
                await asyncio.sleep(0.01)
            self._closed = True


class BuiltinServer(BaseTestServer):
    """``app`` on the package's own server (``--server builtin``), in the test's loop, at a free port on 127.0.0.1."""

    def __init__(self, app: Any, **limits: Any) -> None:
        super().__init__(host="127.0.0.1")
        self.app = app
        self.limits = limits
        self._server: Any = None

    async def _make_runner(self, **kwargs: Any) -> Any:  # pragma: no cover - not an aiohttp app
        raise NotImplementedError

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        if self._server is not None:
            return
        from sockjs_server.servers.builtin.server import Limits, Server

        sock = _bound_socket(self.host)
        self.port = sock.getsockname()[1]
        app = self.app
        apps = _sockjs_apps(app)
        defaults = {"graceful_timeout": 1.0}
        self._server = Server(app, apps, limits=Limits(**{**defaults, **self.limits}))
        await self._server.start([sock])
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def close(self) -> None:
        if self._server is not None and not self._closed:
            await self._server.stop()
            self._closed = True
