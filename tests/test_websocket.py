"""The websocket transports: SockJS-framed ``/<server>/<session>/websocket`` and raw ``/websocket``."""

from __future__ import annotations

import asyncio
import base64
import hashlib

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_client import (
    OPEN,
    UNIT,
    WS_ACCEPT,
    WS_KEY,
    RawHTTP,
    Recorder,
    Serve,
    SockJSClient,
    bounded,
    closing,
    messages,
    new_id,
    raw_ws_handshake,
    read_ws_frame,
    reply_of,
    server_decides,
    ws_frame,
)
from sockjs_server import Endpoint, Session

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


# -- refused handshakes -------------------------------------------------------------------------


async def test_plain_get_is_400(testserver: TestClient) -> None:
    reply = await reply_of(await testserver.get("/echo/0/0/websocket"))
    assert reply.status == 400


async def test_connection_header_without_upgrade_is_400(testserver: TestClient) -> None:
    reply = await reply_of(
        await testserver.get("/echo/0/0/websocket", headers={"Upgrade": "WebSocket", "Connection": "close"})
    )
    assert reply.status == 400


@pytest.mark.parametrize("headers", [{"Upgrade": "WebSocket", "Connection": "Upgrade"}, {}])
async def test_post_is_a_bare_405(testserver: TestClient, headers: dict[str, str], layer: str) -> None:
    if headers:
        server_decides(
            layer,
            uvicorn="it hands a POST with Upgrade headers to its websocket library, which answers 405 with a text body of its own",
            granian="it refuses a POST with Upgrade headers with 400 (No \"Sec-WebSocket-Key\" header)",
        )  # fmt: skip
    reply = await reply_of(await testserver.post("/echo/0/0/websocket", headers=headers))
    assert reply.status == 405
    assert reply.header("Allow")
    assert reply.header("Content-Type") is None
    assert reply.body == b""


