"""The session layer seen from both ends: lifecycle, heartbeats, expiry, interruption, metadata."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from sockjs_client import (
    HEARTBEAT,
    OPEN,
    UNIT,
    Recorder,
    Serve,
    bounded,
    closing,
    messages,
    new_id,
    server_decides,
    still_pending,
)
from sockjs_server import Session, SessionClosed

BEAT = 2 * UNIT  # a short heartbeat_delay
LINGER = 3 * UNIT  # a short disconnect_delay


async def attached(session: Session) -> None:
    """Wait until a receiving request is attached to ``session`` (its client is waiting)."""

    async def poll() -> None:
        while not session.receiver_attached:
            await asyncio.sleep(0.005)

    await bounded(poll())


# -- opening and receiving ----------------------------------------------------------------------


async def test_one_handler_per_session_whatever_the_transport(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client
    session_id = await client.open_xhr()
    app_session = await recorder.next_session()
    assert app_session.id == session_id
    assert app_session.transport == "xhr-polling"
    # Later requests of the same session, over other transports, reach the same handler.
    assert (await client.xhr_send(session_id, "one")).status == 204
    assert await client.jsonp_frame(session_id) == messages("one")
    assert (await client.jsonp_send(session_id, "two")).status == 200
    assert await client.xhr_frame(session_id) == messages("two")
    assert recorder.received == ["one", "two"]
    assert len(recorder.sessions) == 1


async def test_messages_sent_before_the_first_poll_follow_the_open_frame(serve: Serve) -> None:
    async def greeter(session: Session) -> None:
        await session.send("hello")
        await session.send("world")
        await session.wait_closed()

    served = await serve(greeter)
    session_id = new_id()
    assert await served.client.xhr_frame(session_id) == OPEN
    assert await served.client.xhr_frame(session_id) == messages("hello", "world")


async def test_second_poll_while_one_waits_gets_2010(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client
    session_id = await client.open_xhr()
    app_session = await recorder.next_session()
    waiting = asyncio.ensure_future(client.xhr(session_id))
    await attached(app_session)
    assert await client.xhr_frame(session_id) == closing(2010, "Another connection still open")
    # The waiting poll is unaffected and gets the next message.
    assert (await client.xhr_send(session_id, "x")).status == 204
    reply = await bounded(waiting)
    assert reply.body == b'a["x"]\n'
    assert not app_session.closed


# -- closing ------------------------------------------------------------------------------------


async def test_handler_return_closes_with_3000(serve: Serve) -> None:
    async def quick(session: Session) -> None:
        await session.send("bye")

    served = await serve(quick)
    session_id = await served.client.open_xhr()
    assert await served.client.xhr_frame(session_id) == messages("bye")
    assert await served.client.xhr_frame(session_id) == closing(3000, "Go away!")


async def test_handler_exception_closes_with_1011(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(session: Session) -> None:
        raise RuntimeError("boom")

    served = await serve(broken)
    session_id = await served.client.open_xhr()
    assert await served.client.xhr_frame(session_id) == closing(1011, "Internal server error")
    assert "boom" in caplog.text
    # Not a word of the traceback reaches the client, and the server carries on.
    assert await served.client.xhr_frame(new_id()) == OPEN


async def test_application_close_code_and_reason(serve: Serve) -> None:
    async def closer(session: Session) -> None:
        await session.send("last words")
        await session.close(4001, "done here")
        assert session.closed
        assert (session.close_code, session.close_reason) == (4001, "done here")

    served = await serve(closer)
    session_id = new_id()
    async with await served.client.stream(session_id, "xhr_streaming") as stream:
        assert await stream.frame() == OPEN
        assert await stream.frame() == messages("last words")
        assert await stream.frame() == closing(4001, "done here")
        assert await stream.ended()


async def test_receive_after_close_raises_and_send_is_ignored(serve: Serve) -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(session: Session) -> None:
        await session.close()
        await session.send("ignored")
        session.send_nowait("ignored too")
        try:
            await session.receive()
        except SessionClosed:
            outcome.set_result("closed")
        await session.wait_closed()

    served = await serve(handler)
    session_id = await served.client.open_xhr()
    assert await served.client.xhr_frame(session_id) == closing(3000, "Go away!")
    assert await bounded(outcome) == "closed"


async def test_messages_must_be_text(serve: Serve) -> None:
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handler(session: Session) -> None:
        try:
            await session.send(b"bytes")  # type: ignore[arg-type]
        except TypeError as error:
            outcome.set_result(error)
        else:
            outcome.set_result(None)

    served = await serve(handler)
    await served.client.open_xhr()
    assert isinstance(await bounded(outcome), TypeError)


async def test_handler_lingering_after_its_client_left_is_cancelled(serve: Serve) -> None:
    cancelled = asyncio.Event()

    async def stubborn(session: Session) -> None:
        try:
            await asyncio.sleep(1000)  # never reads, never notices the close
        except asyncio.CancelledError:
            cancelled.set()
            raise

    served = await serve(stubborn, close_timeout=UNIT, disconnect_delay=LINGER)
    await served.client.open_xhr()  # and never come back: the session expires
    await bounded(cancelled.wait())


async def test_handler_lingering_after_closing_its_own_session_is_cancelled(serve: Serve) -> None:
    cancelled = asyncio.Event()

    async def stubborn(session: Session) -> None:
        await session.close()
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    served = await serve(stubborn, close_timeout=UNIT)
    await served.client.open_xhr()
    # close_timeout is one unit; a generous multiple of it is the hang guard.
    await bounded(cancelled.wait(), 20 * UNIT)


async def test_closed_session_leaves_endpoint_sessions(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    await served.client.open_xhr()
    app_session = await recorder.next_session()
    assert app_session in served.endpoint.sessions
    assert len(served.endpoint.sessions) == 1
    await app_session.close()
    assert app_session not in served.endpoint.sessions
    assert len(served.endpoint.sessions) == 0


# -- heartbeats ---------------------------------------------------------------------------------


async def test_waiting_poll_gets_a_heartbeat(serve: Serve) -> None:
    served = await serve(heartbeat_delay=BEAT)
    session_id = await served.client.open_xhr()
    assert await served.client.xhr_frame(session_id) == HEARTBEAT


@pytest.mark.parametrize("transport", ["xhr_streaming", "eventsource", "htmlfile"])
async def test_streams_get_repeated_heartbeats(serve: Serve, transport: str) -> None:
    served = await serve(heartbeat_delay=BEAT)
    session_id = new_id()
    async with await served.client.stream(session_id, transport) as stream:
        assert await stream.frame() == OPEN
        for _ in range(3):
            assert await stream.frame() == HEARTBEAT
        # A heartbeat does not disturb messages.
        assert (await served.client.xhr_send(session_id, "x")).status == 204
        assert await stream.next_non_heartbeat() == messages("x")


async def test_websocket_gets_heartbeats(serve: Serve) -> None:
    served = await serve(heartbeat_delay=BEAT)
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        assert await ws.frame() == HEARTBEAT
        assert await ws.frame() == HEARTBEAT


async def test_raw_websocket_gets_pings_instead(serve: Serve, layer: str) -> None:
    server_decides(
        layer, uvicorn="websocket pings are its --ws-ping-interval, not per endpoint",
        granian="it sends no websocket pings and has no setting for them",
        builtin="websocket pings are its ping_interval (Limits), not per endpoint: test_builtin_server.py",
    )  # fmt: skip
    served = await serve(heartbeat_delay=BEAT)
    ws = await served.client.raw_websocket(autoping=False)
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.PING
    await ws.close()


async def test_no_heartbeat_without_a_receiver(serve: Serve) -> None:
    served = await serve(heartbeat_delay=BEAT, disconnect_delay=100 * UNIT)
    session_id = await served.client.open_xhr()
    await asyncio.sleep(3 * BEAT)
    assert (await served.client.xhr_send(session_id, "x")).status == 204
    # What waited meanwhile is the message only: no heartbeats piled up.
    assert await served.client.xhr_frame(session_id) == messages("x")


# -- expiry -------------------------------------------------------------------------------------


async def test_session_without_receiver_expires(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, disconnect_delay=LINGER)
    session_id = await served.client.open_xhr()
    app_session = await recorder.next_session()
    await bounded(app_session.wait_closed())
    assert await recorder.next_ended() is app_session
    assert (await served.client.xhr_send(session_id, "x")).status == 404
    # The id is free again: a new poll opens a new session.
    assert await served.client.xhr_frame(session_id) == OPEN
    assert await recorder.next_session() is not app_session


async def test_closed_session_expires_too(serve: Serve) -> None:
    async def closer(session: Session) -> None:
        await session.close()

    served = await serve(closer, disconnect_delay=LINGER)
    session_id = await served.client.open_xhr()
    assert await served.client.xhr_frame(session_id) == closing(3000, "Go away!")

    async def until_new() -> None:
        # Every poll answered with the close frame restarts the clock, so leave
        # the session alone for longer than disconnect_delay between polls.
        while True:
            await asyncio.sleep(2 * LINGER)
            frame = await served.client.xhr_frame(session_id)
            if frame == OPEN:
                return
            assert frame == closing(3000, "Go away!")

    await bounded(until_new())


async def test_no_expiry_while_a_poll_waits(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, heartbeat_delay=3 * LINGER, disconnect_delay=LINGER)
    session_id = await served.client.open_xhr()
    app_session = await recorder.next_session()
    assert await served.client.xhr_frame(session_id) == HEARTBEAT
    assert not app_session.closed
    assert (await served.client.xhr_send(session_id, "x")).status == 204


async def test_expiry_is_per_session(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, heartbeat_delay=BEAT, disconnect_delay=LINGER)
    idle = await served.client.open_xhr()
    idle_session = await recorder.next_session()
    busy = new_id()
    async with await served.client.stream(busy, "xhr_streaming") as stream:
        assert await stream.frame() == OPEN
        busy_session = await recorder.next_session()
        await bounded(idle_session.wait_closed())
        assert not busy_session.closed
        assert (await served.client.xhr_send(busy, "alive")).status == 204
        assert await stream.next_non_heartbeat() == messages("alive")
    assert (await served.client.xhr_send(idle, "x")).status == 404


# -- interrupted receivers -------------------------------------------------------------------------


@pytest.mark.parametrize("cancel_handlers", [False, True])
async def test_aborted_poll_closes_the_session_with_1002(serve: Serve, cancel_handlers: bool) -> None:
    recorder = Recorder()
    served = await serve(recorder, cancel_handlers=cancel_handlers)
    client = served.client
    session_id = await client.open_xhr()
    app_session = await recorder.next_session()
    waiting = asyncio.ensure_future(client.xhr(session_id))
    await attached(app_session)
    assert await client.xhr_frame(session_id) == closing(2010, "Another connection still open")
    waiting.cancel()  # the client goes away mid-poll
    await bounded(app_session.wait_closed())
    assert (app_session.close_code, app_session.close_reason) == (1002, "Connection interrupted")
    assert await client.xhr_frame(session_id) == closing(1002, "Connection interrupted")


@pytest.mark.parametrize("cancel_handlers", [False, True])
async def test_aborted_stream_closes_the_session_with_1002(serve: Serve, cancel_handlers: bool) -> None:
    recorder = Recorder()
    served = await serve(recorder, cancel_handlers=cancel_handlers)
    session_id = new_id()
    stream = await served.client.stream(session_id, "eventsource")
    assert await stream.frame() == OPEN
    app_session = await recorder.next_session()
    stream.close()
    await bounded(app_session.wait_closed())
    assert app_session.close_code == 1002
    async with await served.client.stream(session_id, "eventsource") as again:
        assert await again.frame() == closing(1002, "Connection interrupted")


async def test_stream_ended_by_the_server_is_not_an_interruption(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, response_limit=10)
    session_id = new_id()
    async with await served.client.stream(session_id, "xhr_streaming") as stream:
        assert await stream.frame() == OPEN
        assert (await served.client.xhr_send(session_id, "0123456789")).status == 204
        assert await stream.frame() == messages("0123456789")
        assert await stream.ended()
    app_session = await recorder.next_session()
    assert not app_session.closed
    assert (await served.client.xhr_send(session_id, "more")).status == 204
    assert await served.client.xhr_frame(session_id) == messages("more")


async def test_other_sessions_survive_an_interruption(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    survivor = await served.client.open_xhr()
    victim = new_id()
    stream = await served.client.stream(victim, "xhr_streaming")
    assert await stream.frame() == OPEN
    await recorder.next_session()
    victim_session = await recorder.next_session()
    stream.close()
    await bounded(victim_session.wait_closed())
    assert (await served.client.xhr_send(survivor, "ok")).status == 204
    assert await served.client.xhr_frame(survivor) == messages("ok")


# -- what the application learns about its client -----------------------------------------------


@pytest.mark.parametrize("transport", ["xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp", "websocket"])
async def test_session_metadata_comes_from_the_opening_request(serve: Serve, transport: str) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client
    session_id = new_id()
    headers = {"X-Token": "secret-1", "Cookie": "auth=abc; theme=dark", "Origin": "https://app.example"}
    if transport == "websocket":
        ws = await bounded(client.http.ws_connect(client.url(session_id, "websocket") + "?room=7", headers=headers))
        await ws.receive()
    elif transport in ("xhr", "xhr_streaming"):
        response = await client.http.post(client.url(session_id, transport) + "?room=7", headers=headers)
    else:
        response = await client.http.get(client.url(session_id, transport) + "?room=7&c=cb", headers=headers)
    app_session = await recorder.next_session()
    assert app_session.id == session_id
    assert app_session.transport == {
        "xhr": "xhr-polling",
        "xhr_streaming": "xhr-streaming",
        "jsonp": "jsonp-polling",
    }.get(transport, transport)
    assert app_session.headers["X-Token"] == "secret-1"
    assert app_session.headers["Origin"] == "https://app.example"
    assert dict(app_session.cookies) == {"auth": "abc", "theme": "dark"}
    assert app_session.query["room"] == "7"
    assert app_session.remote == "127.0.0.1"
    assert app_session.endpoint is served.endpoint
    if transport == "websocket":
        await ws.close()
    else:
        response.close()


async def test_later_requests_do_not_change_the_metadata(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    session_id = new_id()
    await served.client.xhr(session_id, headers={"X-Token": "first"})
    app_session = await recorder.next_session()
    await served.client.xhr_send(session_id, "x", headers={"X-Token": "second"})
    await served.client.xhr(session_id, headers={"X-Token": "third"})
    assert app_session.headers["X-Token"] == "first"


async def test_sending_request_does_not_open_a_session(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    assert (await served.client.xhr_send(new_id(), "x")).status == 404
    assert (await served.client.jsonp_send(new_id(), "x")).status == 404
    assert recorder.sessions == []


async def test_waiting_poll_is_not_answered_early(serve: Serve) -> None:
    served = await serve(heartbeat_delay=100 * UNIT)
    session_id = await served.client.open_xhr()
    waiting = asyncio.ensure_future(served.client.xhr(session_id))
    assert await still_pending(waiting)
    assert (await served.client.xhr_send(session_id, "now")).status == 204
    assert (await bounded(waiting)).body == b'a["now"]\n'
