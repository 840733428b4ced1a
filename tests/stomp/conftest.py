from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

from stomp_testing import (  # noqa: E402
    StompClient,
    TcpPipe,
    WebSocketPipe,
    XhrPollingPipe,
    XhrStreamingPipe,
)

from sockjs_server import Options, add_endpoint  # noqa: E402
from sockjs_server.stomp import StompServer, start_tcp_server  # noqa: E402

SOCKJS_TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling")
ALL_TRANSPORTS = ("tcp", *SOCKJS_TRANSPORTS)


class Harness:
    """One StompServer served over TCP and over SockJS at /stomp, and clients for it."""

    def __init__(self, stomp: StompServer, transport: str) -> None:
        self.stomp = stomp
        self.transport = transport
        self.clients: list[StompClient] = []
        self.port = 0
        self.base = ""
        self.http: aiohttp.ClientSession | None = None

    async def client(self, transport: str | None = None) -> StompClient:
        transport = transport or self.transport
        if transport == "tcp":
            pipe: Any = await TcpPipe.open("127.0.0.1", self.port)
        else:
            assert self.http is not None
            kind = {"websocket": WebSocketPipe, "xhr-streaming": XhrStreamingPipe, "xhr-polling": XhrPollingPipe}[transport]
            pipe = await kind.open(self.http, self.base)
        client = StompClient(pipe)
        self.clients.append(client)
        return client

    async def connected(self, transport: str | None = None, version: str | None = "1.2", **headers: str) -> StompClient:
        client = await self.client(transport)
        await client.connect(version, **headers)
        return client


@pytest.fixture
async def harness(aiohttp_server: Any) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[tuple[Harness, Any]] = []

    async def make(transport: str = "tcp", stomp: StompServer | None = None, sockjs_options: Options | None = None, **kwargs: Any) -> Harness:
        stomp = stomp if stomp is not None else StompServer(**kwargs)
        h = Harness(stomp, transport)
        tcp = await start_tcp_server(stomp, "127.0.0.1", 0)
        h.port = tcp.sockets[0].getsockname()[1]
        app = web.Application()
        add_endpoint(app, "/stomp", stomp, options=sockjs_options or Options(heartbeat_delay=25.0))
        server = await aiohttp_server(app)
        h.base = str(server.make_url("/stomp"))
        h.http = aiohttp.ClientSession()
        made.append((h, tcp))
        return h

    yield make
    for h, tcp in made:
        for client in h.clients:
            try:
                await client.close()
            except Exception:
                pass
        await h.stomp.close()
        tcp.close()
        if h.http is not None:
            await h.http.close()
