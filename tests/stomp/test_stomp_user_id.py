"""``user-id``: every MESSAGE a client's SEND produces names its authenticated sender,
whatever the destination kind; what server code sends carries none."""

from __future__ import annotations

import os

import pytest
from stomp_testing import StompClient, harness  # noqa: F401

from sockjs_server.stomp import AppHandlers, MemoryBroker, StompServer
from sockjs_server.stomp.relay import RabbitRelay


def _server(**kwargs: object) -> StompServer:
    return StompServer(authenticate=lambda info: info.login or None, **kwargs)  # type: ignore[arg-type]


async def _pair(harness, stomp: StompServer) -> tuple[StompClient, StompClient]:  # noqa: F811
    h = await harness("tcp", stomp=stomp)
    return await h.connected(login="alice"), await h.connected(login="bob")


@pytest.mark.parametrize("destination", ["/topic/news", "/queue/work"])
async def test_broker_destinations(harness, destination):  # noqa: F811
    alice, bob = await _pair(harness, _server(broker=MemoryBroker()))
    await bob.subscribe(destination, "s")
    await alice.send(destination, "hi", receipt="r", user_id="mallory")
    message = await bob.expect("MESSAGE")
    assert message["user-id"] == "alice"
    assert [k for k, _ in message.raw_headers].count("user-id") == 1


async def test_user_destination_of_another_user(harness):  # noqa: F811
    alice, bob = await _pair(harness, _server(broker=MemoryBroker()))
    await bob.subscribe("/user/queue/inbox", "in")
    await alice.send("/user/bob/queue/inbox", "private", receipt="r", user_id="mallory")
    message = await bob.expect("MESSAGE")
    assert (message.text, message["destination"], message["user-id"]) == ("private", "/user/queue/inbox", "alice")
    assert [k for k, _ in message.raw_headers].count("user-id") == 1


async def test_user_destination_of_oneself_and_in_a_transaction(harness):  # noqa: F811
    alice, _bob = await _pair(harness, _server(broker=MemoryBroker()))
    await alice.subscribe("/user/topic/notes", "n")
    await alice.send_frame("BEGIN", {"transaction": "t"})
    await alice.send_frame("SEND", {"destination": "/user/alice/topic/notes", "transaction": "t"}, "to self")
    await alice.send_frame("COMMIT", {"transaction": "t", "receipt": "c"})
    await alice.receipt("c")
    message = await alice.expect("MESSAGE")
    assert (message.text, message["user-id"]) == ("to self", "alice")


async def test_anonymous_sender_has_no_user_id(harness):  # noqa: F811
    h = await harness("tcp", stomp=StompServer(broker=MemoryBroker()))
    anonymous = await h.connected()
    await anonymous.subscribe("/topic/t", "t")
    await anonymous.send("/topic/t", "x", receipt="r", user_id="mallory")
    message = await anonymous.expect("MESSAGE")
    assert "user-id" not in message.headers


async def test_app_handler_results_come_from_the_server(harness):  # noqa: F811
    """A handler's answer (send_to, reply_to, msg.reply, msg.publish) is the server's
    message: it carries no user-id; the handler says whom it speaks for (msg.user)."""
    handlers = AppHandlers()

    @handlers.message("/say", send_to="/topic/said")
    async def say(msg):
        return {"from": msg.user}

    @handlers.message("/ask", reply_to="/queue/answers")
    async def ask(msg):
        await msg.reply("/queue/answers", "first")
        await msg.publish("/topic/said", "published")
        return "second"

    alice, bob = await _pair(harness, _server(broker=MemoryBroker(), handlers=handlers))
    await bob.subscribe("/topic/said", "said")
    await alice.subscribe("/user/queue/answers", "a")
    await alice.send("/app/say", "", receipt="r1")
    message = await bob.expect("MESSAGE")
    assert message.text == '{"from":"alice"}' and "user-id" not in message.headers
    await alice.send("/app/ask", "", receipt="r2")
    answers = [await alice.expect("MESSAGE") for _ in range(2)]
    assert [m.text for m in answers] == ["first", "second"]
    published = await bob.expect("MESSAGE")
    assert published.text == "published"
    assert all("user-id" not in m.headers for m in (*answers, published))


@pytest.mark.rabbitmq
async def test_user_destination_through_the_relay(harness):  # noqa: F811
    relay = RabbitRelay(
        os.environ.get("RABBITMQ_STOMP_HOST", "127.0.0.1"),
        int(os.environ.get("RABBITMQ_STOMP_PORT", "61613")),
        "guest",
        "guest",
        "/",
        heartbeat=0,
        connect_timeout=5,
        receipt_timeout=10,
    )
    await relay.start()
    try:
        alice, bob = await _pair(harness, _server(broker=relay))
        await bob.subscribe("/user/queue/inbox", "in")
        await alice.send("/user/bob/queue/inbox", "private", receipt="r", user_id="mallory")
        message = await bob.expect("MESSAGE")
        assert (message.text, message["destination"], message["user-id"]) == ("private", "/user/queue/inbox", "alice")
        assert [k for k, _ in message.raw_headers].count("user-id") == 1
        assert not any(k.startswith("x-sockjs") for k, _ in message.raw_headers)
    finally:
        await relay.close()  # the harness closes the clients