@pytest.mark.parametrize("path", ["/disabled_websocket_echo/0/0/websocket", "/disabled_websocket_echo/websocket"])
async def test_websocket_refused_where_disabled(testserver: TestClient, path: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await bounded(testserver.ws_connect(path))
    assert info.value.status == 404


async def test_raw_websocket_can_be_disabled_alone(serve: Serve) -> None:
    served = await serve(disabled_transports={"websocket-raw"})
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await served.client.raw_websocket()
    assert info.value.status == 404
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN


@pytest.mark.parametrize("transport", ["xhr", "xhr_send", "jsonp", "eventsource", "htmlfile", "xhr_streaming"])
async def test_upgrade_on_a_non_websocket_url(echo_client: SockJSClient, transport: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await bounded(echo_client.http.ws_connect(echo_client.url(new_id(), transport)))
    assert info.value.status != 101
    # The server carries on serving.
    assert await echo_client.xhr_frame(new_id()) == OPEN


@pytest.mark.parametrize("path", ["/echo/info", "/echo", "/echo/iframe.html"])
async def test_upgrade_on_a_static_url_gets_the_plain_answer(testserver: TestClient, path: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await bounded(testserver.ws_connect(path))
    assert info.value.status == 200


async def test_upgrade_on_a_plain_url_leaves_the_connection_usable(testserver: TestClient, layer: str) -> None:
    server_decides(layer, uvicorn="it closes the connection after a refused upgrade")
    server = testserver.server
    async with await RawHTTP.connect(str(server.host), int(server.port or 0)) as conn:
        head = await raw_ws_handshake(conn, "/echo/000/x/xhr")
        assert head.status == 405
        assert head.header("content-length") == "0"
        head = await conn.request("GET", "/echo")
        assert head.status == 200
        assert await conn.read(19) == b"Welcome to SockJS!\n"


async def test_handshake_headers(testserver: TestClient) -> None:
    server = testserver.server
    async with await RawHTTP.connect(str(server.host), int(server.port or 0)) as conn:
        head = await raw_ws_handshake(conn, f"/echo/000/{new_id()}/websocket", {"Origin": "http://asd"})
        assert head.status == 101
        assert head.header("sec-websocket-accept") == WS_ACCEPT
        assert (head.header("connection") or "").lower() == "upgrade"
        assert (head.header("upgrade") or "").lower() == "websocket"
        assert head.header("content-length") is None
        assert await read_ws_frame(conn) == (TEXT, b"o")


def test_accept_constant_is_rfc_6455() -> None:
    digest = hashlib.sha1((WS_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    assert base64.b64encode(digest).decode() == WS_ACCEPT


# -- origin allow-list ---------------------------------------------------------------------------


async def test_handshake_from_a_foreign_origin_is_403(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, allowed_origins={"https://good.example"})
    for path in (served.client.url(new_id(), "websocket"), "/echo/websocket"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await bounded(served.http.ws_connect(path, headers={"Origin": "https://evil.example"}))
        assert info.value.status == 403
    assert recorder.sessions == []


async def test_handshake_from_an_allowed_origin_or_none(serve: Serve) -> None:
    served = await serve(allowed_origins={"https://good.example"})
    async with await served.client.websocket(new_id(), headers={"Origin": "https://good.example"}) as ws:
        assert await ws.frame() == OPEN
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
    raw = await served.client.raw_websocket(headers={"Origin": "https://good.example"})
    await raw.close()


# -- the framed websocket -----------------------------------------------------------------------


async def test_websocket_echo(echo_client: SockJSClient) -> None:
    async with await echo_client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send("a")
        assert await ws.frame() == messages("a")
        await ws.send("b", "c")
        assert await ws.next_non_heartbeat() == messages("b", "c")


async def test_single_json_string_is_one_message(echo_client: SockJSClient) -> None:
    async with await echo_client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send_raw('"solo"')
        assert await ws.frame() == messages("solo")


async def test_close_frame_then_the_websocket_closes(close_client: SockJSClient) -> None:
    async with await close_client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        assert await ws.frame() == closing(3000, "Go away!")
        assert await ws.frame() is None


async def test_empty_messages_are_ignored(echo_client: SockJSClient) -> None:
    async with await echo_client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send_raw("")
        await ws.send_raw("[]")
        await ws.send("a")
        assert await ws.frame() == messages("a")


@pytest.mark.parametrize("data", ['["a', "{}", "[1]", '["a", null]', "123", "null", '[["a"]]', "x"])
async def test_broken_json_closes_the_websocket(serve: Serve, data: str) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send_raw(data)
        assert await ws.frame() is None
        assert ws.ws.close_code is not None and ws.ws.close_code != 1000
    session = await recorder.next_ended()
    assert session.closed
    assert recorder.received == []


async def test_binary_frames_close_with_1003(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.ws.send_bytes(b'["a"]')
        assert await ws.wait_closed() == 1003
    assert (await recorder.next_ended()).closed
    assert recorder.received == []


async def test_raw_binary_frames_close_with_1003(echo_client: SockJSClient) -> None:
    ws = await echo_client.raw_websocket()
    await ws.send_bytes(b"hello")
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1003


async def test_invalid_utf8_closes_with_1007(serve: Serve, layer: str) -> None:
    server_decides(layer, granian="it checks UTF-8 itself and closes with an empty close frame, not 1007")
    recorder = Recorder()
    served = await serve(recorder)
    async with await RawHTTP.connect(served.host, served.port) as conn:
        assert (await raw_ws_handshake(conn, served.client.url(new_id(), "websocket"))).status == 101
        assert await read_ws_frame(conn) == (TEXT, b"o")
        # A lone surrogate encoded as UTF-8 bytes is not valid UTF-8 either.
        await conn.send(ws_frame(TEXT, b'["\xed\xa0\x80"]'))
        opcode, payload = await read_ws_frame(conn)
        assert opcode == CLOSE
        assert int.from_bytes(payload[:2], "big") == 1007
    assert (await recorder.next_ended()).closed
    assert recorder.received == []


async def test_escaped_lone_surrogates_round_trip(echo_client: SockJSClient) -> None:
    async with await echo_client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send_raw('["\\ud800", "a\\udfffb"]')
        msg = await bounded(ws.ws.receive())
        assert msg.data == 'a["\\ud800","a\\udfffb"]'


async def test_too_large_message_closes_with_1009(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder, max_message_size=100)
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send("x" * 90)  # 96 bytes framed: fits
        assert await ws.frame() == messages("x" * 90)
        await ws.send("x" * 200)
        assert await ws.wait_closed() == 1009
    assert (await recorder.next_ended()).closed
    assert recorder.received == ["x" * 90]


async def test_too_large_raw_message_closes_with_1009(serve: Serve) -> None:
    served = await serve(max_message_size=100)
    ws = await served.client.raw_websocket()
    await ws.send_str("y" * 101)
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1009


async def test_session_id_may_be_reused_by_websockets(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.websocket(session) as first, await echo_client.websocket(session) as second:
        assert await first.frame() == OPEN
        assert await second.frame() == OPEN
        await first.send("a")
        assert await first.frame() == messages("a")
        await second.send("b")
        assert await second.frame() == messages("b")
    async with await echo_client.websocket(session) as again:
        assert await again.frame() == OPEN
        await again.send("a")
        assert await again.frame() == messages("a")


async def test_websocket_session_is_not_reachable_over_xhr_send(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.websocket(session) as ws:
        assert await ws.frame() == OPEN
        assert (await echo_client.xhr_send(session, "x")).status == 404


async def test_client_closing_ends_the_session(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    ws = await served.client.websocket(new_id())
    assert await ws.frame() == OPEN
    session = await recorder.next_session()
    await ws.close()
    await bounded(session.wait_closed())
    assert session.closed
    assert await recorder.next_ended() is session
    assert session not in served.endpoint.sessions


async def test_application_close_code_reaches_the_websocket(serve: Serve) -> None:
    async def handler(session: Session) -> None:
        await session.close(4000, "custom")

    served = await serve(handler)
    async with await served.client.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        assert await ws.frame() == closing(4000, "custom")
        assert await ws.frame() is None


# -- the raw websocket ----------------------------------------------------------------------------


async def test_raw_websocket_echo(echo_client: SockJSClient) -> None:
    ws = await echo_client.raw_websocket()
    # No open frame, no framing: one websocket message is one message.
    await ws.send_str("Hello world!\uffff")
    assert await bounded(ws.receive_str()) == "Hello world!\uffff"
    await ws.send_str('["not", "unpacked"]')
    assert await bounded(ws.receive_str()) == '["not", "unpacked"]'
    await ws.send_str("")
    assert await bounded(ws.receive_str()) == ""
    await ws.close()


async def test_raw_websocket_close(close_client: SockJSClient) -> None:
    ws = await close_client.raw_websocket()
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.CLOSE
    # The close frame's own code: ws.close_code turns 1006 when a server drops the
    # connection right after its close frame, before the client's reply is written.
    assert (msg.data, msg.extra) == (3000, "Go away!")


async def test_raw_websocket_carries_the_application_close_code(serve: Serve) -> None:
    async def handler(session: Session) -> None:
        await session.close(4004, "not here")

    served = await serve(handler)
    ws = await served.client.raw_websocket()
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert (msg.data, msg.extra) == (4004, "not here")


async def test_raw_websocket_session_metadata(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    ws = await served.client.raw_websocket(headers={"X-Token": "t1"})
    session = await recorder.next_session()
    assert session.transport == "websocket-raw"
    assert session.headers["X-Token"] == "t1"
    await ws.close()


async def test_raw_client_gets_an_answer_for_a_lone_surrogate(serve: Serve) -> None:
    # A message that reached the server JSON-escaped over another transport may
    # hold a lone surrogate, which cannot be written as UTF-8 text. The raw
    # client must get a defined answer (a replacement, or a close frame) and the
    # server must keep serving everyone else.
    holder: list[Endpoint] = []

    async def relay(session: Session) -> None:
        async for message in session:
            await holder[0].broadcast(message)

    served = await serve(relay)
    holder.append(served.endpoint)
    raw = await served.client.raw_websocket()
    sender = await served.client.open_xhr()
    assert (await served.client.xhr_send(sender, body='["\\ud800"]')).status == 204
    msg = await bounded(raw.receive(), 20 * UNIT)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.CLOSE), msg
    # Everyone else is still served.
    other = await served.client.raw_websocket()
    await other.send_str("still fine")
    assert await bounded(other.receive_str()) == "still fine"
    await other.close()
    await raw.close()


async def test_many_websockets_at_once(echo_client: SockJSClient) -> None:
    async def one(i: int) -> None:
        async with await echo_client.websocket(new_id()) as ws:
            assert await ws.frame() == OPEN
            await ws.send(f"m{i}")
            assert await ws.frame() == messages(f"m{i}")

    await bounded(asyncio.gather(*(one(i) for i in range(20))))


# -- the request ends with the websocket -------------------------------------------------------


class RequestWatch:
    """An aiohttp middleware noting when each request handler has returned."""

    def __init__(self) -> None:
        self.finished: dict[str, asyncio.Event] = {}

        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            finally:
                self.done(request.path).set()

        self.middleware = middleware

    def done(self, path: str) -> asyncio.Event:
        return self.finished.setdefault(path, asyncio.Event())


@pytest.mark.parametrize("how", ["close frame", "tcp drop"])
@pytest.mark.parametrize("kind", ["framed", "raw"])
async def test_websocket_request_handler_returns_when_the_client_leaves(serve: Serve, how: str, kind: str) -> None:
    watch = RequestWatch()
    recorder = Recorder()
    served = await serve(recorder, middlewares=(watch.middleware,))
    path = served.client.url(new_id(), "websocket") if kind == "framed" else "/echo/websocket"
    async with await RawHTTP.connect(served.host, served.port) as conn:
        assert (await raw_ws_handshake(conn, path)).status == 101
        if kind == "framed":
            assert await read_ws_frame(conn) == (TEXT, b"o")
        session = await recorder.next_session()
        if how == "close frame":
            await conn.send(ws_frame(CLOSE, close_payload(1000)))
            opcode, _ = await read_ws_frame(conn)
            assert opcode == CLOSE
    await bounded(session.wait_closed())
    # Nothing of the websocket may linger once its client is gone: the request
    # handler has only a few steps left, so a short guard is plenty.
    await bounded(watch.done(path).wait(), 10 * UNIT)
