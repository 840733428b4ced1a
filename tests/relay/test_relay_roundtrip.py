"""Relay round trips through the real RabbitMQ, over a SockJS websocket and HTTP transports."""

from __future__ import annotations

import asyncio

import pytest
from conftest import QUEUE_ARGS, MakeNode, unique
from stomp_testing import TIMEOUT, ClientFrame, StompClient

from sockjs_server.stomp import Principal
from sockjs_server.stomp.relay import USER_ID_HEADER

pytestmark = pytest.mark.rabbitmq

TRANSPORTS = ("websocket", "xhr-streaming")


async def messages(client: StompClient, n: int) -> list[ClientFrame]:
    out = []
    for _ in range(n):
        out.append(await client.expect("MESSAGE"))
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_topic_fan_out_costs_no_connection_per_client(make_node: MakeNode, transport: str) -> None:
    node = await make_node()
    topic = f"/topic/{unique('chat')}"
    readers = [await node.connected(transport) for _ in range(3)]
    for i, reader in enumerate(readers):
        await reader.subscribe(topic, f"s{i}")
    writer = await node.connected(transport)
    await writer.send(topic, "hello żółć", receipt="r1", content_type="text/plain", x_custom="kept")
    for i, reader in enumerate(readers):
        frame = await reader.expect("MESSAGE")
        assert frame.text == "hello żółć"
        assert frame["destination"] == topic
        assert frame["subscription"] == f"s{i}"
        assert frame["x-custom"] == "kept"
        assert frame["content-type"] == "text/plain"
        assert "@@" in frame["message-id"]  # RabbitMQ's id
        assert frame.get("receipt") == "r1"  # the sender's receipt, as RabbitMQ shows it; never the relay's own
    # Topic chat is multiplexed on the node's two shared connections.
    assert node.relay.connection_count == 2
    assert node.relay.stats()["shared_subscriptions"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_queue_round_robin(make_node: MakeNode, transport: str) -> None:
    node = await make_node()
    queue = f"/queue/{unique()}"
    consumers = [await node.connected(transport) for _ in range(2)]
    for i, consumer in enumerate(consumers):
        await consumer.subscribe(queue, f"q{i}", **QUEUE_ARGS)
    producer = await node.connected(transport)
    for i in range(4):
        await producer.send(queue, f"m{i}", receipt=f"r{i}", **QUEUE_ARGS)
    got = [sorted(f.text for f in await messages(c, 2)) for c in consumers]
    assert sorted(got[0] + got[1]) == ["m0", "m1", "m2", "m3"]
    for consumer in consumers:
        await consumer.no_frame(0.2)
    # Queue subscriptions live in the consumers' own broker connections.
    assert node.relay.connection_count == 2 + 2 + 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_ack_and_nack_redelivery(make_node: MakeNode, transport: str) -> None:
    node = await make_node()
    queue = f"/queue/{unique()}"
    consumer = await node.connected(transport)
    await consumer.subscribe(queue, "q", ack="client-individual", **QUEUE_ARGS)
    producer = await node.connected(transport)
    await producer.send(queue, "work", receipt="s1", **QUEUE_ARGS)

    first = await consumer.expect("MESSAGE")
    assert first.text == "work" and first["redelivered"] == "false"
    ack_id = first["ack"]
    assert ack_id == first["message-id"] and "@@" in ack_id  # RabbitMQ's ack id, passed through
    await consumer.send_frame("NACK", {"id": ack_id, "receipt": "n1"})
    await consumer.receipt("n1")
    again = await consumer.expect("MESSAGE")
    assert again.text == "work" and again["redelivered"] == "true"
    await consumer.send_frame("ACK", {"id": again["ack"], "receipt": "a1"})
    await consumer.receipt("a1")
    await consumer.no_frame(0.3)

    # An ack id no longer held: RabbitMQ's own answer, passed through
    # (it confirms the frame, then closes over the unknown delivery tag).
    await consumer.send_frame("ACK", {"id": ack_id, "receipt": "a2"})
    await consumer.receipt("a2")
    error = await consumer.expect_error("precondition_failed")
    assert "unknown delivery tag" in error.text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unacked_message_goes_to_another_consumer(make_node: MakeNode, transport: str) -> None:
    node = await make_node()
    queue = f"/queue/{unique()}"
    first = await node.connected(transport)
    await first.subscribe(queue, "q", ack="client", **QUEUE_ARGS)
    producer = await node.connected(transport)
    await producer.send(queue, "job", receipt="s", **QUEUE_ARGS)
    assert (await first.expect("MESSAGE")).text == "job"
    second = await node.connected(transport)
    await second.subscribe(queue, "q", ack="client", **QUEUE_ARGS)
    await first.disconnect()
    frame = await second.expect("MESSAGE")
    assert frame.text == "job" and frame["redelivered"] == "true"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_transactions(make_node: MakeNode, transport: str) -> None:
    node = await make_node()
    topic = f"/topic/{unique('tx')}"
    reader = await node.connected(transport)
    await reader.subscribe(topic, "t")
    writer = await node.connected(transport)
    await writer.send_frame("BEGIN", {"transaction": "tx1"})
    # A SEND's receipt in a transaction comes when COMMIT carries it out.
    await writer.send_frame("SEND", {"destination": topic, "transaction": "tx1", "receipt": "s1"}, "in tx")
    await reader.no_frame(0.3)
    await writer.send_frame("COMMIT", {"transaction": "tx1", "receipt": "c1"})
    await writer.receipt("c1")  # as RabbitMQ: the COMMIT's receipt, then the SEND's as it is carried out
    await writer.receipt("s1")
    frame = await reader.expect("MESSAGE")
    assert frame.text == "in tx"
    await writer.send_frame("BEGIN", {"transaction": "tx2"})
    await writer.send(topic, "aborted", transaction="tx2")
    await writer.send_frame("ABORT", {"transaction": "tx2", "receipt": "a2"})
    await writer.receipt("a2")
    await writer.send(topic, "after", receipt="s3")
    assert (await reader.expect("MESSAGE")).text == "after"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_receipt_for_what_rabbitmq_refused(make_node: MakeNode, transport: str) -> None:
    node = await make_node()
    topic = f"/topic/{unique('calm')}"
    bystander = await node.connected(transport)
    await bystander.subscribe(topic, "b")
    client = await node.connected(transport)
    await client.send_frame("SEND", {"destination": f"/exchange/{unique('missing')}/x", "receipt": "r"}, "lost?")
    error = await client.expect("ERROR")
    assert error["message"] == "not_found"
    assert error.get("receipt-id") is None  # RabbitMQ's ERROR frames carry none
    assert "no exchange" in error.text
    await client.wait_closed()
    # The failure stayed in that client's own broker connection.
    writer = await node.connected(transport)
    await writer.send(topic, "still here", receipt="w")
    assert (await bystander.expect("MESSAGE")).text == "still here"


async def test_bad_subscription_is_that_clients_error_only(make_node: MakeNode) -> None:
    node = await make_node()
    topic = f"/topic/{unique('calm')}"
    bystander = await node.connected()
    await bystander.subscribe(topic, "b")
    client = await node.connected()
    await client.send_frame("SUBSCRIBE", {"id": "x", "destination": f"/amq/queue/{unique('missing')}", "receipt": "r"})
    error = await client.expect("ERROR")
    assert error["message"] == "not_found"
    assert error.get("receipt-id") is None  # RabbitMQ's ERROR frames carry none
    await client.wait_closed()
    for bad in ("/foo/bar", "/topic/a/b"):
        other = await node.connected()
        await other.send_frame("SUBSCRIBE", {"id": "x", "destination": bad, "receipt": "r"})
        error = await other.expect("ERROR")
        assert error["message"] in ("Unknown destination", "Invalid destination"), error.headers
        # A bad destination is refused before it reaches RabbitMQ; the client stays connected, as there.
        await other.send(f"/topic/{unique('other')}", "still connected", receipt="ok")
    writer = await node.connected()
    await writer.send(topic, "fine", receipt="w")
    assert (await bystander.expect("MESSAGE")).text == "fine"


async def test_user_id_travels_through_rabbitmq_and_cannot_be_forged(make_node: MakeNode) -> None:
    node = await make_node(authenticate=lambda info: Principal(info.login or "anonymous"))
    topic = f"/topic/{unique('uid')}"
    reader = await node.connected(login="bob")
    await reader.subscribe(topic, "s")
    alice = await node.connected(login="alice")
    await alice.send_frame("SEND", {"destination": topic, USER_ID_HEADER: "mallory", "user-id": "mallory", "receipt": "r"}, "hi")
    await alice.receipt("r")
    frame = await reader.expect("MESSAGE")
    assert frame["user-id"] == "alice"
    assert USER_ID_HEADER not in frame.headers


async def test_temp_queue_request_reply(make_node: MakeNode) -> None:
    node = await make_node()
    queue = f"/queue/{unique()}"
    service = await node.connected()
    await service.subscribe(queue, "requests", **QUEUE_ARGS)
    caller = await node.connected()
    await caller.subscribe("/temp-queue/answers", "answers")
    await caller.send(queue, "question", receipt="q", reply_to="/temp-queue/answers", **QUEUE_ARGS)
    request = await service.expect("MESSAGE")
    reply_to = request["reply-to"]
    assert reply_to.startswith("/reply-queue/")
    await service.send(reply_to, "answer", receipt="a")
    answer = await caller.expect("MESSAGE")
    assert answer.text == "answer"
    assert answer["subscription"] == "answers"


async def test_temp_queue_reply_without_subscribe(make_node: MakeNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """As from RabbitMQ: a reply-to:/temp-queue/x alone makes the replies arrive under subscription "/temp-queue/x"."""
    from sockjs_server.stomp.relay import rabbit

    monkeypatch.setattr(rabbit, "MAX_TEMP_QUEUES", 2)
    node = await make_node()
    queue = f"/queue/{unique()}"
    service = await node.connected()
    await service.subscribe(queue, "requests", **QUEUE_ARGS)
    caller = await node.connected()
    for n in (1, 2):
        await caller.send(queue, f"question {n}", receipt=f"q{n}", reply_to=f"/temp-queue/t{n}", **QUEUE_ARGS)
        request = await service.expect("MESSAGE")
        await service.send(request["reply-to"], f"answer {n}", receipt=f"a{n}")
        answer = await caller.expect("MESSAGE")
        assert (answer.text, answer["subscription"]) == (f"answer {n}", f"/temp-queue/t{n}")
        assert answer["destination"].startswith("/queue/amq.gen-")
    # A third name is refused with an ERROR that keeps the connection; the known ones still work.
    await caller.send_frame("SEND", {"destination": queue, "reply-to": "/temp-queue/t3", "receipt": "q3"}, b"three")
    error = await caller.expect("ERROR")
    assert error["message"] == "Too many temporary queues"
    await caller.send(queue, "again", receipt="q4", reply_to="/temp-queue/t1", **QUEUE_ARGS)
    request = await service.expect("MESSAGE")
    assert request.text == "again"
    # Someone else's connection never sees the replies.
    other = await node.connected()
    await service.send(request["reply-to"], "late answer", receipt="a4")
    assert (await caller.expect("MESSAGE")).text == "late answer"
    await other.no_frame(0.2)


async def test_exchange_and_wildcard_destinations(make_node: MakeNode) -> None:
    node = await make_node()
    room = unique("room")
    reader = await node.connected()
    await reader.subscribe(f"/exchange/amq.topic/{room}.*", "ex")
    await reader.subscribe(f"/topic/{room}.#", "wild")
    writer = await node.connected()
    await writer.send(f"/topic/{room}.a", "one", receipt="r1")
    got = {(f["subscription"], f["destination"], f.text) for f in await messages(reader, 2)}
    assert got == {("ex", f"/topic/{room}.a", "one"), ("wild", f"/topic/{room}.a", "one")}
    await writer.send(f"/exchange/amq.topic/{room}.b.c", "two", receipt="r2")
    frame = await reader.expect("MESSAGE")
    assert (frame["subscription"], frame.text) == ("wild", "two")
    await reader.no_frame(0.2)


async def test_unsubscribe_stops_deliveries(make_node: MakeNode) -> None:
    node = await make_node()
    topic = f"/topic/{unique()}"
    a = await node.connected()
    b = await node.connected()
    await a.subscribe(topic, "s")
    await b.subscribe(topic, "s")
    await a.send_frame("UNSUBSCRIBE", {"id": "s", "receipt": "u"})
    await a.receipt("u")
    await b.send(topic, "only b", receipt="r")
    assert (await b.expect("MESSAGE")).text == "only b"
    await a.no_frame(0.3)
    await b.send_frame("UNSUBSCRIBE", {"id": "s", "receipt": "u"})
    await b.receipt("u")
    await asyncio.sleep(0.1)
    assert node.relay.stats()["shared_subscriptions"] == 0


async def test_user_destinations_on_one_node(make_node: MakeNode) -> None:
    node = await make_node(authenticate=lambda info: info.login)
    stomp = node.stomp

    @stomp.message("/whoami", reply_to="/queue/answers")
    async def whoami(msg: object) -> str:
        return "you"

    alice1 = await node.connected(login="alice")
    alice2 = await node.connected(login="alice")
    for client in (alice1, alice2):
        await client.subscribe("/user/queue/inbox", "in")
        await client.subscribe("/user/queue/answers", "ans")
    await stomp.send_to_user("alice", "/queue/inbox", "to both")
    for client in (alice1, alice2):
        frame = await client.expect("MESSAGE")
        assert (frame.text, frame["destination"]) == ("to both", "/user/queue/inbox")
    # reply_to answers this session only.
    await alice1.send("/app/whoami", "", receipt="w")
    frame = await alice1.expect("MESSAGE")
    assert (frame.text, frame["subscription"]) == ("you", "ans")
    await alice2.no_frame(0.3)
    # Nobody reaches another user's broker destination directly.
    bob = await node.connected(login="bob")
    target = node.relay.user_destination("alice", "/queue/inbox")
    assert target is not None
    await bob.send_frame("SUBSCRIBE", {"id": "spy", "destination": target, "receipt": "r"})
    assert (await bob.expect_error())["message"] == "Access refused"
    mallory = await node.connected(login="mallory")
    await mallory.send_frame("SEND", {"destination": target, "receipt": "r"}, "forged")
    assert (await mallory.expect_error())["message"] == "Access refused"
    await alice1.no_frame(0.2)


async def test_anonymous_user_destination_reply(make_node: MakeNode) -> None:
    node = await make_node()

    @node.stomp.message("/ping", reply_to="/queue/pong")
    async def ping(msg: object) -> str:
        return "pong"

    client = await node.connected()
    await client.subscribe("/user/queue/pong", "p")
    await client.send("/app/ping", "", receipt="r")
    frame = await client.expect("MESSAGE")
    assert (frame.text, frame["destination"]) == ("pong", "/user/queue/pong")


async def test_large_message_and_escaped_headers(make_node: MakeNode) -> None:
    node = await make_node()
    topic = f"/topic/{unique()}"
    reader = await node.connected("tcp")
    await reader.subscribe(topic, "s")
    writer = await node.connected("tcp")
    body = bytes(range(256)) * 1024
    await writer.send(topic, body, receipt="big", content_length=str(len(body)), x_odd="a:b\\c\nd")
    frame = await reader.expect("MESSAGE", timeout=TIMEOUT)
    assert frame.body == body
    assert frame["x-odd"] == "a:b\\c\nd"


async def test_unacknowledged_messages_are_bounded(make_node: MakeNode) -> None:
    from conftest import fast_relay

    node = await make_node(fast_relay(max_unacked=2))
    queue = f"/queue/{unique()}"
    consumer = await node.connected()
    await consumer.subscribe(queue, "q", ack="client-individual", **QUEUE_ARGS)
    producer = await node.connected()
    for i in range(3):
        await producer.send(queue, f"m{i}", receipt=f"r{i}", **QUEUE_ARGS)
    held = [await consumer.expect("MESSAGE") for _ in range(2)]
    await consumer.no_frame(0.3)  # the third waits in RabbitMQ
    await consumer.send_frame("ACK", {"id": held[0]["ack"], "receipt": "a"})
    await consumer.receipt("a")
    assert (await consumer.expect("MESSAGE")).text == "m2"


async def test_a_failed_server_publish_does_not_disturb_subscribers(make_node: MakeNode) -> None:
    from sockjs_server.stomp import BrokerError

    node = await make_node()
    topic = f"/topic/{unique()}"
    reader = await node.connected()
    await reader.subscribe(topic, "s")
    with pytest.raises(BrokerError) as info:
        await node.stomp.publish(f"/exchange/{unique('missing')}/key", "nowhere")
    assert info.value.message == "not_found"
    await node.stomp.publish(topic, "next one goes through")
    frame = await reader.expect("MESSAGE")
    assert frame.text == "next one goes through"
    assert node.relay.available and node.relay.reconnects == 0


async def test_last_subscriber_leaving_a_busy_topic_keeps_the_shared_connection(make_node: MakeNode) -> None:
    # RabbitMQ answers an UNSUBSCRIBE that crosses a MESSAGE in flight with
    # "ERROR Subscription not found" and drops the connection; the relay must
    # not let that take the shared subscriber connection (and its clients) down.
    node = await make_node(authenticate=lambda info: info.login)
    topic = f"/topic/{unique()}"
    other = f"/topic/{unique()}"
    bystander = await node.connected(login="bob")
    await bystander.subscribe(other, "o")
    for round_ in range(3):
        leaver = await node.connected(login=f"ann{round_}")
        await leaver.subscribe("/user/queue/private", "p")
        await leaver.subscribe(topic, "t")
        await node.stomp.publish(topic, "in flight")
        await leaver.close()
        await node.stomp.publish(topic, "after")
        await asyncio.sleep(0.2)
    assert node.relay.available
    await node.stomp.publish(other, "still here")
    assert (await bystander.expect("MESSAGE")).text == "still here"
    # Idle shared subscriptions are reused by the next subscriber.
    again = await node.connected(login="cy")
    await again.subscribe(topic, "t")
    await node.stomp.publish(topic, "reused")
    assert (await again.expect("MESSAGE")).text == "reused"
