"""Fixtures for the relay tests: the real RabbitMQ, and server nodes relaying to it.

RabbitMQ's STOMP plugin must listen on 127.0.0.1:61613 with guest/guest
(``.ci/install-rabbitmq`` sets it up). If it cannot be reached the tests
fail with a message saying so; they never skip.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "stomp"))

from stomp_testing import StompClient, TcpPipe, WebSocketPipe, XhrPollingPipe, XhrStreamingPipe  # noqa: E402

from sockjs_server import Options, add_endpoint  # noqa: E402
from sockjs_server.stomp import StompServer, start_tcp_server  # noqa: E402
from sockjs_server.stomp.relay import RabbitRelay  # noqa: E402

RABBIT_HOST = os.environ.get("RABBITMQ_STOMP_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("RABBITMQ_STOMP_PORT", "61613"))
#: How long to wait for RabbitMQ's STOMP port before failing the run.
RABBIT_WAIT = float(os.environ.get("RABBITMQ_WAIT", "20"))

PIPES = {"websocket": WebSocketPipe, "xhr-streaming": XhrStreamingPipe, "xhr-polling": XhrPollingPipe}


def stomp_port_open(host: str = RABBIT_HOST, port: int = RABBIT_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_stomp_port(deadline: float) -> bool:
    while time.monotonic() < deadline:
        if stomp_port_open():
            return True
        time.sleep(0.2)
    return stomp_port_open()


@pytest.fixture(scope="session")
def rabbitmq() -> None:
    """RabbitMQ's STOMP listener is up, or the test fails saying how to get it."""
    if not wait_for_stomp_port(time.monotonic() + RABBIT_WAIT):
        pytest.fail(
            f"RabbitMQ's STOMP plugin is not reachable at {RABBIT_HOST}:{RABBIT_PORT} (guest/guest). "
            "Run .ci/install-rabbitmq (installs rabbitmq-server, starts it, enables rabbitmq_stomp).",
            pytrace=False,
        )


@pytest.fixture
def restartable_rabbitmq() -> Iterator[None]:
    """Whatever the test does, RabbitMQ runs with the STOMP plugin enabled afterwards."""
    try:
        yield
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
        subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_stomp"], capture_output=True, timeout=120)
        assert wait_for_stomp_port(time.monotonic() + 60), "RabbitMQ STOMP did not come back after the test"


def unique(prefix: str = "relay-test") -> str:
    """A destination name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


#: Queue declarations in tests carry this so their queues go away on their own
#: (SEND and SUBSCRIBE must declare a queue with the same arguments).
QUEUE_ARGS = {"x-expires": "60000"}


def fast_relay(**options: Any) -> RabbitRelay:
    """A relay with short timers, so that failures show up quickly in tests."""
    settings: dict[str, Any] = {
        "heartbeat": 2.0,
        "connect_timeout": 5.0,
        "receipt_timeout": 10.0,
        "reconnect_delay": 0.2,
        "max_reconnect_delay": 1.0,
    }
    settings.update(options)
    host = settings.pop("host", RABBIT_HOST)
    port = settings.pop("port", RABBIT_PORT)
    return RabbitRelay(host, port, "guest", "guest", "/", **settings)


class Node:
    """One server node: a StompServer on a relay, served over SockJS at /stomp and over TCP."""

    def __init__(self, stomp: StompServer, relay: RabbitRelay) -> None:
        self.stomp = stomp
        self.relay = relay
        self.clients: list[StompClient] = []
        self.base = ""
        self.tcp_port = 0
        self.http_port = 0
        self.http: aiohttp.ClientSession | None = None

    async def client(self, transport: str = "websocket", base: str | None = None) -> StompClient:
        if transport == "tcp":
            pipe: Any = await TcpPipe.open("127.0.0.1", self.tcp_port)
        else:
            assert self.http is not None
            pipe = await PIPES[transport].open(self.http, base or self.base)
        client = StompClient(pipe)
        self.clients.append(client)
        return client

    async def connected(self, transport: str = "websocket", **headers: str) -> StompClient:
        client = await self.client(transport)
        await client.connect("1.2", **headers)
        return client


MakeNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(rabbitmq: None, aiohttp_server: Any) -> AsyncIterator[MakeNode]:
    """``await make_node(relay=None, **StompServer kwargs)``: a node on its own port."""
    nodes: list[tuple[Node, asyncio.Server]] = []

    async def make(relay: RabbitRelay | None = None, *, start: bool = True, **kwargs: Any) -> Node:
        relay = relay if relay is not None else fast_relay()
        if start:
            await relay.start()
        stomp = StompServer(broker=relay, **kwargs)
        node = Node(stomp, relay)
        tcp = await start_tcp_server(stomp, "127.0.0.1", 0)
        node.tcp_port = tcp.sockets[0].getsockname()[1]
        app = web.Application()
        add_endpoint(app, "/stomp", stomp, options=Options(heartbeat_delay=25.0))
        server = await aiohttp_server(app)
        node.http_port = server.port
        node.base = str(server.make_url("/stomp"))
        node.http = aiohttp.ClientSession()
        nodes.append((node, tcp))
        return node

    yield make
    for node, tcp in nodes:
        for client in node.clients:
            try:
                await client.close()
            except Exception:
                pass
        await node.stomp.close()
        await node.relay.close()
        tcp.close()
        if node.http is not None:
            await node.http.close()
