"""Deployment: ``sockjs-server stomp --relay URL`` processes, alone and behind HAProxy.

Two server processes relay to one RabbitMQ; HAProxy (tests/relay/haproxy.cfg,
the README's example) balances SockJS sessions over them with sticky HTTP
transports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import PIPES, RABBIT_HOST, RABBIT_PORT, unique
from stomp_testing import TIMEOUT, StompClient
from tcp_proxy import free_port

pytestmark = pytest.mark.rabbitmq

HAPROXY_CFG = Path(__file__).parent / "haproxy.cfg"
RELAY_URL = f"stomp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/"


def wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise AssertionError(f"{what} exited with {process.returncode}:\n{output}")
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on port {port}")


def stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.stdout.read().decode(errors="replace") if process.stdout else ""


@pytest.fixture
def server_processes(rabbitmq: None) -> Iterator[list[int]]:
    """Two ``sockjs-server stomp --relay`` processes; yields their ports."""
    ports = [free_port(), free_port()]
    processes = []
    try:
        for port in ports:
            process = subprocess.Popen(
                [sys.executable, "-m", "sockjs_server", "stomp", "--host", "127.0.0.1", "--port", str(port), "--relay", RELAY_URL],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            processes.append(process)
        for port, process in zip(ports, processes):
            wait_port(port, process, f"sockjs-server on port {port}")
        yield ports
    finally:
        logs = [stop(p) for p in processes]
    for log in logs:
        assert "available" in log, log  # each node reported the broker state


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stomp_client(http: aiohttp.ClientSession, base: str, transport: str) -> StompClient:
    client = StompClient(await PIPES[transport].open(http, base))
    await client.connect("1.2")
    return client


async def test_two_processes_chat_through_rabbitmq(server_processes: list[int], http: aiohttp.ClientSession) -> None:
    room = f"/topic/{unique('room')}"
    clients = []
    try:
        for port, transport in zip(server_processes, ("websocket", "xhr-streaming")):
            client = await stomp_client(http, f"http://127.0.0.1:{port}/stomp", transport)
            await client.subscribe(room, "r")
            clients.append(client)
        await clients[0].send(room, "from process 1", receipt="a")
        for client in clients:
            assert (await client.expect("MESSAGE")).text == "from process 1"
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
def load_balancer(server_processes: list[int]) -> Iterator[tuple[int, list[int]]]:
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if haproxy is None:
        pytest.fail("haproxy is not installed: run .ci/install-rabbitmq (installs it)", pytrace=False)
    port = free_port()
    env = dict(
        os.environ,
        LB_BIND=f"127.0.0.1:{port}",
        NODE1=f"127.0.0.1:{server_processes[0]}",
        NODE2=f"127.0.0.1:{server_processes[1]}",
    )
    check = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    process = subprocess.Popen([haproxy, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, process, "haproxy")
        yield port, server_processes
    finally:
        stop(process)


async def test_sessions_behind_haproxy(load_balancer: tuple[int, list[int]], http: aiohttp.ClientSession) -> None:
    lb_port, node_ports = load_balancer
    room = f"/topic/{unique('lb')}"
    clients: list[StompClient] = []
    try:
        # Observers connected to each node directly: whichever node a balanced
        # session lands on, its messages reach both.
        observers = []
        for port in node_ports:
            observer = await stomp_client(http, f"http://127.0.0.1:{port}/stomp", "websocket")
            await observer.subscribe(room, "o")
            observers.append(observer)
        clients += observers
        # Polling and streaming sessions through the balancer: each one's
        # requests must stick to one node or its xhr_send would be refused.
        balanced = []
        for i in range(12):
            transport = ("xhr-polling", "xhr-streaming", "websocket")[i % 3]
            client = await stomp_client(http, f"http://127.0.0.1:{lb_port}/stomp", transport)
            await client.subscribe(room, f"b{i}")
            balanced.append(client)
        clients += balanced
        for i, client in enumerate(balanced):
            await client.send(room, f"m{i}", receipt=f"s{i}")
        expected = sorted(f"m{i}" for i in range(12))
        for client in observers + balanced:
            got = sorted([(await client.expect("MESSAGE")).text for _ in range(12)])
            assert got == expected
    finally:
        for client in clients:
            await client.close()
        await asyncio.sleep(0)
