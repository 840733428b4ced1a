"""Failover that keeps sessions: lost RabbitMQ connections are restored, clients only pause.

A TCP proxy between the relay and RabbitMQ cuts single relay connections
(the shared subscriber, the shared publisher, a client's own) or mutes
RabbitMQ's answers on one; one test restarts the whole RabbitMQ application.
Clients publish with receipts and subscribers count while that happens: no
client is disconnected, none gets ERROR, every receipted message arrives
exactly once (per subscription) and in its publisher's order.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
from broker_tools import rabbitmqctl, until
from conftest import QUEUE_ARGS, RABBIT_HOST, RABBIT_PORT, MakeNode, Node, fast_relay, unique
from stomp_testing import StompClient
from tcp_proxy import TcpProxy

from sockjs_server.stomp.relay import RabbitRelay

pytestmark = pytest.mark.rabbitmq

#: How long a client may wait through a failover in these tests (a hang guard).
PAUSE = 60.0


class Publisher:
    """Sends ``<name>-<n>`` in bursts of ``burst`` pipelined SENDs, each with a receipt, until stopped.

    Any ERROR or a closed connection fails the test: a failover is only a pause.
    """

    def __init__(self, client: StompClient, name: str, destination: str, burst: int = 8, **headers: str) -> None:
        self.client, self.name, self.destination, self.burst, self.headers = client, name, destination, burst, headers
        self.confirmed: list[str] = []
        self.stop = asyncio.Event()
        self.sent = 0

    async def run(self) -> None:
        while not self.stop.is_set():
            bodies = [f"{self.name}-{self.sent + i}" for i in range(self.burst)]
            self.sent += self.burst
            for body in bodies:
                await self.client.send_frame("SEND", {"destination": self.destination, "receipt": body, **self.headers}, body)
            for body in bodies:
                frame = await self.client.next(PAUSE)
                assert frame is not None, f"{self.name}: disconnected while waiting for {body}"
                assert frame.command == "RECEIPT", f"{self.name}: {frame.command} {frame.headers} {frame.text}"
                assert frame["receipt-id"] == body
                self.confirmed.append(body)


class Counter:
    """Reads MESSAGE frames of one subscription in the background, acknowledging them if asked."""

    def __init__(self, client: StompClient, ack: bool = False) -> None:
        self.client, self.ack = client, ack
        self.bodies: list[str] = []
        self.redelivered: list[str] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.client.next(3600)
            assert frame is not None, "subscriber disconnected"
            assert frame.command == "MESSAGE", f"subscriber got {frame.command} {frame.headers} {frame.text}"
            assert "x-sockjs-relay-id" not in frame.headers, frame.headers
            (self.redelivered if frame.get("redelivered") == "true" else self.bodies).append(frame.text)
            if self.ack:
                await self.client.send_frame("ACK", {"id": frame["ack"]})

    def check(self) -> None:
        if self.task.done():
            self.task.result()  # raises what the reader saw

    async def got(self, bodies: set[str]) -> None:
        """Wait until every body in ``bodies`` arrived (hang-guarded)."""
        await until(lambda: self.check() or bodies <= set(self.bodies) | set(self.redelivered), PAUSE)

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def assert_exactly_once_in_order(counter: Counter, publishers: list[Publisher], *, redelivery: bool = False) -> None:
    """Each confirmed body once (``redelivery``: plus copies marked redelivered), each publisher's in order."""
    counter.check()
    seen = counter.bodies
    assert len(seen) == len(set(seen)), sorted(b for b in set(seen) if seen.count(b) > 1)[:20]
    if not redelivery:
        assert not counter.redelivered, counter.redelivered[:20]
    got = set(seen) | set(counter.redelivered)
    for p in publishers:
        missing = [b for b in p.confirmed if b not in got]
        assert not missing, (p.name, missing[:20])
        mine = [int(b.rpartition("-")[2]) for b in seen if b.rpartition("-")[0] == p.name]
        assert mine == sorted(mine), (p.name, mine)


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(RABBIT_HOST, RABBIT_PORT)
    await proxy.listen()
    yield proxy
    await proxy.stop()


async def proxied_node(make_node: MakeNode, proxy: TcpProxy, **options: object) -> Node:
    return await make_node(fast_relay(port=proxy.port, **options))


