"""Isolation of clients on the shared publisher, and TLS to RabbitMQ (the real broker)."""

from __future__ import annotations

import asyncio
import ssl

from conftest import MakeNode, fast_relay, unique
from tls_listener import tls_listener

from sockjs_server.stomp.relay import RabbitRelay, RelayState


async def test_a_refused_frame_never_affects_other_clients(make_node: MakeNode) -> None:
    node = await make_node()
    topic = f"/topic/{unique('iso')}"
    counter = await node.connected()
    await counter.subscribe(topic, "count")
    senders = [await node.connected() for _ in range(5)]
    rounds = 20

    async def offend() -> None:
        for _ in range(3):
            bad = await node.connected()
            await bad.send(topic, "bad", expiration="abc")
            error = await bad.expect("ERROR")
            assert "expiration" in error.text
            await bad.wait_closed()

    async def publish(n: int, client: object) -> None:
        for i in range(rounds):
            await client.send(topic, f"{n}-{i}", receipt=f"r{n}-{i}")  # type: ignore[attr-defined]

    await asyncio.gather(offend(), *(publish(n, c) for n, c in enumerate(senders)))
    bodies = [(await counter.expect("MESSAGE")).text for _ in range(5 * rounds)]
    assert sorted(bodies) == sorted(f"{n}-{i}" for n in range(5) for i in range(rounds))
    stats = node.relay.stats()
    assert stats["refused"] >= 3 and stats["connections_publisher"] == 1


async def test_tls_to_rabbitmq_and_a_wrong_ca() -> None:
    with tls_listener() as listener:
        good = ssl.create_default_context(cafile=str(listener.ca))
        relay = RabbitRelay("127.0.0.1", listener.port, ssl=good, reconnect_delay=0.2, max_reconnect_delay=0.5)
        try:
            await relay.start()
            assert relay.state is RelayState.AVAILABLE
            assert relay.stats()["tls"] == 1
        finally:
            await relay.close()
        wrong = ssl.create_default_context(cafile=str(listener.other_ca))
        relay = RabbitRelay("127.0.0.1", listener.port, ssl=wrong, reconnect_delay=0.2, max_reconnect_delay=0.5)
        try:
            await relay.start()
            assert relay.state is RelayState.UNAVAILABLE
            assert relay.last_error is not None and "not trusted" in relay.last_error.detail
        finally:
            await relay.close()


def test_fast_relay_still_builds() -> None:
    assert fast_relay().address == "127.0.0.1:61613"


async def test_stomps_url_verifies_certificates() -> None:
    from sockjs_server.stomp.relay import relay_from_url

    relay = relay_from_url("stomps://guest:guest@localhost/")
    assert relay.port == 61614 and relay.ssl is not None and relay.ssl.verify_mode is ssl.CERT_REQUIRED
    assert relay_from_url("stomp://localhost/").ssl is None
