"""The broker goes away and comes back: clients learn it, nothing is silently dropped.

The restart test stops and starts the real RabbitMQ application
(``rabbitmqctl stop_app`` / ``start_app``) and always leaves it running with
the STOMP plugin enabled. The other tests put a TCP proxy between the relay
and RabbitMQ to play a broker that is not there yet, or that hangs.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from broker_tools import rabbitmqctl, until
from conftest import RABBIT_HOST, RABBIT_PORT, MakeNode, fast_relay, unique
from stomp_testing import StompClient
from tcp_proxy import TcpProxy

from sockjs_server.stomp.relay import RabbitRelay, RelayState
from sockjs_server.stomp.relay.rabbit import backoff

pytestmark = pytest.mark.rabbitmq


async def chat_round_trip(client: StompClient, tag: str) -> None:
    topic = f"/topic/{unique(tag)}"
    await client.subscribe(topic, tag)
    await client.send(topic, tag, receipt=f"r-{tag}")
    assert (await client.expect("MESSAGE")).text == tag


async def test_broker_restart_mid_session_without_failover(make_node: MakeNode, restartable_rabbitmq: None) -> None:
    """With ``failover_timeout=0`` sessions holding broker state end at once (failover keeping them:
    test_failover_sessions.py)."""
    node = await make_node(fast_relay(failover_timeout=0))
    relay = node.relay
    states: list[RelayState] = []
    relay.on_state_change = states.append
    topic = f"/topic/{unique('restart')}"
    holders = []
    for transport in ("websocket", "xhr-streaming"):
        client = await node.connected(transport)
        await client.subscribe(topic, "s")
        holders.append(client)
    idle = await node.connected("websocket")  # no state in the broker

    await asyncio.to_thread(rabbitmqctl, "stop_app")
    # Sessions whose subscriptions died get ERROR and are closed: they reconnect.
    for client in holders:
        error = await client.expect("ERROR")
        assert error["message"] == "Broker connection lost"
        await client.wait_closed()
    await until(lambda: relay.state is RelayState.UNAVAILABLE)
    # While the broker is down: SEND gets ERROR, never a RECEIPT.
    await idle.send_frame("SEND", {"destination": topic, "receipt": "lost"}, "not accepted")
    error = await idle.expect("ERROR")
    assert error["message"] == "Broker not available"
    assert error.get("receipt-id") is None  # as RabbitMQ: ERROR frames carry no receipt-id
    await idle.wait_closed()
    # New sessions are refused until it is back.
    late = await node.client("websocket")
    await late.send_frame("CONNECT", {"accept-version": "1.2", "host": "/"})
    assert (await late.expect_error())["message"] == "Broker not available"

    await asyncio.to_thread(rabbitmqctl, "start_app")
    await until(lambda: relay.available)
    assert relay.reconnects >= 1
    assert states[-2:] == [RelayState.UNAVAILABLE, RelayState.AVAILABLE]
    fresh = await node.connected("xhr-streaming")
    await chat_round_trip(fresh, "after-restart")
    # Nothing that was refused got through.
    listener = await node.connected("websocket")
    await listener.subscribe(topic, "s")
    await fresh.send(topic, "new", receipt="n")
    assert (await listener.expect("MESSAGE")).text == "new"


async def test_broker_unreachable_at_startup(make_node: MakeNode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sockjs_server.stomp.relay")
    proxy = TcpProxy(RABBIT_HOST, RABBIT_PORT)  # its port: nothing listening yet
    relay = fast_relay(port=proxy.port)
    node = await make_node(relay)  # starts the relay: one attempt, refused
    assert relay.state is RelayState.UNAVAILABLE
    assert any("unavailable" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    client = await node.client("websocket")
    await client.send_frame("CONNECT", {"accept-version": "1.2", "host": "/"})
    error = await client.expect_error("Broker not available")
    assert f"127.0.0.1:{proxy.port}" in error.text

    await proxy.listen()  # the broker arrives
    try:
        await until(lambda: relay.available)
        client = await node.connected("xhr-streaming")
        await chat_round_trip(client, "arrived")
    finally:
        await node.stomp.close()
        await relay.close()
        await proxy.stop()


async def test_relay_started_lazily_by_the_first_client(make_node: MakeNode) -> None:
    relay = fast_relay()
    node = await make_node(relay, start=False)
    assert relay.state is RelayState.STOPPED
    client = await node.connected()
    assert relay.state is RelayState.AVAILABLE
    await chat_round_trip(client, "lazy")


async def test_silent_broker_is_detected_by_heartbeats(make_node: MakeNode) -> None:
    proxy = TcpProxy(RABBIT_HOST, RABBIT_PORT)
    await proxy.listen()
    relay = fast_relay(port=proxy.port, heartbeat=0.5, heartbeat_tolerance=2.0)
    node = await make_node(relay)
    try:
        client = await node.connected()
        await chat_round_trip(client, "beat")
        # Idle for a few heart-beat periods: heart-beats keep the connections up.
        await asyncio.sleep(2.5)
        assert relay.available
        proxy.frozen = True  # connections open, nothing goes through
        await until(lambda: not relay.available)
        assert relay.last_error is not None and relay.last_error.message == "Broker heart-beat timeout"
        proxy.frozen = False
        await until(lambda: relay.available)
        # The session was kept, its subscription made again.
        topic = f"/topic/{unique('after-silence')}"
        await client.subscribe(topic, "again")
        await client.send(topic, "still here", receipt="r")
        assert (await client.expect("MESSAGE")).text == "still here"
        assert relay.stats()["failovers_kept"] == 1
    finally:
        await node.stomp.close()
        await relay.close()
        await proxy.stop()


async def test_broker_refusing_the_relay_login_is_reported() -> None:
    relay = RabbitRelay(RABBIT_HOST, RABBIT_PORT, "guest", "wrong", "/", reconnect_delay=0.2, max_reconnect_delay=0.5)
    try:
        await relay.start()
        assert relay.state is RelayState.UNAVAILABLE
        assert relay.last_error is not None and relay.last_error.message == "Bad CONNECT"
    finally:
        await relay.close()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    delays = backoff(1.0, 10.0, jitter=lambda low, high: high)
    assert [next(delays) for _ in range(6)] == [1.2, 2.4, 4.8, 9.6, 12.0, 12.0]
    delays = backoff(1.0, 10.0, jitter=lambda low, high: low)
    assert [next(delays) for _ in range(6)] == [0.8, 1.6, 3.2, 6.4, 8.0, 8.0]


async def test_a_broker_that_never_confirms_gets_no_receipt_through(make_node: MakeNode) -> None:
    proxy = TcpProxy(RABBIT_HOST, RABBIT_PORT)
    await proxy.listen()
    relay = fast_relay(port=proxy.port, heartbeat=0.0, receipt_timeout=1.0, failover_timeout=1.0)
    node = await make_node(relay)
    try:
        client = await node.connected()
        await chat_round_trip(client, "before")
        topic = f"/topic/{unique()}"
        # RabbitMQ accepted this routing key: the next SEND goes on the shared publisher.
        await client.send(topic, "known", receipt="r-known")
        proxy.frozen = True  # RabbitMQ hears nothing, answers nothing
        await client.send_frame("SEND", {"destination": topic, "receipt": "unconfirmed"}, "?")
        # The connection is taken as lost; the SEND waits to be sent again until failover_timeout.
        error = await client.expect("ERROR")
        assert error["message"] == "Broker not available"
        assert "did not come back within 1 s" in error.text
        assert error.get("receipt-id") is None
        await client.wait_closed()
    finally:
        await node.stomp.close()
        await relay.close()
        await proxy.stop()