def subscriber_port(relay: RabbitRelay) -> int | None:
    assert relay._subscriber is not None
    return relay._subscriber.local_port


def publisher_port(relay: RabbitRelay) -> int | None:
    assert relay._publisher is not None
    return relay._publisher.local_port


def own_ports(relay: RabbitRelay) -> list[int | None]:
    return [c.own.local_port for c in relay._clients.values() if c.own is not None and c.own.connected]


async def publish_through(publishers: list[Publisher], cuts: list[object], proxy: TcpProxy, relay: RabbitRelay) -> None:
    """Run the publishers; at each step cut what ``cuts`` names, once they have confirmed more; then stop them."""
    tasks = [asyncio.create_task(p.run()) for p in publishers]
    try:
        for cut in cuts:
            before = [len(p.confirmed) for p in publishers]
            await until(lambda: all(len(p.confirmed) >= n + 16 for p, n in zip(publishers, before)) or any(t.done() for t in tasks), PAUSE)
            for t in tasks:
                if t.done():
                    t.result()
            if cut == "subscriber":
                proxy.cut(subscriber_port(relay))
            elif cut == "publisher":
                proxy.cut(publisher_port(relay))
            elif cut == "own":
                for port in own_ports(relay):
                    proxy.cut(port)
            else:
                assert cut == "all"
                proxy.cut_all()
        before = [len(p.confirmed) for p in publishers]
        await until(lambda: all(len(p.confirmed) >= n + 16 for p, n in zip(publishers, before)) or any(t.done() for t in tasks), PAUSE)
    finally:
        for p in publishers:
            p.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), PAUSE)


async def test_cut_connections_while_publishing(make_node: MakeNode, proxy: TcpProxy) -> None:
    """Publisher, own and subscriber connections cut in turn: nobody notices but a pause."""
    node = await proxied_node(make_node, proxy)
    relay = node.relay
    topic = f"/topic/{unique('keep')}"
    queue = f"/queue/{unique('keep')}"
    ws_sub = await node.connected("websocket")
    await ws_sub.subscribe(topic, "t")  # shared subscription
    tcp_sub = await node.connected("tcp")
    await tcp_sub.subscribe(queue, "q", "client-individual", **QUEUE_ARGS)  # its own connection, client acks
    topic_counter, queue_counter = Counter(ws_sub), Counter(tcp_sub, ack=True)
    publishers = [
        Publisher(await node.connected("websocket"), "ws", topic),
        Publisher(await node.connected("tcp"), "tcp", topic),
        # Queue declarations are SENDs with headers RabbitMQ interprets: the sender's own connection.
        Publisher(await node.connected("tcp"), "q-tcp", queue, **QUEUE_ARGS),
        Publisher(await node.connected("websocket"), "q-ws", queue, **QUEUE_ARGS),
    ]
    try:
        await publish_through(publishers, ["publisher", "own", "publisher", "own"], proxy, relay)
        await topic_counter.got({b for p in publishers[:2] for b in p.confirmed})
        await queue_counter.got({b for p in publishers[2:] for b in p.confirmed})
        # The subscriber connection too: the shared subscription is made again
        # (what was published while it did not exist is not for it).
        proxy.cut(subscriber_port(relay))
        await until(lambda: relay.stats()["failovers_kept"] >= 1 and relay.available, PAUSE)
        marker = await node.connected("tcp")
        await marker.send(topic, "after", receipt="after")
        await until(lambda: topic_counter.check() or "after" in topic_counter.bodies, PAUSE)
        assert_exactly_once_in_order(topic_counter, publishers[:2])
        # Client acks: a message whose ACK was lost with the connection comes again, marked.
        assert_exactly_once_in_order(queue_counter, publishers[2:], redelivery=True)
        stats = relay.stats()
        assert stats["replayed"] >= 1 and stats["clients_restored"] >= 1, stats
        assert stats["sessions_lost"] == 0 and stats["clients"] == 7, stats
    finally:
        await topic_counter.close()
        await queue_counter.close()


