"""STOMP over TCP: raw bytes on a real socket, limits, slow consumers, older versions."""

from __future__ import annotations

import asyncio

from stomp_testing import TIMEOUT, ClientParser, encode_frame, harness, raw_subscriber  # noqa: F401

from sockjs_server.stomp import MemoryBroker, StompOptions, StompServer


async def test_raw_framing_split_bytes_crlf_and_nul_bodies(harness):
    h = await harness("tcp")
    c = await h.connected()
    await c.subscribe("/topic/frm", "f")
    two = encode_frame("SEND", {"destination": "/topic/frm"}, "one") + b"\n" + encode_frame("SEND", {"destination": "/topic/frm"}, "two")
    await c.send_raw(two)
    for byte in encode_frame("SEND", {"destination": "/topic/frm"}, "split"):
        await c.send_raw(bytes([byte]))
    await c.send_raw(b"SEND\r\ndestination:/topic/frm\r\n\r\ncrlf\x00\r\n")
    await c.send_raw(b"SEND\ndestination:/topic/frm\ncontent-length:5\n\nn\x00u\x00l\x00")
    bodies = [(await c.expect("MESSAGE")).body for _ in range(5)]
    assert bodies == [b"one", b"two", b"split", b"crlf", b"n\x00u\x00l"]


async def test_one_mebibyte_body(harness):
    h = await harness("tcp")
    c = await h.connected()
    await c.subscribe("/topic/large", "l")
    body = b"x" * (1024 * 1024 - 200)
    await c.send("/topic/large", body, receipt="big")
    m = await c.expect("MESSAGE")
    assert m.body == body


async def test_frame_too_large_before_and_after_connect(harness):
    h = await harness("tcp", options=StompOptions(max_connect_frame_size=1024, max_frame_size=4096))
    c = await h.client()
    await c.send_raw(b"CONNECT\naccept-version:1.2\nx:" + b"a" * 2000 + b"\n\n\x00")
    await c.expect_error("Frame too large")
    c = await h.connected()
    await c.send_frame("SEND", {"destination": "/topic/a", "receipt": "r", "content-length": "10000"})
    error = await c.expect_error("Frame too large")
    assert "receipt-id" not in error.headers


async def test_too_many_headers(harness):
    h = await harness("tcp", options=StompOptions(max_headers=5))
    c = await h.connected()
    await c.send_frame("SEND", [("destination", "/topic/a")] + [(f"h{i}", "v") for i in range(10)])
    await c.expect_error("Too many headers")


async def test_garbage_gets_error_not_traceback(harness, caplog):
    h = await harness("tcp")
    c = await h.connected()
    await c.send_raw(b"\xff\xfe\xfd\n\n\x00")
    await c.expect_error("Bad frame")
    assert not [r for r in caplog.records if r.exc_info]


async def test_stomp_1_0_session(harness):
    h = await harness("tcp")
    c = await h.client()
    connected = await c.connect(None)
    assert connected["version"] == "1.0" and connected["heart-beat"] == "0,0"  # as from RabbitMQ
    await c.send_frame("SUBSCRIBE", {"destination": "/queue/old", "ack": "client"})
    await c.send_raw(encode_frame("SEND", {"destination": "/queue/old", "x": "a\\cb"}, "legacy", escape_headers=False))
    m = await c.expect("MESSAGE")
    assert "subscription" not in m.headers and "ack" not in m.headers
    assert m["x"] == "a\\cb"  # STOMP 1.0 has no escaping
    await c.send_frame("ACK", {"message-id": m["message-id"], "receipt": "a"})
    await c.receipt("a")
    await c.send_frame("UNSUBSCRIBE", {"destination": "/queue/old", "receipt": "u"})
    await c.receipt("u")


async def test_stomp_1_1_ack_with_subscription(harness):
    h = await harness("tcp")
    c = await h.connected(version="1.1")
    await c.subscribe("/queue/v11", "s", ack="client-individual")
    await c.send("/queue/v11", "m", receipt="r")
    m = await c.expect("MESSAGE")
    assert "ack" not in m.headers
    await c.send_frame("ACK", {"message-id": m["message-id"], "subscription": "s", "receipt": "a"})
    await c.receipt("a")


async def test_connect_timeout(harness):
    h = await harness("tcp", options=StompOptions(connect_timeout=0.05))
    c = await h.client()
    await c.expect_error("Connect timeout")


async def test_slow_consumer_is_disconnected_without_slowing_others(harness):
    broker = MemoryBroker()
    stomp = StompServer(broker, options=StompOptions(max_pending_bytes=64 * 1024, max_frame_size=32 * 1024, slow_consumer_timeout=1.0))
    h = await harness("tcp", stomp=stomp)
    # A client with a tiny receive buffer that stops reading after subscribing.
    reader, writer = await raw_subscriber(h.port, "/topic/flood", rcvbuf=4096, sub_id="slow")
    fast = await h.connected()
    await fast.subscribe("/topic/flood", "fast")
    pub = await h.connected()
    body = b"z" * 8192
    sent = 0
    for sent in range(1, 2001):  # bounded
        await pub.send("/topic/flood", body, seq=str(sent))
        assert (await fast.expect("MESSAGE"))["seq"] == str(sent)
        if len(stomp.connections) == 2 and sent >= 20:
            break
    assert len(stomp.connections) == 2, "the slow consumer was never disconnected"
    await pub.send("/topic/flood", b"after", receipt="after")
    assert (await fast.expect("MESSAGE")).body == b"after"
    # The slow client finds an ERROR after the messages it did not read.
    data = bytearray()
    while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
        data += chunk
    last = ClientParser().feed(bytes(data))[-1]
    assert last.command == "ERROR" and last["message"] == "Slow consumer"
    writer.close()


async def test_server_close_sends_error(harness):
    h = await harness("tcp")
    c = await h.connected()
    await h.stomp.close()
    await c.expect_error("Server shutting down")


async def test_slow_sockjs_consumer_is_closed_without_slowing_others(harness):
    from sockjs_server import Options

    stomp = StompServer(MemoryBroker())
    h = await harness("tcp", stomp=stomp, sockjs_options=Options(max_queue_bytes=64 * 1024))
    slow = await h.connected("xhr-polling")
    await slow.subscribe("/topic/flood", "slow")
    slow.pipe.task.cancel()  # stops polling: nothing is taken from its SockJS queue any more
    fast = await h.connected("websocket")
    await fast.subscribe("/topic/flood", "fast")
    pub = await h.connected()
    body = "z" * 8192
    for sent in range(1, 201):  # bounded
        await pub.send("/topic/flood", body, seq=str(sent))
        assert (await fast.expect("MESSAGE"))["seq"] == str(sent)
        if len(stomp.connections) == 2:
            break
    assert len(stomp.connections) == 2, "the slow SockJS session was never closed"
    assert {c.transport for c in stomp.connections} == {"websocket", "tcp"}
