"""Fixtures for the SockJS core tests: an app with one endpoint, or the conformance test server."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import process_cleanup
from sockjs_client import AppServer, Serve, Served, SockJSClient, echo
from sockjs_server import Handler, Options, add_endpoint
from sockjs_server.testserver import make_app

# A killed test run (SIGTERM, SIGHUP) takes the servers it started with it.
process_cleanup.install()


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
