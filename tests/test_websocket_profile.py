"""WebsocketProfile: subprotocol selection and binary messages on the raw ``/websocket``."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sockjs_client import WS_KEY, AppServer, RawHTTP, SockJSClient, bounded, new_id
from sockjs_server import Session, WebsocketProfile, add_endpoint


class Speaker:
    """A handler declaring a profile: echoes text as text and bytes as bytes, reports what it saw."""

    def __init__(self, profile: WebsocketProfile) -> None:
        self.websocket_profile = profile
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()

    async def __call__(self, session: Session) -> None:
        self.sessions.put_nowait(session)
        while True:
            try:
                message = await session.receive_data()
            except Exception:
                return
            if isinstance(message, bytes):
                await session.send_bytes(message)
            else:
                await session.send(message)


async def start(aiohttp_client: Any, handler: Any, **kwargs: Any) -> SockJSClient:
    app = web.Application()
    add_endpoint(app, "/p", handler, **kwargs)
    http = await aiohttp_client(AppServer(app))
    return SockJSClient(http, "/p")


# -- the profile itself --------------------------------------------------------------------------


def test_profile_defaults_and_validation() -> None:
    assert WebsocketProfile() == WebsocketProfile((), False)
    assert WebsocketProfile(["a", "b"]).subprotocols == ("a", "b")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WebsocketProfile("v12.stomp")  # type: ignore[arg-type]
    for bad in ("", "two words", "a,b", "é"):
        with pytest.raises(ValueError):
            WebsocketProfile((bad,))


def test_selection_follows_the_servers_preference() -> None:
    profile = WebsocketProfile(("v12.stomp", "v11.stomp", "v10.stomp"))
    assert profile.select(["v10.stomp", " v11.stomp", "v12.stomp"]) == "v12.stomp"
    assert profile.select(["v10.stomp", "v11.stomp"]) == "v11.stomp"
    assert profile.select(["mqtt"]) is None
    assert profile.select([]) is None


def test_handler_profile_of_the_wrong_type_is_refused() -> None:
    async def handler(session: Session) -> None:
        pass

    handler.websocket_profile = ("v12.stomp",)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        add_endpoint(web.Application(), "/p", handler)


# -- subprotocols over real sockets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (("v10.stomp", "v11.stomp", "v12.stomp"), "v12.stomp"),
        (("v11.stomp", "v10.stomp"), "v11.stomp"),
        (("mqtt", "v10.stomp"), "v10.stomp"),
        (("mqtt",), None),
        ((), None),
    ],
)
async def test_raw_websocket_selects_the_declared_subprotocol(
    aiohttp_client: Any, offered: tuple[str, ...], selected: str | None
) -> None:
    speaker = Speaker(WebsocketProfile(("v12.stomp", "v11.stomp", "v10.stomp")))
    client = await start(aiohttp_client, speaker)
    ws = await client.raw_websocket(protocols=offered)
    assert ws.protocol == selected
    session = await bounded(speaker.sessions.get())
    assert session.subprotocol == selected
    await ws.send_str("still talks")
    assert await bounded(ws.receive_str()) == "still talks"
    await ws.close()


async def test_offered_protocols_in_several_headers(aiohttp_client: Any) -> None:
    client = await start(aiohttp_client, Speaker(WebsocketProfile(("b", "a"))))
    server = client.http.server
    conn = await RawHTTP.connect(server.host, server.port)
    await conn.send(
        b"GET /p/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WS_KEY.encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: x, y\r\nSec-WebSocket-Protocol: a\r\n\r\n"
    )
    head = (await bounded(conn.reader.readuntil(b"\r\n\r\n"))).decode().lower()
    assert head.startswith("http/1.1 101")
    assert "\r\nsec-websocket-protocol: a\r\n" in head
    conn.writer.close()


async def test_add_endpoint_profile_overrides_the_handlers(aiohttp_client: Any) -> None:
    speaker = Speaker(WebsocketProfile(("a",)))
    client = await start(aiohttp_client, speaker, websocket_profile=WebsocketProfile(("b",)))
    ws = await client.raw_websocket(protocols=("a", "b"))
    assert ws.protocol == "b"
    await ws.close()


async def test_handler_without_profile_selects_nothing(aiohttp_client: Any) -> None:
    async def echo(session: Session) -> None:
        async for message in session:
            await session.send(message)

    client = await start(aiohttp_client, echo)
    ws = await client.raw_websocket(protocols=("v12.stomp",))
    assert ws.protocol is None
    await ws.close()


async def test_framed_websocket_never_selects_a_subprotocol(aiohttp_client: Any) -> None:
    client = await start(aiohttp_client, Speaker(WebsocketProfile(("v12.stomp",), binary=True)))
    ws = await client.websocket(new_id(), protocols=("v12.stomp",))
    assert ws.ws.protocol is None
    await ws.close()


# -- binary messages -------------------------------------------------------------------------------


async def test_binary_messages_reach_a_binary_handler_in_order(aiohttp_client: Any) -> None:
    speaker = Speaker(WebsocketProfile(binary=True))
    client = await start(aiohttp_client, speaker)
    ws = await client.raw_websocket()
    session = await bounded(speaker.sessions.get())
    assert session.binary
    payload = bytes(range(256))
    await ws.send_bytes(payload)
    await ws.send_str("text")
    await ws.send_bytes(b"")
    first = await bounded(ws.receive())
    assert (first.type, first.data) == (aiohttp.WSMsgType.BINARY, payload)
    second = await bounded(ws.receive())
    assert (second.type, second.data) == (aiohttp.WSMsgType.TEXT, "text")
    third = await bounded(ws.receive())
    assert (third.type, third.data) == (aiohttp.WSMsgType.BINARY, b"")
    await ws.close()


async def test_queued_binary_messages_keep_their_kind(aiohttp_client: Any) -> None:
    async def burst(session: Session) -> None:
        session.send_bytes_nowait(b"\x00\xff")
        session.send_nowait("between")
        session.send_bytes_nowait(bytearray(b"\x01"))
        await session.receive_data()

    burst.websocket_profile = WebsocketProfile(binary=True)  # type: ignore[attr-defined]
    client = await start(aiohttp_client, burst)
    ws = await client.raw_websocket()
    got = [await bounded(ws.receive()) for _ in range(3)]
    assert [(m.type, m.data) for m in got] == [
        (aiohttp.WSMsgType.BINARY, b"\x00\xff"),
        (aiohttp.WSMsgType.TEXT, "between"),
        (aiohttp.WSMsgType.BINARY, b"\x01"),
    ]
    await ws.close()


async def test_oversized_binary_message_closes_with_1009(aiohttp_client: Any) -> None:
    from sockjs_server import Options

    client = await start(aiohttp_client, Speaker(WebsocketProfile(binary=True)), options=Options(max_message_size=100))
    ws = await client.raw_websocket()
    await ws.send_bytes(b"x" * 101)
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1009


async def test_text_api_refuses_bytes(aiohttp_client: Any) -> None:
    outcome: asyncio.Queue[str] = asyncio.Queue()

    async def handler(session: Session) -> None:
        try:
            await session.receive()
        except TypeError:
            outcome.put_nowait("receive refused")
        # The binary message stays unread for receive_data.
        outcome.put_nowait(repr(await session.receive_data()))

    handler.websocket_profile = WebsocketProfile(binary=True)  # type: ignore[attr-defined]
    client = await start(aiohttp_client, handler)
    ws = await client.raw_websocket()
    await ws.send_bytes(b"\x80")
    assert await bounded(outcome.get()) == "receive refused"
    assert await bounded(outcome.get()) == repr(b"\x80")
    await ws.close()


async def test_binary_is_refused_without_the_profile(aiohttp_client: Any) -> None:
    errors: asyncio.Queue[str] = asyncio.Queue()

    async def handler(session: Session) -> None:
        assert not session.binary
        try:
            session.send_bytes_nowait(b"x")
        except TypeError:
            errors.put_nowait("send_bytes refused")
        async for _ in session:
            pass

    client = await start(aiohttp_client, handler)
    ws = await client.raw_websocket()
    assert await bounded(errors.get()) == "send_bytes refused"
    await ws.send_bytes(b"x")
    msg = await bounded(ws.receive())
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1003


async def test_framed_sessions_stay_text_only(aiohttp_client: Any) -> None:
    speaker = Speaker(WebsocketProfile(binary=True))
    client = await start(aiohttp_client, speaker)
    ws = await client.websocket(new_id())
    await ws.frame()  # open
    session = await bounded(speaker.sessions.get())
    assert not session.binary
    with pytest.raises(TypeError):
        session.send_bytes_nowait(b"x")
    await ws.close()
