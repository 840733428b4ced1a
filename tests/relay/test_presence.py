"""The cluster-wide user registry: ``sockjs-server demo --relay`` processes on one RabbitMQ.

Each test names a cluster of its own (``?cluster=...`` in the relay URL), so
its nodes see only each other on the shared broker; everything they create in
RabbitMQ is exclusive and goes with their connections.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from conftest import PIPES, RABBIT_HOST, RABBIT_PORT, MakeNode, fast_relay, unique
from stomp_testing import StompClient
from tcp_proxy import free_port
from test_deployment import stop, wait_port

pytestmark = pytest.mark.rabbitmq


def demo_url(cluster: str) -> str:
    return f"stomp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/?cluster={cluster}&registry_heartbeat=1"


@pytest.fixture
def demo_nodes(rabbitmq: None) -> Iterator[Callable[[int], list[tuple[int, subprocess.Popen[bytes]]]]]:
    """``start(n)``: n demo processes of one new cluster; yields (port, process) pairs."""
    processes: list[subprocess.Popen[bytes]] = []
    cluster = unique("presence")

    def start(count: int) -> list[tuple[int, subprocess.Popen[bytes]]]:
        started = []
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "sockjs_server", "demo", "--host", "127.0.0.1", "--port", str(port), "--relay", demo_url(cluster)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            processes.append(process)
            started.append((port, process))
        for port, process in started:
            wait_port(port, process, f"demo on port {port}")
        return started

    try:
        yield start
    finally:
        for process in processes:
            stop(process)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Chatter:
    """One chat user, speaking the demo's destinations by hand."""

    def __init__(self, client: StompClient) -> None:
        self.client = client
        #: Messages received while waiting for another subscription's, by subscription.
        self.backlog: dict[str, list[Any]] = {}

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, port: int, nick: str, transport: str = "websocket") -> Chatter:
        client = StompClient(await PIPES[transport].open(http, f"http://127.0.0.1:{port}/chat"))
        frame = await client.connect("1.2", login=nick, **{"client-key": f"key-{nick}"})
        assert frame.command == "CONNECTED", frame
        chatter = cls(client)
        for destination, sub in (("/user/queue/private", "private"), ("/user/queue/errors", "errors"), ("/presence", "users")):
            await client.subscribe(destination, sub)
        snapshot = await chatter.next_on("users")
        assert snapshot["type"] == "snapshot"
        return chatter

    async def next_on(self, subscription: str) -> Any:
        """The next MESSAGE (JSON) of ``subscription``, keeping the others' for later (bounded by the client's timeout)."""
        waiting = self.backlog.get(subscription)
        if waiting:
            return waiting.pop(0)
        while True:
            frame = await self.client.expect("MESSAGE")
            if frame["subscription"] == subscription:
                return json.loads(frame.body)
            self.backlog.setdefault(frame["subscription"], []).append(json.loads(frame.body))

    async def join(self, room: str) -> Any:
        await self.client.subscribe(f"/topic/room.{room}", "room")
        await self.client.subscribe(f"/app/room.{room}", "join")
        return await self.next_on("join")

    async def presence_until(self, predicate: Callable[[Any], bool]) -> Any:
        while True:
            event = await self.next_on("room")
            if event.get("type") == "presence" and predicate(event):
                return event


async def test_members_private_messages_and_nicknames_across_nodes(demo_nodes: Any, http: aiohttp.ClientSession) -> None:
    (port1, _), (port2, _) = demo_nodes(2)
    ann = await Chatter.connect(http, port1, "ann")
    assert (await ann.join("lobby"))["members"] == ["ann"]
    # bob on the other node, over an HTTP transport pinned to it.
    bob = await Chatter.connect(http, port2, "bob", "xhr-streaming")
    snapshot = await bob.join("lobby")
    assert snapshot["members"] == ["ann", "bob"]
    joined = await ann.presence_until(lambda e: e.get("joined") == "bob")
    assert joined["members"] == ["ann", "bob"]
    assert await ann.next_on("users") == {"type": "joined", "user": "bob"}

    # A nickname in use on node 1 is refused on node 2.
    impostor = StompClient(await PIPES["websocket"].open(http, f"http://127.0.0.1:{port2}/chat"))
    await impostor.send_frame("CONNECT", {"accept-version": "1.2", "login": "ann", "client-key": "someone-else"})
    assert (await impostor.expect("ERROR"))["message"] == "Nickname taken"

    # A private message to a user on the other node is delivered, not refused.
    await bob.client.send("/app/private", json.dumps({"to": "ann", "text": "psst"}))
    private = await ann.next_on("private")
    assert (private["from"], private["to"], private["text"]) == ("bob", "ann", "psst")
    assert (await bob.next_on("private"))["text"] == "psst"

    # The room directory counts both, wherever it is asked.
    for chatter in (ann, bob):
        await chatter.client.subscribe("/app/rooms", "directory")
        assert (await chatter.next_on("directory"))["rooms"] == [{"name": "lobby", "members": 2}]

    # Leaving on node 2 is seen on node 1.
    await bob.client.send("/app/leave", json.dumps({"room": "lobby"}))
    left = await ann.presence_until(lambda e: e.get("left") == "bob")
    assert left["members"] == ["ann"]
    for client in (ann.client, bob.client):
        await client.close()


