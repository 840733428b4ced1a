"""Fixtures for the SockJS core tests: an app with one endpoint, or the conformance test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_client import SockJSClient, echo
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


@pytest.fixture
def serve(aiohttp_client: Any) -> Serve:
    """``await serve(handler, prefix="/echo", **options)`` starts an app with one endpoint."""

    async def start(handler: Handler = echo, *, prefix: str = "/echo", **options: Any) -> Served:
        app = web.Application()
        endpoint = add_endpoint(app, prefix, handler, options=Options(**options))
        http = await aiohttp_client(app)
        return Served(http, endpoint, SockJSClient(http, prefix))

    return start


@pytest.fixture
async def testserver(aiohttp_client: Any) -> TestClient:
    """The conformance test server (``/echo``, ``/close``, ``/cookie_needed_echo``, ...)."""
    return await aiohttp_client(make_app(sockjs_url="/static/sockjs.js"))


@pytest.fixture
def echo_client(testserver: TestClient) -> SockJSClient:
    return SockJSClient(testserver, "/echo")


@pytest.fixture
def close_client(testserver: TestClient) -> SockJSClient:
    return SockJSClient(testserver, "/close")


@pytest.fixture
def cookie_client(testserver: TestClient) -> SockJSClient:
    return SockJSClient(testserver, "/cookie_needed_echo")
