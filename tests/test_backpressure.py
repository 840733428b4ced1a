"""Back-pressure both ways, over real sockets: a reading client is never closed, one that
stops reading is, big batches are handed over in slices, and one flood starves nobody."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp

from sockjs_client import (
    OPEN,
    UNIT,
    RawHTTP,
    Recorder,
    Serve,
    bounded,
    messages,
    new_id,
    raw_ws_handshake,
    read_ws_frame,
    still_pending,
)
from sockjs_server import Session


async def _collect_ws(ws: aiohttp.ClientWebSocketResponse, wanted: int) -> list[str]:
    """Read frames until ``wanted`` messages arrived; any close frame fails."""
    received: list[str] = []
    while len(received) < wanted:
        msg = await bounded(ws.receive())
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        data = msg.data
        if data == "h":
            continue
        assert data.startswith("a"), data[:80]
        received.extend(json.loads(data[1:]))
    return received


# -- a reading client is never closed --------------------------------------------------------------


async def test_a_50000_message_websocket_frame_is_echoed_completely(serve: Serve) -> None:
    served = await serve()  # the echo handler, default options
    texts = [f"m{i}" for i in range(50_000)]
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send(*texts)
        assert await _collect_ws(ws.ws, len(texts)) == texts


async def test_two_concurrent_6000_message_xhr_sends_are_echoed_completely(serve: Serve) -> None:
    served = await serve()
    session = await served.client.open_xhr()
    first = [f"a{i}" for i in range(6_000)]
    second = [f"b{i}" for i in range(6_000)]
    polling = asyncio.ensure_future(served.client.poll_until(session, len(first) + len(second)))
    replies = await bounded(
        asyncio.gather(served.client.xhr_send(session, *first), served.client.xhr_send(session, *second))
    )
    assert [reply.status for reply in replies] == [204, 204]
    received = await bounded(polling)  # poll_until fails on any close frame (no 3001)
    assert [m for m in received if m.startswith("a")] == first
    assert [m for m in received if m.startswith("b")] == second


async def test_send_waits_at_the_high_water_mark_until_the_client_takes(serve: Serve) -> None:
    progress: list[int] = []

    async def chatty(session: Session) -> None:
        for i in range(10):
            await session.send(str(i))
            progress.append(i)
        await session.wait_closed()

    served = await serve(chatty, send_high_water_messages=3)
    session = await served.client.open_xhr()
    await asyncio.sleep(2 * UNIT)
    assert len(progress) == 3  # the fourth send waits: nobody took the queue
    received = await bounded(served.client.poll_until(session, 10))
    assert received == [str(i) for i in range(10)]


async def test_send_waits_for_bytes_too(serve: Serve) -> None:
    progress: list[int] = []

    async def chatty(session: Session) -> None:
        for i in range(6):
            await session.send(str(i) * 50)
            progress.append(i)
        await session.wait_closed()

    served = await serve(chatty, send_high_water=100)
    session = await served.client.open_xhr()
    await asyncio.sleep(2 * UNIT)
    assert len(progress) == 2  # 2 x 52 encoded bytes reach the mark
    assert await bounded(served.client.poll_until(session, 6)) == [str(i) * 50 for i in range(6)]


async def test_a_slow_but_steady_reader_outlives_send_timeout(serve: Serve) -> None:
    async def chatty(session: Session) -> None:
        for i in range(40):
            await session.send(str(i))
        await session.wait_closed()

    # The whole exchange lasts several send_timeouts; the client takes something each time.
    served = await serve(chatty, send_high_water_messages=4, send_timeout=3 * UNIT)
    session = await served.client.open_xhr()
    received: list[str] = []
    while len(received) < 40:
        await asyncio.sleep(UNIT)
        frame = await served.client.xhr_frame(session)
        assert frame.kind == "a", frame
        received.extend(frame.messages)
    assert received == [str(i) for i in range(40)]


# -- a client that stops reading is closed, with bounded memory ------------------------------------


async def test_websocket_client_that_stops_reading_is_closed_as_slow_consumer(serve: Serve, layer: str) -> None:
    done: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
    peak = 0

    async def flood(session: Session) -> None:
        nonlocal peak
        chunk = "f" * 10_000
        while not session.closed:
            await session.send(chunk)
            peak = max(peak, session.queued_bytes)
        done.set_result(session)

    served = await serve(flood, send_timeout=5 * UNIT, send_high_water=64 * 1024)
    async with await RawHTTP.connect(served.host, served.port) as conn:
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head = await raw_ws_handshake(conn, served.client.url(new_id(), "websocket"))
        assert head.status == 101
        assert await read_ws_frame(conn) == (1, b"o")
        conn.writer.transport.pause_reading()  # type: ignore[attr-defined]
        session = await bounded(done)
        assert (session.close_code, session.close_reason) == (3001, "Slow consumer")
        # Memory stayed bounded by the high-water mark (plus the one message that crossed it).
        assert peak <= 64 * 1024 + 10_002
        assert session.queued_bytes == 0
        conn.writer.transport.resume_reading()  # type: ignore[attr-defined]
        if layer != "aiohttp":
            return  # ASGI has no abort: uvicorn and granian send what they buffered, then close
        # The connection was reset, not left to trickle its buffers to a client that does not read.
        try:
            while await bounded(conn.reader.read(65536)):
                pass
        except ConnectionResetError:
            pass


async def test_broadcasts_to_a_websocket_that_stops_reading_close_it_as_slow_consumer(serve: Serve) -> None:
    recorder = Recorder(echo=False)
    # Broadcasts never wait: only the take deadline (not the queue limit) can end this one.
    served = await serve(recorder, send_timeout=5 * UNIT, max_queue_bytes=256 * 1024 * 1024)
    async with await RawHTTP.connect(served.host, served.port) as conn:
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head = await raw_ws_handshake(conn, served.client.url(new_id(), "websocket"))
        assert head.status == 101
        assert await read_ws_frame(conn) == (1, b"o")
        conn.writer.transport.pause_reading()  # type: ignore[attr-defined]
        stuck = await recorder.next_session()
        reading = await served.client.open_xhr()
        chunk = "b" * 50_000

        async def broadcast_until_closed() -> None:
            while not stuck.closed:
                served.endpoint.broadcast_nowait(chunk)
                assert await served.client.xhr_frame(reading) == messages(chunk)

        await bounded(broadcast_until_closed())
        assert (stuck.close_code, stuck.close_reason) == (3001, "Slow consumer")
        assert stuck.queued_bytes == 0
    # The reading session was served all along and still is.
    served.endpoint.broadcast_nowait("after")
    assert await served.client.xhr_frame(reading) == messages("after")


async def test_send_nowait_never_waits(serve: Serve) -> None:
    sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def chatty(session: Session) -> None:
        for i in range(50):
            session.send_nowait(str(i))
        sent.set_result(len(session.endpoint.sessions))
        await session.wait_closed()

    served = await serve(chatty, send_high_water_messages=3)
    session = await served.client.open_xhr()
    await bounded(sent)  # all 50 queued at once, over the high-water mark
    assert await bounded(served.client.poll_until(session, 50)) == [str(i) for i in range(50)]


# -- slices and fairness -------------------------------------------------------------------------


async def test_a_big_frame_reaches_the_handler_in_slices(serve: Serve) -> None:
    gate = asyncio.Event()
    recorder = Recorder(echo=False, gate=gate)
    served = await serve(recorder, max_receive_queue=100)
    texts = [str(i) for i in range(1_000)]
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send(*texts)
        app_session = await recorder.next_session()
        await asyncio.sleep(2 * UNIT)
        # The handler has read nothing: the transport handed over no more than two slices.
        assert len(app_session._inbox) <= 200
        gate.set()

        async def all_in() -> None:
            while len(recorder.received) < len(texts):
                await asyncio.sleep(0.005)

        await bounded(all_in())
    assert recorder.received == texts


async def test_one_flooding_session_does_not_starve_a_ping_pong_session(serve: Serve) -> None:
    served = await serve()
    flood = [f"f{i}" for i in range(50_000)]
    async with await served.client.websocket(new_id()) as flooder, await served.client.websocket(new_id()) as pinger:
        assert await flooder.frame() == OPEN
        assert await pinger.frame() == OPEN
        for _ in range(4):
            await flooder.send(*flood)
        flooding = asyncio.ensure_future(_collect_ws(flooder.ws, 4 * len(flood)))
        await asyncio.sleep(0)
        for i in range(10):
            await pinger.send(f"ping{i}")
            assert await _collect_ws(pinger.ws, 1) == [f"ping{i}"]
        # The ping-pong session was served while the flood was still being echoed.
        assert await still_pending(flooding, grace=0)
        assert len(await bounded(flooding)) == 4 * len(flood)


async def test_more_than_max_messages_per_frame_closes_with_1009(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, max_messages_per_frame=10)
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send(*[str(i) for i in range(10)])
        assert await _collect_ws(ws.ws, 10) == [str(i) for i in range(10)]
        await ws.send(*[str(i) for i in range(11)])
        assert await ws.wait_closed() == 1009
    assert recorder.received == [str(i) for i in range(10)]
