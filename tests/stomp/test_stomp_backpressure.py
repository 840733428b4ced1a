"""A publisher's burst is paced by its SockJS subscribers: a subscriber that reads is never
dropped as a slow consumer, one that stops reading still is."""

from __future__ import annotations

from stomp_testing import encode_frame, harness  # noqa: F401

from sockjs_server import Options
from sockjs_server.stomp import MemoryBroker, StompServer

BURST = 900  # 1 KB SENDs in one SockJS message: about 950 KB, under max_message_size


async def test_a_burst_in_one_sockjs_message_reaches_every_reading_subscriber(harness):
    stomp = StompServer(MemoryBroker())
    h = await harness("websocket", stomp=stomp, sockjs_options=Options())
    publisher = await h.connected("websocket")
    await publisher.subscribe("/topic/burst", "self")  # it receives its own burst too
    other = await h.connected("websocket")
    await other.subscribe("/topic/burst", "other")
    body = "b" * 1024
    frames = b"".join(encode_frame("SEND", {"destination": "/topic/burst", "seq": str(i)}, body) for i in range(BURST))
    # Rendered as MESSAGE frames this is about 1 MB per subscriber: twice the hard limit
    # (max_queue_bytes // 2) that a burst used to hit before the subscriber could read.
    await publisher.send_raw(frames)
    for client in (publisher, other):
        for i in range(BURST):
            frame = await client.expect("MESSAGE")
            assert frame["seq"] == str(i)
    assert len(stomp.connections) == 2


async def test_a_burst_over_xhr_polling_is_paced_too(harness):
    stomp = StompServer(MemoryBroker())
    h = await harness("websocket", stomp=stomp, sockjs_options=Options(max_queue_bytes=128 * 1024))
    subscriber = await h.connected("xhr-polling")
    await subscriber.subscribe("/topic/paced", "s")
    publisher = await h.connected("websocket")
    body = "p" * 1024
    frames = b"".join(encode_frame("SEND", {"destination": "/topic/paced", "seq": str(i)}, body) for i in range(300))
    await publisher.send_raw(frames)
    for i in range(300):
        assert (await subscriber.expect("MESSAGE"))["seq"] == str(i)
