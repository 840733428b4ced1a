"""Application shutdown: every session gets a close frame and every response ends."""

from __future__ import annotations

import asyncio

import aiohttp

from sockjs_client import OPEN, UNIT, Recorder, Serve, Served, bounded, closing, new_id
from sockjs_server import Session

GOING_AWAY = closing(1001, "Server shutting down")


def shut_down(served: Served) -> asyncio.Task[None]:
    """Stop the server the way ``run_app`` does on SIGTERM (in the background)."""
    return asyncio.ensure_future(served.http.server.close())


async def test_every_transport_gets_a_close_frame(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client

    streams = {}
    for transport in ("xhr_streaming", "eventsource", "htmlfile"):
        streams[transport] = await client.stream(new_id(), transport)
        assert await streams[transport].frame() == OPEN
    ws = await client.websocket(new_id())
    assert await ws.frame() == OPEN
    raw = await client.raw_websocket()
    polling = await client.open_xhr()
    waiting = asyncio.ensure_future(client.xhr_frame(polling))
    idle = await client.open_xhr()  # no receiver attached at shutdown

    sessions = [await recorder.next_session() for _ in range(7)]
    while not all(s.receiver_attached for s in sessions if s.id != idle):
        await asyncio.sleep(0.005)

    stopping = shut_down(served)

    # Every client reads at once, as real clients would (a websocket client
    # must answer the close handshake before the server gives up on it).
    async def stream_ends(transport: str) -> None:
        stream = streams[transport]
        assert await stream.next_non_heartbeat() == GOING_AWAY, transport
        assert await stream.ended(), transport

    async def websocket_ends() -> None:
        assert await ws.next_non_heartbeat() == GOING_AWAY
        assert await ws.frame() is None

    async def raw_websocket_ends() -> None:
        msg = await bounded(raw.receive())
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert raw.close_code == 1001

    async def poll_ends() -> None:
        assert await bounded(waiting) == GOING_AWAY

    await bounded(
        asyncio.gather(*(stream_ends(t) for t in streams), websocket_ends(), raw_websocket_ends(), poll_ends())
    )
    await bounded(stopping)

    for session in sessions:
        assert session.closed
        assert session.close_code == 1001
    # Every handler saw the end of its session and returned.
    ended = {id(await recorder.next_ended()) for _ in sessions}
    assert ended == {id(s) for s in sessions}


async def test_shutdown_with_nothing_open(serve: Serve) -> None:
    served = await serve()
    await bounded(shut_down(served))


async def test_handlers_that_ignore_the_close_are_cancelled(serve: Serve) -> None:
    cancelled = asyncio.Event()

    async def deaf(session: Session) -> None:
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    served = await serve(deaf, close_timeout=UNIT)
    await served.client.open_xhr()
    await bounded(shut_down(served))
    await bounded(cancelled.wait())


async def test_close_all_closes_every_session_of_the_endpoint(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    first = await served.client.open_xhr()
    second = new_id()
    async with await served.client.websocket(second) as ws:
        assert await ws.frame() == OPEN
        await recorder.next_session()
        await recorder.next_session()
        await served.endpoint.close_all(4000, "maintenance")
        assert await ws.frame() == closing(4000, "maintenance")
    assert await served.client.xhr_frame(first) == closing(4000, "maintenance")
    assert len(served.endpoint.sessions) == 0
