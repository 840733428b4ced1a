"""Helpers for tests that take RabbitMQ away or change it: waiting, reconnecting, rabbitmqctl."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable

from conftest import Node
from stomp_testing import TIMEOUT, StompClient


async def until(condition: Callable[[], bool], timeout: float = 3 * TIMEOUT) -> None:
    """Wait for ``condition`` (a hang guard, not a timing expectation)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def reconnect(node: Node, transport: str = "websocket", timeout: float = 3 * TIMEOUT) -> StompClient:
    """A new connected client, trying again while the node answers ``Broker not available``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        client = await node.client(transport)
        await client.send_frame("CONNECT", {"accept-version": "1.2", "host": "/"})
        frame = await client.next()
        if frame is not None and frame.command == "CONNECTED":
            return client
        assert frame is None or frame["message"] == "Broker not available", frame
        await client.close()
        assert asyncio.get_running_loop().time() < deadline, "the node kept refusing clients"
        await asyncio.sleep(0.1)


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl``; its output (raises when it fails)."""
    done = subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=120)
    return done.stdout
