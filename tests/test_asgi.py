"""The ASGI layer mounted the way applications mount it: Starlette and FastAPI, and our router.

The protocol itself is tested on both layers by the other modules (the ``layer`` fixture);
here: mount paths (``root_path``), the framework's lifespan, and what lies outside the endpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from sockjs_client import OPEN, SockJSClient, bounded, closing, messages, new_id
from sockjs_server import Options, Session

pytest.importorskip("uvicorn")
starlette = pytest.importorskip("starlette")

from asgi_server import UvicornServer  # noqa: E402
from sockjs_server.asgi import SockJSApp, SockJSRouter  # noqa: E402


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


async def test_mounted_in_starlette_with_its_lifespan(aiohttp_client: Any) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    sockjs = SockJSApp(echo)
    app = Starlette(routes=[Route("/", home), Mount("/chat/room", sockjs)], lifespan=sockjs.lifespan)
    http = await aiohttp_client(UvicornServer(app))
    client = SockJSClient(http, "/chat/room")
    assert (await (await http.get("/")).text()) == "home"
    greeting = await http.get("/chat/room/")
    assert await greeting.text() == "Welcome to SockJS!\n"
    session_id = new_id()
    assert await client.xhr_frame(session_id) == OPEN
    assert (await client.xhr_send(session_id, "hello")).status == 204
    assert await client.xhr_frame(session_id) == messages("hello")
    async with await client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send("over ws")
        assert await ws.next_non_heartbeat() == messages("over ws")
    assert len(sockjs.endpoint.sessions) == 1  # the polling one; the websocket one ended


async def test_fastapi_lifespan_sends_close_frames(aiohttp_client: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    sockjs = SockJSApp(echo)
    app = fastapi.FastAPI(lifespan=sockjs.lifespan)
    app.mount("/echo", sockjs)
    server = UvicornServer(app)
    http = await aiohttp_client(server)
    client = SockJSClient(http, "/echo")
    ws = await client.websocket(new_id())
    assert await ws.frame() == OPEN
    await sockjs.stop()  # what the lifespan's exit does when the server stops
    assert await ws.next_non_heartbeat() == closing(1001, "Server shutting down")
    await ws.close()


async def test_router_answers_404_outside_its_endpoints(aiohttp_client: Any) -> None:
    router = SockJSRouter({"/echo": SockJSApp(echo), "/echo_more": SockJSApp(echo, options=Options(websocket=False))})
    http = await aiohttp_client(UvicornServer(router))
    assert (await http.get("/nowhere")).status == 404
    assert (await http.get("/echo/info")).status == 200
    info = await (await http.get("/echo_more/info")).json()
    assert info["websocket"] is False  # the longer prefix wins
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect("/nowhere/websocket")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/echo_more/000/x/websocket")
    assert refused.value.status == 404


async def test_an_idle_poll_whose_client_left_is_noticed(aiohttp_client: Any) -> None:
    """ASGI has no connection to look at: the ``http.disconnect`` event ends the waiting poll."""
    recorder_sessions: list[Session] = []

    async def record(session: Session) -> None:
        recorder_sessions.append(session)
        await session.wait_closed()

    sockjs = SockJSApp(record, options=Options(disconnect_delay=0.2))
    http = await aiohttp_client(UvicornServer(SockJSRouter({"/r": sockjs})))
    client = SockJSClient(http, "/r")
    session_id = new_id()
    assert await client.xhr_frame(session_id) == OPEN
    async with aiohttp.ClientSession() as other:
        poll = other.post(http.make_url(f"/r/000/{session_id}/xhr"))
        task = asyncio.ensure_future(poll.__aenter__())
        while not recorder_sessions or not recorder_sessions[0].receiver_attached:
            await asyncio.sleep(0.01)
        task.cancel()
    await bounded(recorder_sessions[0].wait_closed())
