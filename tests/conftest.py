"""Fixtures for the SockJS core tests: an app with one endpoint, or the conformance test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sockjs_client import UNIT, SockJSClient, echo
from sockjs_server import Endpoint, Handler, Options, add_endpoint
from sockjs_server.testserver import make_app


@dataclass
class Served:
    """A running app with one SockJS endpoint."""

    http: TestClient
    endpoint: Endpoint
    client: SockJSClient

    @property
    def host(self) -> str:
        return str(self.http.server.host)

    @property
    def port(self) -> int:
        port = self.http.server.port
        assert port is not None
        return port


Serve = Callable[..., Awaitable[Served]]


class AppServer(TestServer):
    """Runs the app as ``web.run_app`` does: request handlers are not cancelled when a
    client goes away (pytest-aiohttp's default cancels them), unless ``cancel_handlers``.

    The shutdown timeout is short so that a request handler that never returns shows
    up as a failing test rather than a minute-long teardown.
    """

    def __init__(self, app: web.Application, *, cancel_handlers: bool = False) -> None:
        super().__init__(app, host="127.0.0.1")
        self.cancel_handlers = cancel_handlers

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = self.cancel_handlers
        kwargs["shutdown_timeout"] = UNIT
        return web.AppRunner(self.app, **kwargs)


@pytest.fixture
def serve(aiohttp_client: Any) -> Serve:
    """``await serve(handler, prefix="/echo", **options)`` starts an app with one endpoint
    (``options`` are :class:`Options` fields)."""

    async def start(
        handler: Handler = echo,
        *,
        prefix: str = "/echo",
        middlewares: tuple[Any, ...] = (),
        cancel_handlers: bool = False,
        **options: Any,
    ) -> Served:
        app = web.Application(middlewares=middlewares)
        endpoint = add_endpoint(app, prefix, handler, options=Options(**options))
        http = await aiohttp_client(AppServer(app, cancel_handlers=cancel_handlers))
        return Served(http, endpoint, SockJSClient(http, prefix))

    return start


@pytest.fixture
async def testserver(aiohttp_client: Any) -> TestClient:
    """The conformance test server (``/echo``, ``/close``, ``/cookie_needed_echo``, ...)."""
    return await aiohttp_client(AppServer(make_app(sockjs_url="/static/sockjs.js")))


@pytest.fixture
def echo_client(testserver: TestClient) -> SockJSClient:
    return SockJSClient(testserver, "/echo")


@pytest.fixture
def close_client(testserver: TestClient) -> SockJSClient:
    return SockJSClient(testserver, "/close")


@pytest.fixture
def cookie_client(testserver: TestClient) -> SockJSClient:
    return SockJSClient(testserver, "/cookie_needed_echo")
