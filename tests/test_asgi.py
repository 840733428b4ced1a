"""The ASGI layer mounted the way applications mount it: Starlette and FastAPI, and our router,
on uvicorn and on granian.

The protocol itself is tested on every layer by the other modules (the ``layer`` fixture);
here: mount paths (``root_path``), the framework's lifespan, what lies outside the endpoint,
the servers' own start and stop, and ``--server granian`` on the command line.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import BaseTestServer

from sockjs_client import OPEN, UNIT, RawHTTP, Serve, SockJSClient, bounded, closing, messages, new_id, raw_ws_handshake
from sockjs_server import Options, Session

starlette = pytest.importorskip("starlette")

from asgi_server import BuiltinServer, GranianServer, UvicornServer  # noqa: E402
from sockjs_server.asgi import SockJSApp, SockJSRouter  # noqa: E402

AsgiServer = Callable[[Any], BaseTestServer]


@pytest.fixture(params=["uvicorn", "granian", "builtin"])
def asgi_server(request: pytest.FixtureRequest) -> AsgiServer:
    """Makes the aiohttp test server that serves an ASGI app on uvicorn, granian or the built-in server."""
    if request.param == "builtin":
        return BuiltinServer
    pytest.importorskip(request.param)
    return UvicornServer if request.param == "uvicorn" else GranianServer


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


async def test_mounted_in_starlette_with_its_lifespan(aiohttp_client: Any, asgi_server: AsgiServer) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    sockjs = SockJSApp(echo)
    app = Starlette(routes=[Route("/", home), Mount("/chat/room", sockjs)], lifespan=sockjs.lifespan)
    http = await aiohttp_client(asgi_server(app))
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


async def test_fastapi_lifespan_sends_close_frames(aiohttp_client: Any, asgi_server: AsgiServer) -> None:
    fastapi = pytest.importorskip("fastapi")
    sockjs = SockJSApp(echo)
    app = fastapi.FastAPI(lifespan=sockjs.lifespan)
    app.mount("/echo", sockjs)
    server = asgi_server(app)
    http = await aiohttp_client(server)
    client = SockJSClient(http, "/echo")
    ws = await client.websocket(new_id())
    assert await ws.frame() == OPEN
    await sockjs.stop()  # what the lifespan's exit does when the server stops
    assert await ws.next_non_heartbeat() == closing(1001, "Server shutting down")
    await ws.close()


async def test_router_answers_404_outside_its_endpoints(aiohttp_client: Any, asgi_server: AsgiServer) -> None:
    router = SockJSRouter({"/echo": SockJSApp(echo), "/echo_more": SockJSApp(echo, options=Options(websocket=False))})
    http = await aiohttp_client(asgi_server(router))
    assert (await http.get("/nowhere")).status == 404
    assert (await http.get("/echo/info")).status == 200
    info = await (await http.get("/echo_more/info")).json()
    assert info["websocket"] is False  # the longer prefix wins
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect("/nowhere/websocket")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/echo_more/000/x/websocket")
    assert refused.value.status == 404


async def test_an_idle_poll_whose_client_left_is_noticed(aiohttp_client: Any, asgi_server: AsgiServer) -> None:
    """ASGI has no connection to look at: the ``http.disconnect`` event ends the waiting poll."""
    recorder_sessions: list[Session] = []

    async def record(session: Session) -> None:
        recorder_sessions.append(session)
        await session.wait_closed()

    sockjs = SockJSApp(record, options=Options(disconnect_delay=0.2))
    http = await aiohttp_client(asgi_server(SockJSRouter({"/r": sockjs})))
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


async def test_stopping_the_server_sends_close_frames_first(aiohttp_client: Any, asgi_server: AsgiServer) -> None:
    """uvicorn and granian wait for open responses before the lifespan shutdown, and granian drops
    websockets without a close frame: our servers close the sessions before that."""
    sockjs = SockJSApp(echo, options=Options(heartbeat_delay=1000))
    server = asgi_server(SockJSRouter({"/echo": sockjs}))
    http = await aiohttp_client(server)
    client = SockJSClient(http, "/echo")
    ws = await client.websocket(new_id())
    assert await ws.frame() == OPEN
    stream = await http.post(f"/echo/000/{new_id()}/xhr_streaming")
    assert (await bounded(stream.content.readline())).startswith(b"h" * 2048)
    assert await bounded(stream.content.readline()) == b"o\n"
    stopping = asyncio.ensure_future(server.close())
    assert await ws.next_non_heartbeat() == closing(1001, "Server shutting down")
    assert await bounded(stream.content.read()) == b'c[1001,"Server shutting down"]\n'
    await bounded(stopping)
    await ws.close()
    assert not sockjs.endpoint.sessions


@pytest.mark.parametrize("stalled", ["websocket", "raw websocket"])
async def test_a_stalled_websocket_client_holds_up_no_other_session(serve: Serve, stalled: str) -> None:
    """An ASGI send waits while the server's buffer for a client that stopped reading is full
    (granian's holds about 3 MB), aiohttp's once it is above its high-water mark; nothing
    else may wait behind it, a broadcast neither."""
    sent = 0

    async def flood_or_listen(session: Session) -> None:
        nonlocal sent
        if session.id == "stalled" or session.transport == "websocket-raw":
            while not session.closed:
                await session.send("f" * 10_000)
                sent += 1
        await session.wait_closed()

    served = await serve(flood_or_listen, send_timeout=1000 * UNIT, heartbeat_delay=1000 * UNIT)
    path = served.client.url("stalled", "websocket") if stalled == "websocket" else served.client.prefix + "/websocket"
    async with await RawHTTP.connect(served.host, served.port) as conn:
        conn.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert (await raw_ws_handshake(conn, path)).status == 101
        conn.writer.transport.pause_reading()  # type: ignore[attr-defined]
        before = -1
        while sent != before:  # until the flood waits (every buffer on the way is full)
            before = sent
            await asyncio.sleep(3 * UNIT)
        async with await served.client.websocket(new_id()) as ws:
            assert await bounded(ws.frame(), 30 * UNIT) == OPEN
            for i in range(3):
                await served.endpoint.broadcast(f"b{i}")
                assert await bounded(ws.next_non_heartbeat(), 30 * UNIT) == messages(f"b{i}")
        assert sent == before  # the stalled client still took nothing


# -- --server granian on the command line ---------------------------------------------------------


async def test_echo_on_granian_serves_every_kind_of_request() -> None:
    pytest.importorskip("granian")
    from test_cli import base_of, start_server, stop

    process, lines = await start_server(["echo", "--port", "0", "--server", "granian", "--no-session-log"], 1)
    try:
        assert re.fullmatch(r"SockJS echo at http://127\.0\.0\.1:\d+/echo", lines[0]), lines
        base = base_of(lines[0]) + "/echo"
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as response:
                assert await response.text() == "Welcome to SockJS!\n"
            async with http.post(base + "/0/cli/xhr") as response:
                assert await response.text() == "o\n"
            async with http.post(base + "/0/cli/xhr_send", data=b'["hi"]') as response:
                assert response.status == 204
            async with http.post(base + "/0/cli/xhr") as response:
                assert await response.text() == 'a["hi"]\n'
            async with http.ws_connect(base + "/0/ws/websocket") as ws:
                assert await bounded(ws.receive_str()) == "o"
                await ws.send_str('["ws"]')
                assert await bounded(ws.receive_str()) == 'a["ws"]'
                process.send_signal(signal.SIGTERM)
                assert await bounded(ws.receive_str()) == 'c[1001,"Server shutting down"]'
    finally:
        returncode, err = await stop(process)
    assert returncode == 0, err
    assert "Traceback" not in err and "experimental" not in err


def test_server_granian_without_granian_is_one_line() -> None:
    code = "import sys; sys.modules['granian'] = None; from sockjs_server.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "echo", "--port", "0", "--server", "granian"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        "sockjs-server echo: error: --server granian needs granian: install the granian extra: "
        "bash .ci/venv granian in a checkout, or pip install -e '.[granian]' from it"
    ]
