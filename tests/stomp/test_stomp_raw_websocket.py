"""STOMP over the endpoint's raw ``/websocket``: subprotocols and binary messages, with aiohttp's client."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from stomp_testing import TIMEOUT, ClientFrame, ClientParser, Pipe, StompClient, encode_frame, harness  # noqa: F401


class RawWebSocketPipe(Pipe):
    """STOMP bytes in websocket messages, no SockJS framing; remembers each message's kind."""

    name = "websocket-raw"

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, binary: bool) -> None:
        super().__init__()
        self.ws = ws
        self.binary = binary
        self.kinds: list[aiohttp.WSMsgType] = []
        self.task = asyncio.create_task(self._pump())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str, *, binary: bool = False, **kwargs: Any) -> RawWebSocketPipe:
        ws = await http.ws_connect(f"{base}/websocket", **kwargs)
        return cls(ws, binary)

    async def _pump(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.kinds.append(msg.type)
                await self.incoming.put(msg.data.encode("utf-8"))
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.kinds.append(msg.type)
                await self.incoming.put(msg.data)
        self.close_frame = self.ws.close_code
        await self.incoming.put(None)

    async def write(self, data: bytes) -> None:
        if self.binary:
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data.decode("utf-8"))

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def raw_client(h: Any, *, binary: bool = False, **kwargs: Any) -> tuple[StompClient, RawWebSocketPipe]:
    pipe = await RawWebSocketPipe.open(h.http, h.base, binary=binary, **kwargs)
    client = StompClient(pipe)
    h.clients.append(client)
    return client, pipe


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (("v10.stomp", "v11.stomp", "v12.stomp"), "v12.stomp"),
        (("v12.stomp", "v11.stomp", "v10.stomp"), "v12.stomp"),
        (("v10.stomp", "v11.stomp"), "v11.stomp"),
        (("v10.stomp",), "v10.stomp"),
        (("mqtt",), None),
        ((), None),
    ],
)
async def test_stomp_subprotocols_highest_offered_wins(harness: Any, offered: tuple[str, ...], selected: str | None) -> None:
    h = await harness()
    client, pipe = await raw_client(h, protocols=offered)
    assert pipe.ws.protocol == selected
    connected = await client.connect("1.0,1.1,1.2")
    # The subprotocol does not restrict the STOMP version: CONNECT negotiates it.
    assert connected["version"] == "1.2"
    await client.disconnect()


async def test_text_frames_answer_text(harness: Any) -> None:
    h = await harness()
    client, pipe = await raw_client(h, protocols=("v12.stomp",))
    await client.connect()
    await client.subscribe("/topic/t", "s1")
    await client.send("/topic/t", "héllo", receipt="r1")
    message = await client.expect("MESSAGE")
    assert message.body == "héllo".encode()
    assert set(pipe.kinds) == {aiohttp.WSMsgType.TEXT}
    await client.disconnect()


@pytest.mark.parametrize("sender_binary", [True, False])
async def test_binary_body_arrives_intact_as_a_binary_message(harness: Any, sender_binary: bool) -> None:
    h = await harness()
    body = bytes(range(256)) * 4  # NULs and invalid UTF-8
    receiver, receiver_pipe = await raw_client(h, protocols=("v12.stomp",))
    await receiver.connect()
    await receiver.subscribe("/queue/bin", "s1")
    sender, _ = await raw_client(h, binary=True, protocols=("v12.stomp",))
    await sender.connect()
    await sender.send_frame("SEND", {"destination": "/queue/bin", "content-length": str(len(body)), "receipt": "r"}, body)
    await sender.receipt("r")
    message = await receiver.expect("MESSAGE")
    assert message.body == body
    assert receiver_pipe.kinds[-1] is aiohttp.WSMsgType.BINARY
    # Text frames after it are text again.
    await sender.send("/queue/bin", "plain", receipt="r2")
    assert (await receiver.expect("MESSAGE")).body == b"plain"
    assert receiver_pipe.kinds[-1] is aiohttp.WSMsgType.TEXT
    await sender.disconnect()
    await receiver.disconnect()


async def test_frames_split_across_text_and_binary_messages(harness: Any) -> None:
    h = await harness()
    client, pipe = await raw_client(h)
    frame = encode_frame("CONNECT", {"accept-version": "1.2", "host": "/"})
    await pipe.ws.send_str(frame[:10].decode())
    await pipe.ws.send_bytes(frame[10:])
    assert (await client.expect("CONNECTED"))["version"] == "1.2"
    await client.disconnect()


async def test_binary_body_reaches_a_sockjs_client_as_text(harness: Any) -> None:
    h = await harness("websocket")
    sockjs = await h.connected()
    await sockjs.subscribe("/topic/b", "s1")
    sender, _ = await raw_client(h, binary=True)
    await sender.connect()
    await sender.send_frame("SEND", {"destination": "/topic/b", "content-length": "2", "receipt": "r"}, b"\xff\xfe")
    await sender.receipt("r")
    message = await sockjs.expect("MESSAGE")
    # SockJS carries text only: invalid bytes are replaced, content-length follows.
    assert message.body == "\ufffd\ufffd".encode()
    assert message["content-length"] == str(len(message.body))
    await sender.disconnect()


async def test_invalid_utf8_text_message_closes_with_1007(harness: Any) -> None:
    h = await harness()
    client, pipe = await raw_client(h)
    await client.connect()
    # A text websocket message must be UTF-8 (RFC 6455): the websocket layer refuses it.
    await pipe.ws._writer.send_frame(b"SEND\ndestination:/topic/x\n\n\xff\x00", aiohttp.WSMsgType.TEXT)  # type: ignore[attr-defined]
    await asyncio.wait_for(client.closed.wait(), TIMEOUT)
    assert pipe.close_frame == 1007


async def test_the_websocket_closes_normally_after_disconnect_and_error(harness: Any) -> None:
    h = await harness()
    client, pipe = await raw_client(h)
    await client.connect()
    await client.disconnect()
    assert pipe.close_frame == 1000
    client, pipe = await raw_client(h)
    await client.connect()
    # A duplicated subscription id ends the connection (a missing header alone does not, as on RabbitMQ).
    await client.send_frame("SUBSCRIBE", {"id": "x", "destination": "/topic/a"})
    await client.send_frame("SUBSCRIBE", {"id": "x", "destination": "/topic/b"})
    await client.expect_error("Duplicated subscription identifier")
    assert pipe.close_frame == 1000


async def test_raw_websocket_sessions_are_logged_with_an_id(harness, caplog):  # noqa: F811
    h = await harness()
    caplog.set_level("INFO", logger="sockjs_server.sessions")
    ids = []
    for _ in range(2):
        client, _pipe = await raw_client(h)
        await client.connect("1.2")
        await client.disconnect()
    for record in caplog.records:
        if record.name == "sockjs_server.sessions" and "opened" in record.getMessage():
            ids.append(record.getMessage().split(" session ")[1].split()[0])
    assert len(ids) == 2 and all(i.startswith("raw-") for i in ids) and ids[0] != ids[1], caplog.text
