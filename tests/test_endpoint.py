"""Mounting endpoints: isolation, sub-applications, broadcast, the sessions view, misuse."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sockjs_client import (
    OPEN,
    AppServer,
    Recorder,
    Serve,
    SockJSClient,
    aiohttp_only,
    bounded,
    closing,
    echo,
    messages,
    new_id,
    reply_of,
)

from sockjs_server import ENDPOINTS, Endpoint, Options, Session, add_endpoint
from sockjs_server.core.framing import encode_message


async def test_endpoints_of_one_app_are_isolated(aiohttp_client: Any) -> None:
    app = web.Application()
    one, two = Recorder(), Recorder()
    first = add_endpoint(app, "/one", one)
    second = add_endpoint(app, "/two", two, options=Options(cookie_needed=True))
    http = await aiohttp_client(AppServer(app))
    a, b = SockJSClient(http, "/one"), SockJSClient(http, "/two")
    session_id = new_id()
    # The same session id on two endpoints is two sessions.
    assert await a.xhr_frame(session_id) == OPEN
    assert await b.xhr_frame(session_id) == OPEN
    assert (await a.xhr_send(session_id, "for one")).status == 204
    assert await a.xhr_frame(session_id) == messages("for one")
    assert one.received == ["for one"] and two.received == []
    # Options belong to their endpoint.
    assert (await a.xhr(new_id())).header("Set-Cookie") is None
    assert (await b.xhr(new_id())).header("Set-Cookie") is not None
    assert app[ENDPOINTS] == [first, second]
    assert len(first.sessions) == 2 and len(second.sessions) == 2
    await first.close_all()
    assert len(first.sessions) == 0 and len(second.sessions) == 2


async def test_endpoint_in_a_sub_application(aiohttp_client: Any) -> None:
    root = web.Application()
    sub = web.Application()
    endpoint = add_endpoint(sub, "/echo", echo)
    root.add_subapp("/api/v1", sub)
    http = await aiohttp_client(AppServer(root))
    client = SockJSClient(http, "/api/v1/echo")
    assert (await reply_of(await http.get("/api/v1/echo"))).body == b"Welcome to SockJS!\n"
    assert (await reply_of(await http.get("/api/v1/echo/info"))).status == 200
    session = await client.open_xhr()
    assert (await client.xhr_send(session, "deep")).status == 204
    assert await client.xhr_frame(session) == messages("deep")
    async with await client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
    assert sub[ENDPOINTS] == [endpoint]


async def test_endpoint_at_the_root_and_deep_prefixes(aiohttp_client: Any) -> None:
    app = web.Application()
    add_endpoint(app, "/", echo)
    add_endpoint(app, "/a/b/c/d/echo", echo)
    http = await aiohttp_client(AppServer(app))
    assert (await reply_of(await http.get("/"))).body == b"Welcome to SockJS!\n"
    assert await SockJSClient(http, "").xhr_frame(new_id()) == OPEN
    deep = SockJSClient(http, "/a/b/c/d/echo")
    assert (await reply_of(await http.get("/a/b/c/d/echo"))).status == 200
    assert await deep.xhr_frame(new_id()) == OPEN


async def test_endpoint_next_to_other_routes(aiohttp_client: Any) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/hello", hello)
    add_endpoint(app, "/echo", echo)
    http = await aiohttp_client(AppServer(app))
    assert (await reply_of(await http.get("/hello"))).text == "hello"
    assert (await reply_of(await http.get("/echo"))).status == 200


# -- broadcast ------------------------------------------------------------------------------------


async def test_broadcast_reaches_every_open_session_once(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client
    polling = await client.open_xhr()
    async with await client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        raw = await client.raw_websocket()
        excluded = await client.open_xhr()
        sessions = [await recorder.next_session() for _ in range(4)]
        excluded_session = sessions[3]
        text = 'news "today" \u2028 é'
        await served.endpoint.broadcast(text, exclude={excluded_session})
        assert await client.xhr_frame(polling) == messages(text)
        assert await ws.frame() == messages(text)
        assert (await client.xhr_send(excluded, "own")).status == 204
        assert await client.xhr_frame(excluded) == messages("own")
        # The raw websocket gets the text itself, unframed.
        assert await bounded(raw.receive_str()) == text
        served.endpoint.broadcast_nowait("plain")
        assert await bounded(raw.receive_str()) == "plain"
        await raw.close()


async def test_broadcast_counts_once_per_session_reached(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client
    polling = [await client.open_xhr(), await client.open_xhr()]
    excluded = await client.open_xhr()
    raw = await client.raw_websocket()
    sessions = [await recorder.next_session() for _ in range(4)]
    excluded_session = next(session for session in sessions if session.id == excluded)
    counters = served.endpoint.counters
    messages_out, bytes_out = counters.messages_out, counters.bytes_out
    text = 'news "today" é'
    served.endpoint.broadcast_nowait(text, exclude={excluded_session})
    # Two polling sessions get it JSON-encoded, the raw websocket as it is.
    assert counters.messages_out - messages_out == 3
    assert counters.bytes_out - bytes_out == 2 * len(encode_message(text)) + len(text)
    # It waits in the polling sessions' queues until they poll.
    assert counters.queued_bytes_high_water >= len(encode_message(text))
    for session_id in polling:
        assert await client.xhr_frame(session_id) == messages(text)
    assert await bounded(raw.receive_str()) == text
    await raw.close()


async def test_broadcast_skips_closed_sessions(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    gone = await served.client.open_xhr()
    gone_session = await recorder.next_session()
    await gone_session.close()
    await served.endpoint.broadcast("late")
    assert await served.client.xhr_frame(gone) == closing(3000, "Go away!")


async def test_broadcast_from_a_handler(serve: Serve) -> None:
    endpoints: list[Endpoint] = []

    async def relay(session: Session) -> None:
        async for message in session:
            await endpoints[0].broadcast(message)

    served = await serve(relay)
    endpoints.append(served.endpoint)
    one, two = await served.client.open_xhr(), await served.client.open_xhr()
    assert (await served.client.xhr_send(one, "to all")).status == 204
    assert await served.client.xhr_frame(one) == messages("to all")
    assert await served.client.xhr_frame(two) == messages("to all")


# -- the sessions view ------------------------------------------------------------------------------


async def test_sessions_view_is_live_and_safe_to_iterate(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    view = served.endpoint.sessions
    assert len(view) == 0
    ids = [await served.client.open_xhr() for _ in range(3)]
    assert len(view) == 3
    assert sorted(s.id for s in view) == sorted(ids)
    # Closing sessions while iterating is fine.
    for session in view:
        await session.close()
    assert len(view) == 0
    assert all(s not in view for s in recorder.sessions)


async def test_endpoint_repr_and_attributes(serve: Serve) -> None:
    served = await serve(prefix="/chat", heartbeat_delay=7.0)
    endpoint = served.endpoint
    assert endpoint.prefix == "/chat"
    assert endpoint.name == "/chat"
    assert endpoint.options.heartbeat_delay == 7.0
    assert "/chat" in repr(endpoint)


# -- misuse ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["echo", "/echo/", "", "//"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        add_endpoint(web.Application(), prefix, echo)


def test_handler_must_be_callable() -> None:
    with pytest.raises(TypeError):
        add_endpoint(web.Application(), "/echo", "not a handler")  # type: ignore[arg-type]


def test_same_prefix_twice() -> None:
    app = web.Application()
    add_endpoint(app, "/echo", echo)
    with pytest.raises(ValueError, match="already"):
        add_endpoint(app, "/echo", echo)


async def test_no_endpoint_on_a_running_app(serve: Serve, layer: str) -> None:
    aiohttp_only(layer, "add_endpoint on a running aiohttp app")
    served = await serve()
    app = served.http.app
    assert app is not None
    with pytest.raises(RuntimeError):
        add_endpoint(app, "/late", echo)


def test_options_must_be_options() -> None:
    with pytest.raises((TypeError, AttributeError)):
        add_endpoint(web.Application(), "/echo", echo, options={"heartbeat_delay": 1})  # type: ignore[arg-type]


async def test_handler_gets_the_session_and_can_await_closure(serve: Serve) -> None:
    seen: asyncio.Future[Session] = asyncio.get_running_loop().create_future()

    async def handler(session: Session) -> None:
        seen.set_result(session)
        await session.wait_closed()

    served = await serve(handler)
    session_id = await served.client.open_xhr()
    session = await bounded(seen)
    assert isinstance(session, Session)
    assert session.id == session_id
    assert repr(session).startswith("<Session")
    await session.close()
    assert await served.client.xhr_frame(session_id) == closing(3000, "Go away!")


async def test_unknown_session_url_segment_is_404(serve: Serve) -> None:
    served = await serve()
    response = await served.http.post(f"/echo/000/{new_id()}/nope")
    assert response.status == 404
    response.close()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await bounded(served.http.ws_connect(f"/echo/000/{new_id()}/websocketx"))
