"""Two frames near max_frame_size back to back reach a subscriber that reads, as RabbitMQ
delivers both: slowness is judged by no bytes taken over time, not by one burst."""

from __future__ import annotations

import asyncio

import pytest
from stomp_testing import TIMEOUT, encode_frame, harness, raw_subscriber  # noqa: F401

from sockjs_server import Options
from sockjs_server.stomp import MemoryBroker, StompOptions, StompServer

FRAME = 20_000_000
BODY = 16 * 1024 * 1024


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
async def test_two_near_limit_frames_back_to_back_reach_a_reading_subscriber(harness, transport):
    stomp = StompServer(MemoryBroker(), options=StompOptions(max_frame_size=FRAME, max_pending_bytes=FRAME))
    h = await harness(transport, stomp=stomp, sockjs_options=Options(max_message_size=2 * FRAME + 1024, max_queue_bytes=4 * FRAME))
    subscriber = await h.connected()
    await subscriber.subscribe("/topic/big", "s")
    publisher = await h.connected()
    body = b"m" * BODY
    two = b"".join(encode_frame("SEND", {"destination": "/topic/big", "seq": str(i)}, body) for i in range(2))
    await publisher.send_raw(two)
    for i in range(2):
        frame = await subscriber.expect("MESSAGE", timeout=60)
        assert frame["seq"] == str(i) and len(frame.body) == BODY
    assert len(stomp.connections) == 2


async def test_a_tcp_subscriber_that_starts_reading_late_gets_a_burst_of_large_frames(harness):
    # The subscriber takes nothing while the publisher's two large SENDs arrive: the first
    # fills its socket, the second waits for it (the publisher is paced), and once it
    # reads it gets both, where a rule on bytes pending alone would close it at once.
    stomp = StompServer(MemoryBroker(), options=StompOptions(max_frame_size=FRAME, max_pending_bytes=FRAME))
    h = await harness("tcp", stomp=stomp)
    reader, writer = await raw_subscriber(h.port, "/topic/late", rcvbuf=64 * 1024)
    publisher = await h.connected()
    body = b"l" * BODY
    # In a task: the server stops reading the publisher while it waits for the subscriber.
    sending = asyncio.create_task(publisher.send_raw(b"".join(encode_frame("SEND", {"destination": "/topic/late", "seq": str(i)}, body) for i in range(2))))
    await asyncio.sleep(1.0)  # a client busy elsewhere for a moment
    received = 0
    while received < 2 * BODY:  # bounded: each read returns data or the test times out
        chunk = await asyncio.wait_for(reader.read(1 << 20), TIMEOUT)
        assert chunk, "the subscriber was closed"
        received += len(chunk)
    await asyncio.wait_for(sending, TIMEOUT)
    assert len(stomp.connections) == 2
    assert stomp.counters.slow_consumer_closes == 0
    writer.close()


async def test_a_tcp_subscriber_that_takes_nothing_is_closed_after_the_timeout_and_the_publisher_goes_on(harness):
    stomp = StompServer(MemoryBroker(), options=StompOptions(max_frame_size=FRAME, max_pending_bytes=FRAME, slow_consumer_timeout=0.5))
    h = await harness("tcp", stomp=stomp)
    reader, writer = await raw_subscriber(h.port, "/topic/stuck", rcvbuf=64 * 1024)
    publisher = await h.connected()
    body = b"s" * BODY
    frames = b"".join(encode_frame("SEND", {"destination": "/topic/stuck", "seq": str(i)}, body) for i in range(2))
    await publisher.send_raw(frames + encode_frame("SEND", {"destination": "/topic/other", "receipt": "after"}, b"after"))
    await publisher.receipt("after")
    assert stomp.counters.slow_consumer_closes == 1
    assert len(stomp.connections) == 1
    writer.close()
