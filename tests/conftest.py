"""Fixtures for the SockJS core tests: an app with one endpoint, or the conformance test server."""

from __future__ import annotations

import os
from typing import Any

import process_cleanup
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sockjs_client import AppServer, Serve, Served, SockJSClient, echo

from sockjs_server import Handler, Options, add_endpoint
from sockjs_server.cli.testserver import make_app, make_asgi_app

LAYERS = [layer for layer in os.environ.get("SOCKJS_TEST_LAYERS", "aiohttp,asgi,granian,builtin").split(",") if layer]
"""The web layers the protocol tests run on: ``aiohttp``, ``asgi`` (the ASGI app served by uvicorn),
``granian`` (the ASGI app served by granian), ``builtin`` (the ASGI app served by the package's own server)."""

ASGI_SERVERS = {"asgi": "uvicorn", "granian": "granian", "builtin": "sockjs_server.servers.builtin.server"}
"""ASGI layer name -> the server package that serves it."""


def asgi_test_server(layer: str, app: Any) -> Any:
    """``app`` served by the layer's ASGI server, as an aiohttp test server."""
    if layer == "granian":
        from asgi_server import GranianServer

        return GranianServer(app)
    if layer == "builtin":
        from asgi_server import BuiltinServer

        return BuiltinServer(app)
    from asgi_server import UvicornServer

    return UvicornServer(app)

# A killed test run (SIGTERM, SIGHUP) takes the servers it started with it.
process_cleanup.install()


@pytest.fixture(params=LAYERS)
def layer(request: pytest.FixtureRequest) -> str:
    """The web layer under test: ``aiohttp``, ``asgi`` (on uvicorn) or ``granian``."""
    if request.param in ASGI_SERVERS:
        pytest.importorskip(ASGI_SERVERS[request.param])
    return str(request.param)


@pytest.fixture
def serve(aiohttp_client: Any, layer: str) -> Serve:
    """``await serve(handler, prefix="/echo", **options)`` starts an app with one endpoint
    (``options`` are :class:`Options` fields), on each web layer."""

    async def start(
        handler: Handler = echo,
        *,
        prefix: str = "/echo",
        middlewares: tuple[Any, ...] = (),
        cancel_handlers: bool = False,
        **options: Any,
    ) -> Served:
        if layer in ASGI_SERVERS:
            if middlewares or cancel_handlers:
                pytest.skip("aiohttp middlewares and handler cancellation: aiohttp layer only")
            from sockjs_server.asgi import SockJSApp, SockJSRouter

            sockjs = SockJSApp(handler, options=Options(**options), prefix=prefix)
            http = await aiohttp_client(asgi_test_server(layer, SockJSRouter({prefix: sockjs}) if prefix else sockjs))
            return Served(http, sockjs.endpoint, SockJSClient(http, prefix))
        app = web.Application(middlewares=middlewares)
        endpoint = add_endpoint(app, prefix, handler, options=Options(**options))
        http = await aiohttp_client(AppServer(app, cancel_handlers=cancel_handlers))
        return Served(http, endpoint, SockJSClient(http, prefix))

    return start


@pytest.fixture
async def testserver(aiohttp_client: Any, layer: str) -> TestClient:
    """The conformance test server (``/echo``, ``/close``, ``/cookie_needed_echo``, ...), on each web layer."""
    if layer in ASGI_SERVERS:
        return await aiohttp_client(asgi_test_server(layer, make_asgi_app(sockjs_url="/static/sockjs.js")))
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
