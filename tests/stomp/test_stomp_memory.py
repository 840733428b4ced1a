"""MemoryBroker semantics, driven directly through the Broker interface."""

from __future__ import annotations

import pytest

from sockjs_server.stomp.broker import Message
from sockjs_server.stomp.errors import BrokerError, ProtocolError, StompError
from sockjs_server.stomp.frames import AckMode
from sockjs_server.stomp.memory import MemoryBroker, parse_destination, topic_matches


class Recorder:
    """A BrokerClient that keeps what it is given."""

    def __init__(self, name: str) -> None:
        self.client_id = name
        self.got: list[tuple[str, str, str, bool]] = []
        self.lost: list[StompError] = []

    def deliver(self, subscription: str, message: Message, message_id: str, redelivered: bool = False) -> None:
        self.got.append((subscription, message.body.decode(), message_id, redelivered))

    def broker_lost(self, error: StompError) -> None:
        self.lost.append(error)

    def bodies(self) -> list[str]:
        return [b for _, b, _, _ in self.got]


@pytest.mark.parametrize(
    "pattern,key,expected",
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*", "a", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "anything.at.all", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.b.d", False),
        ("*.b.#", "a.b", True),
        ("*.b.#", "b", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.#.z", "a.b.z", True),
    ],
)
def test_topic_matching(pattern, key, expected):
    assert topic_matches(tuple(pattern.split(".")), tuple(key.split("."))) is expected


def test_destinations():
    assert parse_destination("/topic/a.b") == ("topic", "a.b")
    assert parse_destination("/exchange/amq.topic/a") == ("topic", "a")
    assert parse_destination("/queue/x") == ("queue", "x")
    assert parse_destination("/amq/queue/x") == ("queue", "x")
    for bad in ("/foo/bar", "/topic/", "chat", "/temp-queue/x"):
        with pytest.raises(StompError):
            parse_destination(bad)


async def test_topic_fan_out_and_canonical_destination():
    broker = MemoryBroker()
    a, b = Recorder("a"), Recorder("b")
    await broker.subscribe(a, "s", "/topic/chat.*", AckMode.AUTO, {})
    await broker.subscribe(b, "s", "/exchange/amq.topic/chat.room", AckMode.AUTO, {})
    await broker.publish("/exchange/amq.topic/chat.room", b"1")
    await broker.publish("/topic/chat.room", b"2")
    assert a.bodies() == ["1", "2"] and b.bodies() == ["1", "2"]
    await broker.unsubscribe(a, "s")
    await broker.publish("/topic/chat.room", b"3")
    assert a.bodies() == ["1", "2"] and b.bodies() == ["1", "2", "3"]
    # Topic messages are not stored.
    c = Recorder("c")
    await broker.subscribe(c, "s", "/topic/chat.room", AckMode.AUTO, {})
    assert c.got == []
    assert broker.stored_bytes == 0


async def test_queue_round_robin_and_storage():
    broker = MemoryBroker()
    await broker.publish("/queue/q", b"early")
    assert broker.queue_depth("q") == 1 and broker.stored_bytes > 0
    a, b = Recorder("a"), Recorder("b")
    await broker.subscribe(a, "s", "/queue/q", AckMode.AUTO, {})
    await broker.subscribe(b, "s", "/amq/queue/q", AckMode.AUTO, {})
    for i in range(4):
        await broker.publish("/queue/q", f"m{i}".encode())
    assert a.bodies() == ["early", "m1", "m3"]
    assert b.bodies() == ["m0", "m2"]
    assert broker.stored_bytes == 0 and broker.queue_depth("q") == 0


async def test_prefetch_pauses_delivery_until_ack():
    broker = MemoryBroker(max_unacked=2)
    a = Recorder("a")
    await broker.subscribe(a, "s", "/queue/q", AckMode.CLIENT_INDIVIDUAL, {})
    for i in range(3):
        await broker.publish("/queue/q", f"m{i}".encode())
    assert a.bodies() == ["m0", "m1"] and broker.queue_depth("q") == 1
    await broker.ack(a, a.got[1][2])
    assert a.bodies() == ["m0", "m1", "m2"]
    b = Recorder("b")
    await broker.subscribe(b, "s", "/queue/p", AckMode.CLIENT, {"prefetch-count": "1"})
    await broker.publish("/queue/p", b"x")
    await broker.publish("/queue/p", b"y")
    assert b.bodies() == ["x"]


async def test_nack_requeues_at_the_head_in_order():
    broker = MemoryBroker()
    a = Recorder("a")
    await broker.subscribe(a, "s", "/queue/q", AckMode.CLIENT, {"prefetch-count": "2"})
    for i in range(3):
        await broker.publish("/queue/q", f"m{i}".encode())
    assert a.bodies() == ["m0", "m1"]
    # client mode: NACK of m1 covers m0 too; both come back first, redelivered.
    await broker.nack(a, a.got[1][2])
    assert [(b, r) for _, b, _, r in a.got[2:]] == [("m0", True), ("m1", True)]
    await broker.nack(a, a.got[-1][2], requeue=False)
    assert a.bodies()[-1] == "m2"