async def test_sent_again_messages_are_not_delivered_twice(make_node: MakeNode, proxy: TcpProxy) -> None:
    """SENDs RabbitMQ took but never confirmed (its answers muted) are sent again and dropped on delivery."""
    node = await proxied_node(make_node, proxy)
    relay = node.relay
    topic = f"/topic/{unique('dup')}"
    subscribers = [await node.connected(t) for t in ("websocket", "tcp")]
    for s in subscribers:
        await s.subscribe(topic, "t")
    sender = await node.connected("websocket")
    await sender.send(topic, "known", receipt="known")  # the key is known: next SENDs take the shared publisher
    for s in subscribers:
        assert (await s.expect("MESSAGE")).text == "known"
    link = proxy.link(publisher_port(relay))
    link.muted = True  # RabbitMQ gets the SENDs, the relay never hears RabbitMQ's RECEIPT
    for n in range(5):  # pipelined: a receipt on the last one only
        await sender.send_frame("SEND", {"destination": topic, **({"receipt": "m4"} if n == 4 else {})}, f"m{n}")
    for s in subscribers:
        assert [(await s.expect("MESSAGE")).text for _ in range(5)] == [f"m{n}" for n in range(5)]
    link.cut()  # unconfirmed: sent again on a new connection
    assert (await sender.expect("RECEIPT", PAUSE))["receipt-id"] == "m4"
    await sender.send(topic, "end", receipt="end")
    for s in subscribers:
        assert (await s.expect("MESSAGE")).text == "end"  # the copies were dropped
    stats = relay.stats()
    assert (stats["duplicates_dropped"], stats["replayed"]) == (5, 5), stats  # one shared subscription


async def test_transaction_across_a_failover(make_node: MakeNode, proxy: TcpProxy) -> None:
    """A transaction is held by the server until COMMIT: a failover in between loses nothing of it."""
    node = await proxied_node(make_node, proxy)
    topic = f"/topic/{unique('tx')}"
    listener = await node.connected("tcp")
    await listener.subscribe(topic, "t")
    client = await node.connected("websocket")
    await client.send_frame("BEGIN", {"transaction": "tx1"})
    for n in range(3):
        await client.send_frame("SEND", {"destination": topic, "transaction": "tx1"}, f"tx-{n}")
    await client.send(topic, "outside", receipt="outside")
    assert (await listener.expect("MESSAGE")).text == "outside"
    proxy.cut_all()
    await client.send_frame("COMMIT", {"transaction": "tx1", "receipt": "commit"})
    assert (await client.expect("RECEIPT", PAUSE))["receipt-id"] == "commit"
    assert [(await listener.expect("MESSAGE", PAUSE)).text for _ in range(3)] == ["tx-0", "tx-1", "tx-2"]
    await listener.no_frame(0.2)


async def test_client_acks_after_a_failover(make_node: MakeNode, proxy: TcpProxy) -> None:
    """Unacknowledged messages come again, marked redelivered; an ACK of an old one gets a clear answer."""
    node = await proxied_node(make_node, proxy)
    queue = f"/queue/{unique('acks')}"
    consumer = await node.connected("websocket")
    await consumer.subscribe(queue, "q", "client-individual", **QUEUE_ARGS)
    producer = await node.connected("tcp")
    for n in range(3):
        await producer.send(queue, f"a{n}", receipt=f"a{n}", **QUEUE_ARGS)
    first = [await consumer.expect("MESSAGE") for _ in range(3)]
    assert [f.text for f in first] == ["a0", "a1", "a2"]
    own = [c.own for c in node.relay._clients.values() if c.own is not None and c.own_subs]
    assert len(own) == 1
    proxy.cut(own[0].local_port)
    again = [await consumer.expect("MESSAGE", PAUSE) for _ in range(3)]
    assert sorted(f.text for f in again) == ["a0", "a1", "a2"]
    assert all(f["redelivered"] == "true" for f in again)
    # An ack id of the lost connection: that delivery no longer exists, the ACK is done.
    await consumer.send_frame("ACK", {"id": first[0]["ack"], "receipt": "old"})
    assert (await consumer.expect("RECEIPT"))["receipt-id"] == "old"
    for f in again:
        await consumer.send_frame("ACK", {"id": f["ack"], "receipt": f"ack-{f.text}"})
        assert (await consumer.expect("RECEIPT"))["receipt-id"] == f"ack-{f.text}"
    await producer.send(queue, "a3", receipt="a3", **QUEUE_ARGS)
    assert (await consumer.expect("MESSAGE")).text == "a3"
    assert node.relay.stats()["stale_acks"] == 1


