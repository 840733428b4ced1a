"""Every limit: request bodies, messages per request, the outgoing queue, receive back-pressure."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest

from sockjs_client import (
    OPEN,
    UNIT,
    RawHTTP,
    Recorder,
    Serve,
    bounded,
    closing,
    messages,
    new_id,
    server_decides,
    still_pending,
)
from sockjs_server import Session

# -- request bodies ------------------------------------------------------------------------------


async def test_body_over_max_request_size_is_413(serve: Serve) -> None:
    served = await serve(max_request_size=100)
    session = await served.client.open_xhr()
    fits = json.dumps(["x" * 96])  # exactly 100 bytes
    assert len(fits) == 100
    assert (await served.client.xhr_send(session, body=fits)).status == 204
    reply = await served.client.xhr_send(session, body=json.dumps(["x" * 97]), headers={"Origin": "test"})
    assert reply.status == 413
    assert reply.text == "Payload too large."
    assert reply.header("Access-Control-Allow-Origin") == "test"
    assert await served.client.xhr_frame(session) == messages("x" * 96)


async def test_jsonp_send_body_limit(serve: Serve) -> None:
    served = await serve(max_request_size=100)
    session = new_id()
    assert await served.client.jsonp_frame(session) == OPEN
    reply = await served.client.jsonp_send(session, "y" * 200)
    assert reply.status == 413


async def test_chunked_body_over_the_limit_is_413(serve: Serve, layer: str) -> None:
    server_decides(
        layer, granian="it closes the connection when the answer comes before the whole body was read: "
        "a client still sending gets a reset instead of the 413",
    )  # fmt: skip
    served = await serve(max_request_size=1000)
    session = await served.client.open_xhr()

    async def body() -> AsyncIterator[bytes]:
        yield b'["'
        for _ in range(20):
            yield b"z" * 100
        yield b'"]'

    response = await served.http.post(served.client.url(session, "xhr_send"), data=body())
    assert response.status == 413
    response.close()
    # The session itself is untouched.
    assert (await served.client.xhr_send(session, "ok")).status == 204
    assert await served.client.xhr_frame(session) == messages("ok")


async def test_too_many_messages_in_one_request_is_413(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, max_messages_per_request=3)
    session = await served.client.open_xhr()
    assert (await served.client.xhr_send(session, "a", "b", "c")).status == 204
    reply = await served.client.xhr_send(session, "1", "2", "3", "4")
    assert reply.status == 413
    assert reply.text == "Too many messages."
    reply = await served.client.jsonp_send(session, "1", "2", "3", "4")
    assert reply.status == 413
    assert await served.client.xhr_frame(session) == messages("a", "b", "c")
    assert recorder.received == ["a", "b", "c"]


async def test_slow_upload_does_not_hold_up_other_sessions(serve: Serve) -> None:
    served = await serve()
    slow = await served.client.open_xhr()
    async with await RawHTTP.connect(served.host, served.port) as conn:
        await conn.send(
            f"POST {served.client.url(slow, 'xhr_send')} HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n4\r\n[\"ab\r\n".encode()
        )
        # While that body trickles in, everyone else is served.
        other = await served.client.open_xhr()
        assert (await served.client.xhr_send(other, "meanwhile")).status == 204
        assert await served.client.xhr_frame(other) == messages("meanwhile")
        await conn.send(b"2\r\n\"]\r\n0\r\n\r\n")
        head = await conn.read_head()
        assert head.status == 204
    assert await served.client.xhr_frame(slow) == messages("ab")


# -- the outgoing queue --------------------------------------------------------------------------


async def test_queue_overflow_by_messages_closes_with_3001(serve: Serve) -> None:
    async def chatty(session: Session) -> None:
        for i in range(10):
            session.send_nowait(str(i))  # never waits: the hard limit applies
        await session.wait_closed()

    served = await serve(chatty, max_queue_messages=5)
    session = await served.client.open_xhr()
    assert await served.client.xhr_frame(session) == closing(3001, "Send queue overflow")
    assert await served.client.xhr_frame(session) == closing(3001, "Send queue overflow")


async def test_queue_overflow_by_bytes_closes_with_3001(serve: Serve) -> None:
    async def chatty(session: Session) -> None:
        session.send_nowait("x" * 60)
        session.send_nowait("y" * 60)
        await session.wait_closed()

    served = await serve(chatty, max_queue_bytes=100)
    session = await served.client.open_xhr()
    assert await served.client.xhr_frame(session) == closing(3001, "Send queue overflow")


async def test_queue_within_limits_is_delivered(serve: Serve) -> None:
    async def chatty(session: Session) -> None:
        for i in range(5):
            await session.send(str(i))
        await session.wait_closed()

    served = await serve(chatty, max_queue_messages=5)
    session = await served.client.open_xhr()
    assert await served.client.xhr_frame(session) == messages("0", "1", "2", "3", "4")


async def test_client_that_never_reads_is_closed_and_others_are_unaffected(serve: Serve) -> None:
    flooded: asyncio.Future[Session] = asyncio.get_running_loop().create_future()

    async def handler(session: Session) -> None:
        if session.query.get("flood"):
            # Paced, so that the queue only grows once the client's socket is full.
            chunk = "f" * 10_000
            while not session.closed:
                await session.send(chunk)
                await asyncio.sleep(0.001)
            flooded.set_result(session)
        else:
            async for message in session:
                await session.send(message)

    # await send() waits at the high-water mark; a client that takes nothing for send_timeout is closed.
    served = await serve(handler, max_queue_bytes=100_000, response_limit=1 << 30, send_timeout=5 * UNIT)
    async with await RawHTTP.connect(served.host, served.port) as conn:
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await conn.send(
            f"POST {served.client.url(new_id(), 'xhr_streaming')}?flood=1 HTTP/1.1\r\n"
            "Host: x\r\nContent-Length: 0\r\n\r\n".encode()
        )
        conn.writer.transport.pause_reading()  # type: ignore[attr-defined]
        # Meanwhile a well-behaved client is served as usual.
        other = await served.client.open_xhr()
        assert (await served.client.xhr_send(other, "hi")).status == 204
        assert await served.client.xhr_frame(other) == messages("hi")
        session = await bounded(flooded)
        assert (session.close_code, session.close_reason) == (3001, "Slow consumer")
        assert session.queued_bytes == 0
    assert (await served.client.xhr_send(other, "still")).status == 204
    assert await served.client.xhr_frame(other) == messages("still")


async def test_broadcast_to_a_stuck_session_closes_only_that_one(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, max_queue_messages=3)
    stuck = await served.client.open_xhr()
    reading = await served.client.open_xhr()
    stuck_session, reading_session = await recorder.next_session(), await recorder.next_session()
    for i in range(3):
        await served.endpoint.broadcast(f"b{i}")
        assert await served.client.xhr_frame(reading) == messages(f"b{i}")
    await served.endpoint.broadcast("b3")
    assert stuck_session.close_code == 3001
    assert served.endpoint.counters.slow_consumer_closes == 1
    assert not reading_session.closed
    assert await served.client.xhr_frame(reading) == messages("b3")
    assert await served.client.xhr_frame(stuck) == closing(3001, "Send queue overflow")


# -- receive back-pressure ------------------------------------------------------------------------


async def test_xhr_send_waits_while_the_handler_is_behind(serve: Serve) -> None:
    gate = asyncio.Event()
    recorder = Recorder(echo=False, gate=gate)
    served = await serve(recorder, max_receive_queue=4)
    session = await served.client.open_xhr()
    texts = [str(i) for i in range(10)]
    sending = asyncio.ensure_future(served.client.xhr_send(session, *texts))
    # Over max_receive_queue unread messages: the answer waits for the application.
    assert await still_pending(sending)
    gate.set()
    assert (await bounded(sending)).status == 204
    assert recorder.received[:10] == texts


async def test_within_max_receive_queue_xhr_send_answers_at_once(serve: Serve) -> None:
    gate = asyncio.Event()
    recorder = Recorder(echo=False, gate=gate)
    served = await serve(recorder, max_receive_queue=4)
    session = await served.client.open_xhr()
    assert (await served.client.xhr_send(session, "1", "2", "3", "4")).status == 204
    gate.set()


async def test_websocket_messages_all_arrive_in_order_after_back_pressure(serve: Serve) -> None:
    gate = asyncio.Event()
    recorder = Recorder(echo=False, gate=gate)
    served = await serve(recorder, max_receive_queue=4)
    texts = [f"m{i}" for i in range(50)]
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        for text in texts:
            await ws.send(text)
        await asyncio.sleep(0)
        gate.set()

        async def all_in() -> None:
            while len(recorder.received) < len(texts):
                await asyncio.sleep(0.005)

        await bounded(all_in())
    assert recorder.received == texts


async def test_closing_releases_a_blocked_sender(serve: Serve) -> None:
    gate = asyncio.Event()
    recorder = Recorder(echo=False, gate=gate)
    served = await serve(recorder, max_receive_queue=2)
    session = await served.client.open_xhr()
    sending = asyncio.ensure_future(served.client.xhr_send(session, "1", "2", "3", "4", "5"))
    app_session = await recorder.next_session()
    assert await still_pending(sending)
    await app_session.close()
    reply = await bounded(sending)
    assert reply.status in (204, 404)
    gate.set()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_request_size", 1024 * 1024),
        ("max_message_size", 1024 * 1024),
        ("max_messages_per_request", 10_000),
        ("max_queue_bytes", 1024 * 1024),
        ("max_queue_messages", 10_000),
        ("max_receive_queue", 1_000),
        ("max_messages_per_frame", 100_000),
        ("send_high_water", 256 * 1024),
        ("send_high_water_messages", 1_000),
        ("send_timeout", 10.0),
        ("response_limit", 128 * 1024),
        ("heartbeat_delay", 25.0),
        ("disconnect_delay", 5.0),
    ],
)
def test_documented_defaults(name: str, value: object) -> None:
    from sockjs_server import Options

    assert getattr(Options(), name) == value


async def test_unread_oversized_body_is_never_taken_for_a_request(serve: Serve) -> None:
    served = await serve(max_request_size=100)
    session = await served.client.open_xhr()
    # The refused body holds something that looks like a request; it must be skipped, not served.
    hidden = b"GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n"
    body = hidden + b"x" * (200 - len(hidden))
    async with await RawHTTP.connect(served.host, served.port) as conn:
        await conn.send(
            f"POST {served.client.url(session, 'xhr_send')} HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n".encode()
            + body
            + b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        head = await conn.read_head()
        assert head.status == 413
        await conn.read(int(head.header("content-length") or 0))
        head = await conn.read_head()
        assert head.status == 200
        assert head.header("content-type") == "text/plain; charset=UTF-8"
        assert await conn.read(int(head.header("content-length") or 0)) == b"Welcome to SockJS!\n"