async def test_connection_lost_redelivers_to_others():
    broker = MemoryBroker()
    a, b = Recorder("a"), Recorder("b")
    await broker.connect(a, None)
    await broker.subscribe(a, "s", "/queue/q", AckMode.CLIENT_INDIVIDUAL, {})
    await broker.publish("/queue/q", b"m")
    await broker.subscribe(b, "s", "/queue/q", AckMode.AUTO, {})
    assert b.got == []
    await broker.connection_lost(a)
    assert b.got[0][1:] == ("m", b.got[0][2], True)
    assert broker.client_count == 1 and broker.stored_bytes == 0


async def test_ack_errors():
    broker = MemoryBroker()
    a, other = Recorder("a"), Recorder("other")
    await broker.subscribe(a, "s", "/queue/q", AckMode.CLIENT_INDIVIDUAL, {})
    await broker.subscribe(a, "t", "/topic/t", AckMode.CLIENT, {})
    await broker.publish("/queue/q", b"m")
    await broker.publish("/topic/t", b"n")
    queue_id, topic_id = a.got[0][2], a.got[1][2]
    with pytest.raises(ProtocolError):
        await broker.ack(a, "no-such-id")
    with pytest.raises(ProtocolError):
        await broker.ack(other, queue_id)  # not yours
    await broker.ack(a, topic_id)
    # A subscription header naming another subscription is ignored, as by RabbitMQ.
    await broker.ack(a, queue_id, subscription="t")
    with pytest.raises(ProtocolError):
        await broker.ack(a, queue_id)  # already acknowledged
    with pytest.raises(ProtocolError):
        await broker.unsubscribe(a, "nope")


async def test_limits():
    broker = MemoryBroker(max_queue_messages=3)
    for i in range(5):
        await broker.publish("/queue/q", f"m{i}".encode())
    a = Recorder("a")
    await broker.subscribe(a, "s", "/queue/q", AckMode.AUTO, {})
    assert a.bodies() == ["m2", "m3", "m4"]  # the oldest were dropped
    small = MemoryBroker(max_stored_bytes=500)
    await small.publish("/queue/q", b"x" * 300)
    with pytest.raises(BrokerError, match="storage full"):
        await small.publish("/queue/q", b"y" * 300)
    await small.publish("/topic/t", b"z" * 1000)  # topics store nothing
    with pytest.raises(ValueError):
        MemoryBroker(max_unacked=0)


async def test_auto_delete_queue_goes_with_its_last_subscriber():
    broker = MemoryBroker()
    a = Recorder("a")
    await broker.subscribe(a, "s", "/queue/tmp", AckMode.CLIENT_INDIVIDUAL, {"auto-delete": "true"})
    await broker.publish("/queue/tmp", b"held")
    await broker.unsubscribe(a, "s")
    assert broker.queue_depth("tmp") == 0 and broker.stored_bytes == 0


async def test_message_tail_is_shared_and_text_safe():
    from sockjs_server.stomp.frames import Version

    m = Message("/topic/a", b"\xff\x00ok", (("x", "a:b"),))
    tail = m.tail(Version.V1_2)
    assert tail is m.tail(Version.V1_2)
    assert tail == b"destination:/topic/a\nx:a\\cb\ncontent-length:4\n\n\xff\x00ok\x00"
    text = m.tail(Version.V1_2, text=True)
    assert text.decode("utf-8").endswith("\ufffd\x00ok\x00") and b"content-length:6" in text
    assert m.tail(Version.V1_0) == b"destination:/topic/a\nx:a:b\ncontent-length:4\n\n\xff\x00ok\x00"


async def test_topic_subscription_with_client_acks_has_a_queue_of_its_own():
    # As on RabbitMQ, where every topic subscription is a queue of its own.
    broker = MemoryBroker()
    a, b = Recorder("a"), Recorder("b")
    await broker.subscribe(a, "s", "/topic/t", AckMode.CLIENT_INDIVIDUAL, {"prefetch-count": "1"})
    await broker.subscribe(b, "s", "/topic/t", AckMode.AUTO, {"prefetch-count": "1"})
    for i in range(3):
        await broker.publish("/topic/t", f"m{i}".encode())
    assert a.bodies() == ["m0"] and b.bodies() == ["m0", "m1", "m2"]  # prefetch only with client acks
    await broker.nack(a, a.got[0][2])
    assert a.got[1][1:] == ("m0", a.got[1][2], True)
    await broker.ack(a, a.got[1][2])
    assert a.bodies() == ["m0", "m0", "m1"]
    # One message id per delivery, and the queue (and what it holds) goes with the subscription.
    assert len({mid for _, _, mid, _ in a.got + b.got}) == 6
    await broker.unsubscribe(a, "s")
    assert broker.stored_bytes == 0 and broker.stats()["queues"] == {}


async def test_ack_of_a_message_that_holds_nothing_fails_after_its_receipt():
    broker = MemoryBroker()
    a = Recorder("a")
    await broker.subscribe(a, "s", "/topic/t", AckMode.AUTO, {})
    await broker.publish("/topic/t", b"m")
    with pytest.raises(ProtocolError) as raised:
        await broker.ack(a, a.got[0][2])
    assert raised.value.fatal and raised.value.error_after_receipt
    assert raised.value.detail.startswith("PRECONDITION_FAILED - unknown delivery tag ")
    with pytest.raises(ProtocolError) as raised:
        await broker.ack(a, "nope")
    assert not raised.value.fatal and raised.value.detail == '"ACK" must include a valid "id" header\n'