async def test_what_cannot_be_restored_ends_that_client_only(make_node: MakeNode, proxy: TcpProxy) -> None:
    """A client whose temporary queue vanished gets ERROR; the others on the node go on."""
    node = await proxied_node(make_node, proxy)
    topic = f"/topic/{unique('temp')}"
    asker = await node.connected("tcp")
    await asker.send(topic, "question", receipt="q", **{"reply-to": "/temp-queue/answers"})
    bystander = await node.connected("websocket")
    await bystander.subscribe(topic, "t")
    state = next(c for c in node.relay._clients.values() if c.temp_subs)
    assert state.own is not None
    proxy.cut(state.own.local_port)
    error = await asker.expect_error("Broker connection lost")
    assert "/temp-queue/" in error.text
    await bystander.send(topic, "still here", receipt="s")
    assert (await bystander.expect("MESSAGE")).text == "still here"
    assert node.relay.stats()["sessions_lost"] == 1


async def test_a_broker_away_longer_than_failover_timeout(make_node: MakeNode, proxy: TcpProxy) -> None:
    """Past failover_timeout the waiting clients get ERROR Broker not available, never a RECEIPT."""
    node = await proxied_node(make_node, proxy, failover_timeout=1.0)
    topic = f"/topic/{unique('away')}"
    holder = await node.connected("websocket")
    await holder.subscribe(topic, "t")
    sender = await node.connected("tcp")
    await proxy.stop()  # gone, and nothing listens
    await until(lambda: not node.relay.available)
    await sender.send_frame("SEND", {"destination": topic, "receipt": "late"}, "late")
    for client in (sender, holder):
        error = await client.expect_error("Broker not available")
        assert "did not come back within 1 s" in error.text
    assert node.relay.stats()["sessions_lost"] >= 1


async def test_rabbitmq_restart_keeps_sessions(make_node: MakeNode, restartable_rabbitmq: None) -> None:
    """The whole RabbitMQ restarts while clients publish: a pause, then everything receipted is there."""
    node = await make_node(fast_relay())
    relay = node.relay
    topic = f"/topic/{unique('restart')}"
    kept = unique("restart-kept")
    # A durable subscription keeps what is published meanwhile, persistent messages survive the restart.
    durable = {"durable": "true", "auto-delete": "false", "x-queue-name": kept}
    keeper = await node.connected("tcp")
    await keeper.subscribe(topic, "k", "client-individual", **durable)
    watcher = await node.connected("websocket")
    await watcher.subscribe(topic, "w")
    keep_counter, watch_counter = Counter(keeper, ack=True), Counter(watcher)
    publishers = [
        Publisher(await node.connected("websocket"), "ws", topic, persistent="true"),
        Publisher(await node.connected("tcp"), "tcp", topic, persistent="true"),
    ]
    tasks = [asyncio.create_task(p.run()) for p in publishers]
    try:
        await until(lambda: all(len(p.confirmed) >= 16 for p in publishers), PAUSE)
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        await until(lambda: not relay.available, PAUSE)
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await until(lambda: relay.stats()["failovers_kept"] >= 1, PAUSE)
        before = [len(p.confirmed) for p in publishers]
        await until(lambda: all(len(p.confirmed) >= n + 16 for p, n in zip(publishers, before)), PAUSE)
    finally:
        for p in publishers:
            p.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), PAUSE)
    try:
        for t in tasks:
            t.result()
        await keep_counter.got({b for p in publishers for b in p.confirmed})
        assert_exactly_once_in_order(keep_counter, publishers, redelivery=True)
        # The plain subscription: nothing twice, in order; what RabbitMQ held for it when it stopped is gone.
        watch_counter.check()
        assert len(watch_counter.bodies) == len(set(watch_counter.bodies))
        stats = relay.stats()
        assert stats["sessions_lost"] == 0 and stats["clients_restored"] >= 1, stats
    finally:
        await keep_counter.close()
        await watch_counter.close()
        subprocess.run(["rabbitmqctl", "delete_queue", kept], capture_output=True, timeout=60)
