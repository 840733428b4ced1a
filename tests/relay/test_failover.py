"""Several broker addresses: one goes away, the relay carries on through the next.

Two TCP proxies stand for two nodes of a RabbitMQ cluster (both in front of
the one RabbitMQ). Publishers keep sending with receipts while the first
proxy dies: every SEND gets its RECEIPT (never an ERROR, never silence),
every receipted message is in RabbitMQ afterwards, and the clients that held
subscriptions keep them: the relay makes them again through the second
address.
"""

from __future__ import annotations

import asyncio
import subprocess

import aiohttp
import pytest
from broker_tools import reconnect, until
from conftest import QUEUE_ARGS, RABBIT_HOST, RABBIT_PORT, MakeNode, Node, fast_relay, unique
from stomp_testing import StompClient
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


class Publisher:
    """Sends ``<name>-<n>`` with a receipt each until stopped; reconnects after an ERROR."""

    def __init__(self, node: Node, name: str, destination: str, headers: dict[str, str]) -> None:
        self.node, self.name, self.destination, self.headers = node, name, destination, headers
        self.confirmed: list[str] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        client = await reconnect(self.node)
        n = 0
        while not self.stop.is_set():
            body = f"{self.name}-{n}"
            n += 1
            headers = {"destination": self.destination, "receipt": body, **self.headers}
            try:
                await client.send_frame("SEND", headers, body)
            except (ConnectionError, aiohttp.ClientError):
                pass  # closed after the last RECEIPT: its ERROR is read below
            frame = await client.next()
            assert frame is not None, f"{body}: connection closed without RECEIPT or ERROR"
            if frame.command == "RECEIPT":
                assert frame["receipt-id"] == body
                self.confirmed.append(body)
                continue
            assert frame.command == "ERROR", frame
            self.errors.append(frame["message"])
            await client.wait_closed()
            await client.close()
            client = await reconnect(self.node)
        await client.disconnect()


async def drain(client: StompClient, marker: str) -> set[str]:
    """Bodies received up to ``marker`` (sent after everything else)."""
    bodies: set[str] = set()
    while True:
        frame = await client.expect("MESSAGE")
        if frame.text == marker:
            return bodies
        bodies.add(frame.text)


async def test_failover_to_the_next_address(make_node: MakeNode) -> None:
    first, second = TcpProxy(RABBIT_HOST, RABBIT_PORT), TcpProxy(RABBIT_HOST, RABBIT_PORT)
    await first.listen()
    await second.listen()
    relay = fast_relay(addresses=[("127.0.0.1", first.port), ("127.0.0.1", second.port)])
    node = await make_node(relay)
    queue = f"/queue/{unique('failover')}"
    topic = f"/topic/{unique('failover')}"
    # Topic messages are kept in a queue of their own while nobody listens.
    kept = unique("failover-kept")
    durable = {"durable": "true", "auto-delete": "false", "x-queue-name": kept}
    try:
        assert relay.address == f"127.0.0.1:{first.port}"
        watcher = await node.connected()  # a shared subscription
        await watcher.subscribe(topic, "t")
        keeper = await node.connected()  # a subscription on its own connection
        # Unacknowledged: what they were given goes back to the queues when their connections die.
        await keeper.subscribe(topic, "k", "client-individual", **durable)
        consumer = await node.connected()
        await consumer.subscribe(queue, "q", "client-individual", **QUEUE_ARGS)
        publishers = [Publisher(node, f"topic{n}", topic, {}) for n in range(3)]
        publishers += [Publisher(node, f"queue{n}", queue, QUEUE_ARGS) for n in range(2)]
        tasks = [asyncio.create_task(p.run()) for p in publishers]
        await until(lambda: all(len(p.confirmed) >= 5 for p in publishers))

        await first.stop()
        await until(lambda: relay.available and relay.address == f"127.0.0.1:{second.port}")
        before = {p.name: len(p.confirmed) for p in publishers}
        try:
            await until(lambda: all(len(p.confirmed) >= before[p.name] + 5 for p in publishers))
        except AssertionError:
            raise AssertionError(f"publishers stuck: {[(p.name, before[p.name], len(p.confirmed), p.errors, t) for p, t in zip(publishers, tasks)]}, {relay.stats()}") from None
        for p in publishers:
            p.stop.set()
        await asyncio.gather(*tasks)
        assert relay.stats()["failovers"] >= 1 and relay.stats()["failovers_kept"] == 1
        assert not [m for p in publishers for m in p.errors]
        # The holders kept their sessions: nothing but MESSAGE frames, and the watcher hears new ones.
        await watcher.send(topic, "still", receipt="still")
        while (frame := await watcher.expect("MESSAGE")).text != "still":
            pass
        for holder in (keeper, consumer):
            await holder.disconnect()  # what they hold unacknowledged goes back to the queues

        # Nothing receipted is missing: the queue and the kept topic messages, read up to a marker.
        reader = await reconnect(node)
        await reader.subscribe(queue, "q", **QUEUE_ARGS)
        await reader.subscribe(topic, "k", **durable)
        await reader.send(queue, "end", receipt="end-q", **QUEUE_ARGS)
        await reader.send(topic, "end", receipt="end-t")
        got: set[str] = set()
        for _ in range(2):
            got |= await drain(reader, "end")
        confirmed = {body for p in publishers for body in p.confirmed}
        assert confirmed <= got, sorted(confirmed - got)
        # Clients subscribe again through the second address.
        again = await reconnect(node)
        await again.subscribe(topic, "t")
        await again.send(topic, "after", receipt="after")
        assert (await again.expect("MESSAGE")).text == "after"
    finally:
        await node.stomp.close()
        await relay.close()
        await first.stop()
        await second.stop()
        subprocess.run(["rabbitmqctl", "delete_queue", kept], capture_output=True, timeout=60)
