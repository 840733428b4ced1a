"""The Broker interface as a relay will use it: late confirmations and lost state."""

from __future__ import annotations

import asyncio

from stomp_testing import harness  # noqa: F401

from sockjs_server.stomp import BrokerError, MemoryBroker, StompServer


class SlowUpstream(MemoryBroker):
    """Confirms SUBSCRIBE only when the test says so, like a relay waiting for RabbitMQ's RECEIPT."""

    def __init__(self) -> None:
        super().__init__()
        self.confirm = asyncio.Event()
        self.clients = []

    async def subscribe(self, client, subscription, destination, ack, headers):
        self.clients.append(client)
        await self.confirm.wait()
        await super().subscribe(client, subscription, destination, ack, headers)


async def test_receipt_waits_for_the_broker(harness):
    broker = SlowUpstream()
    h = await harness("tcp", stomp=StompServer(broker))
    c = await h.connected()
    await c.send_frame("SUBSCRIBE", {"id": "s", "destination": "/topic/a", "receipt": "r"})
    await c.no_frame(0.1)  # nothing until the upstream confirmed
    broker.confirm.set()
    await c.receipt("r")


async def test_broker_lost_state_ends_the_client(harness):
    broker = SlowUpstream()
    broker.confirm.set()
    h = await harness("tcp", stomp=StompServer(broker))
    c = await h.connected()
    other = await h.connected()
    await c.subscribe("/topic/a", "s")
    await other.subscribe("/topic/a", "s")
    broker.clients[0].broker_lost(BrokerError("Upstream connection lost", "subscriptions must be made again"))
    error = await c.expect_error("Upstream connection lost")
    assert error.text == "subscriptions must be made again"
    await other.send("/topic/a", "others carry on", receipt="r")
    assert (await other.expect("MESSAGE")).text == "others carry on"