async def test_a_killed_node_takes_its_users_with_it(demo_nodes: Any, http: aiohttp.ClientSession) -> None:
    (port1, _), (port2, node2) = demo_nodes(2)
    ann = await Chatter.connect(http, port1, "ann")
    await ann.join("lobby")
    bob = await Chatter.connect(http, port2, "bob")
    await bob.join("lobby")
    assert await ann.next_on("users") == {"type": "joined", "user": "bob"}
    await ann.presence_until(lambda e: e.get("joined") == "bob")  # node 1 knows bob is in the room

    node2.send_signal(signal.SIGKILL)
    node2.wait(10)
    # RabbitMQ deletes node 2's queue with its connection and says so: bob is gone at once.
    assert await ann.next_on("users") == {"type": "left", "user": "bob", "reason": "node_lost"}
    away = await ann.presence_until(lambda e: "bob" in e["away"])
    assert away["members"] == ["ann", "bob"]
    # Nothing else changes for ann: still connected, still in her room.
    await ann.client.send("/app/say", json.dumps({"room": "lobby", "text": "still here"}))
    said = await ann.next_on("room")
    assert (said["type"], said["text"]) == ("message", "still here")
    await ann.client.close()


async def test_the_api_is_cluster_wide(make_node: MakeNode) -> None:
    cluster = unique("presence")
    events: list[Any] = []
    nodes = [
        await make_node(fast_relay(cluster=cluster), authenticate=lambda info: info.login, on_presence=events.append)
        for _ in range(2)
    ]
    watchers = []
    for node in nodes:
        watcher = await node.connected("websocket", login="watcher")
        await watcher.subscribe("/presence/topic/news", "p")
        assert json.loads((await watcher.expect("MESSAGE")).body) == {"type": "snapshot", "destination": "/topic/news", "users": []}
        watchers.append(watcher)
    ann = await nodes[0].connected("websocket", login="ann")
    ann2 = await nodes[1].connected("xhr-polling", login="ann")  # a second tab, elsewhere
    bob = await nodes[1].connected("websocket", login="bob")
    for client in (ann, ann2, bob):
        await client.subscribe("/topic/news", "n")
    # Every node sees each user arrive once, the two tabs of ann counted once.
    for watcher in watchers:
        arrivals = [json.loads((await watcher.expect("MESSAGE")).body) for _ in range(2)]
        assert sorted(e["user"] for e in arrivals) == ["ann", "bob"]
        assert all(e["type"] == "joined" and e["destination"] == "/topic/news" for e in arrivals)
    for node in nodes:
        assert await node.stomp.subscribers("/topic/news") == ["ann", "bob"]
        assert sorted(await node.stomp.users()) == ["ann", "bob", "watcher"]
    watcher = watchers[0]
    # One tab of two going is not a departure; the last one is.
    await ann2.disconnect()
    await bob.disconnect()
    event = json.loads((await watcher.expect("MESSAGE")).body)
    assert event == {"type": "left", "user": "bob", "destination": "/topic/news", "reason": "disconnect"}
    await ann.disconnect()
    event = json.loads((await watcher.expect("MESSAGE")).body)
    assert event["user"] == "ann" and event["type"] == "left"
    # Clients may neither send to presence destinations nor reach the registry's keys.
    await watcher.send_frame("SEND", {"destination": "/presence"}, "x")
    assert (await watcher.expect("ERROR"))["message"] == "Unknown destination"
    spy = await nodes[1].connected("websocket", login="spy")
    await spy.send_frame("SUBSCRIBE", {"id": "x", "destination": f"/exchange/amq.direct/sockjs-registry.{cluster}"})
    assert (await spy.expect("ERROR"))["message"] == "Access refused"
    assert any(e.kind == "connected" and e.user == "bob" and not e.local for e in events)
    stats = nodes[0].relay.stats()
    assert stats["registry_connected"] == 1 and stats["registry_watching"] == 1  # the event exchange plugin (CI enables it)


async def test_two_browsers_claiming_one_nickname_at_once_on_two_nodes(demo_nodes: Any, http: aiohttp.ClientSession) -> None:
    """Both may be accepted at first; then every node sees both sessions and the older one keeps the nickname."""
    (port1, _), (port2, _) = demo_nodes(2)
    watcher = await Chatter.connect(http, port1, "watcher")
    clients = [StompClient(await PIPES["websocket"].open(http, f"http://127.0.0.1:{port}/chat")) for port in (port1, port2)]
    for client, key in zip(clients, ("key-1", "key-2")):
        await client.send_frame("CONNECT", {"accept-version": "1.2", "login": "eve", "client-key": key})
    answers = [await client.next() for client in clients]
    assert all(a is not None for a in answers)
    refused = [c for c, a in zip(clients, answers) if a is not None and a.command == "ERROR"]
    accepted = [c for c, a in zip(clients, answers) if a is not None and a.command == "CONNECTED"]
    if len(accepted) == 2:
        # The race: one of the two is told afterwards.
        first = asyncio.ensure_future(accepted[0].expect("ERROR"))
        second = asyncio.ensure_future(accepted[1].expect("ERROR"))
        done, pending = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        (loser_frame,) = [task.result() for task in done]
        assert loser_frame["message"] == "Nickname taken"
        accepted = [c for c, t in zip(accepted, (first, second)) if t not in done]
    else:
        assert len(refused) == 1 and refused[0] is not accepted[0]
    (winner,) = accepted
    await winner.send("/app/ping", "", receipt="still-here")
    # The watcher saw eve once, and she stays.
    assert await watcher.next_on("users") == {"type": "joined", "user": "eve"}
    await winner.close()
