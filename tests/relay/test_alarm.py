"""RabbitMQ's resource alarm and topic permissions, against the real broker.

RabbitMQ raises a memory alarm and stops reading from publishers: the relay
stays bounded.
The test lowers RabbitMQ's memory high watermark to almost nothing (the
alarm goes up at once), restores the value it read first in a finally
block, and leaves RabbitMQ running as it found it. The permissions test
works in a throw-away virtual host and user, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import subprocess
import pytest
from broker_tools import rabbitmqctl, until
from conftest import RABBIT_HOST, RABBIT_PORT, MakeNode, fast_relay, unique
from stomp_testing import TIMEOUT

from sockjs_server.stomp.relay import RabbitRelay

pytestmark = pytest.mark.rabbitmq

BOUND = 64 * 1024


def alarms() -> str:
    return rabbitmqctl("eval", "rabbit_alarm:get_alarms().").strip()


def watermark() -> list[str]:
    """RabbitMQ's memory high watermark, as ``set_vm_memory_high_watermark`` arguments."""
    value = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    if value.startswith("{absolute,"):
        return ["absolute", value[len("{absolute,") : -1].strip()]
    return [value]


async def alarm_raised(raised: bool) -> None:
    deadline = asyncio.get_running_loop().time() + 3 * TIMEOUT
    while ("memory" in await asyncio.to_thread(alarms)) is not raised:
        assert asyncio.get_running_loop().time() < deadline, "RabbitMQ's memory alarm did not change"
        await asyncio.sleep(0.1)


async def test_memory_alarm_bounds_the_relay_and_recovers(make_node: MakeNode) -> None:
    relay = fast_relay(max_unconfirmed_bytes=BOUND, receipt_timeout=60.0, heartbeat=0.0)
    node = await make_node(relay)
    topic = f"/topic/{unique('alarm')}"
    listener = await node.connected()
    await listener.subscribe(topic, "s")
    publisher = await node.connected()
    await publisher.send(topic, "before", receipt="before")  # the key is known: shared publisher from now on
    assert (await listener.expect("MESSAGE")).text == "before"

    body = "x" * 4096
    original = await asyncio.to_thread(watermark)
    try:
        await asyncio.to_thread(rabbitmqctl, "set_vm_memory_high_watermark", "0.0000001")
        await alarm_raised(True)
        # RabbitMQ reads no more from publishing connections: SENDs without a receipt are
        # written until the bound, then the sender gets ERROR instead of a growing buffer.
        sent = 0
        frame = None
        while frame is None:
            await publisher.send_frame("SEND", {"destination": topic}, body)
            sent += 1
            assert relay.stats()["unconfirmed_bytes"] <= BOUND
            try:
                frame = await asyncio.wait_for(publisher.next(), 0.01)
            except asyncio.TimeoutError:
                frame = None
            assert sent < 10 * BOUND // len(body), "the relay kept buffering"
        assert frame.command == "ERROR" and frame["message"] == "Broker busy", frame.headers
        assert "alarm" in frame.text
        await publisher.wait_closed()
        assert relay.stats()["refused_by_reason"].get("broker_busy") == 1
        assert relay.available  # the alarm ends no connection
    finally:
        await asyncio.to_thread(rabbitmqctl, "set_vm_memory_high_watermark", *original)
    await alarm_raised(False)
    # Once the alarm clears, what was written is delivered and publishing goes on.
    again = await node.connected()
    await again.send(topic, "after", receipt="after")
    bodies = []
    while not bodies or bodies[-1] != "after":
        bodies.append((await listener.expect("MESSAGE")).text)
    assert set(bodies[:-1]) <= {body}
    await until(lambda: relay.stats()["unconfirmed_bytes"] == 0)


async def test_topic_permissions_refuse_one_client_only(make_node: MakeNode) -> None:
    """RabbitMQ's topic permissions refuse a routing key: its sender alone gets the ERROR."""
    name = unique("relay-perm")
    vhost, user, password = name, name, unique("pw")
    steps = [
        ("add_vhost", vhost),
        ("add_user", user, password),
        ("set_permissions", "-p", vhost, user, ".*", ".*", ".*"),
        ("set_topic_permissions", "-p", vhost, user, "amq.topic", "^allowed-.*", ".*"),
    ]
    try:
        for step in steps:
            await asyncio.to_thread(rabbitmqctl, *step)
        relay = RabbitRelay(
            RABBIT_HOST, RABBIT_PORT, user, password, vhost, reconnect_delay=0.2, max_reconnect_delay=1.0, heartbeat=2.0
        )
        node = await make_node(relay)
        topic = f"/topic/allowed-{unique('perm')}"
        listener = await node.connected()
        await listener.subscribe(topic, "s")
        senders = [await node.connected() for _ in range(3)]

        async def offend() -> None:
            for _ in range(2):
                bad = await node.connected()
                await bad.send_frame("SEND", {"destination": f"/topic/{unique('forbidden')}", "receipt": "no"}, "bad")
                error = await bad.expect("ERROR")
                assert error["message"] == "access_refused", error.headers
                await bad.wait_closed()

        async def publish(n: int) -> None:
            for i in range(10):
                await senders[n].send(topic, f"{n}-{i}", receipt=f"r{n}-{i}")

        await asyncio.gather(offend(), *(publish(n) for n in range(3)))
        bodies = [(await listener.expect("MESSAGE")).text for _ in range(30)]
        assert sorted(bodies) == sorted(f"{n}-{i}" for n in range(3) for i in range(10))
        assert relay.stats()["refused_by_reason"].get("access_refused") == 2
        assert relay.stats()["publisher_failures"] == 0
    finally:
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "delete_user", user], capture_output=True, timeout=60)
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)
