"""A small STOMP client for tests, over TCP or SockJS (websocket, xhr-streaming, xhr-polling).

Its frame codec is written independently of the server's, so a bug in one
does not hide a bug in the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sockjs_server import Options, add_endpoint
from sockjs_server.stomp import StompServer, start_tcp_server

#: One time unit for waits; stretch it on slow machines (STOMP_TEST_TIMEOUT=30).
TIMEOUT = float(os.environ.get("STOMP_TEST_TIMEOUT", "10"))

_UNESCAPE = {"\\\\": "\\", "\\n": "\n", "\\c": ":", "\\r": "\r"}


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n").replace(":", "\\c")


def unescape(value: str) -> str:
    out = []
    i = 0
    while i < len(value):
        if value[i] == "\\":
            out.append(_UNESCAPE[value[i : i + 2]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


@dataclass
class ClientFrame:
    command: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


def encode_frame(command: str, headers: Mapping[str, str] | list[tuple[str, str]] = (), body: bytes | str = b"", *, escape_headers: bool = True) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    lines = [command]
    for k, v in pairs:
        lines.append(f"{escape(k)}:{escape(v)}" if escape_headers else f"{k}:{v}")
    return ("\n".join(lines) + "\n\n").encode() + data + b"\x00"


class ClientParser:
    """Parses what a server sends: frames and bare EOL heart-beats."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.heartbeats = 0
        self.unescape = False

    def feed(self, data: bytes) -> list[ClientFrame]:
        self.buf += data
        frames = []
        while True:
            while self.buf[:1] in (b"\n", b"\r"):
                if self.buf[:1] == b"\n":
                    self.heartbeats += 1
                del self.buf[:1]
            end = self.buf.find(b"\n\n")
            if end < 0:
                break
            lines = self.buf[:end].decode().split("\n")
            command = lines[0]
            raw: list[tuple[str, str]] = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if self.unescape and command != "CONNECTED":
                    k, v = unescape(k), unescape(v)
                raw.append((k, v))
            headers: dict[str, str] = {}
            for k, v in raw:
                headers.setdefault(k, v)
            start = end + 2
            if "content-length" in headers:
                n = int(headers["content-length"])
                if len(self.buf) < start + n + 1:
                    break
                assert self.buf[start + n] == 0, "frame not NUL-terminated at content-length"
                body = bytes(self.buf[start : start + n])
                del self.buf[: start + n + 1]
            else:
                nul = self.buf.find(b"\x00", start)
                if nul < 0:
                    break
                body = bytes(self.buf[start:nul])
                del self.buf[: nul + 1]
            if command == "CONNECTED" and headers.get("version") in ("1.1", "1.2"):
                self.unescape = True
            frames.append(ClientFrame(command, headers, body, raw))
        return frames


# --- transports ------------------------------------------------------------


async def raw_subscriber(port: int, destination: str, *, rcvbuf: int, sub_id: str = "s") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP STOMP client with a small receive buffer, connected and subscribed
    (CONNECTED and RECEIPT read), that reads only when the test does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=max(rcvbuf, 4096))
    writer.write(encode_frame("CONNECT", {"accept-version": "1.2"}, escape_headers=False))
    writer.write(encode_frame("SUBSCRIBE", {"destination": destination, "id": sub_id, "receipt": "r"}))
    await writer.drain()
    parser = ClientParser()
    frames: list[ClientFrame] = []
    while len(frames) < 2:
        frames += parser.feed(await asyncio.wait_for(reader.read(4096), TIMEOUT))
    assert [f.command for f in frames] == ["CONNECTED", "RECEIPT"]
    return reader, writer


class Pipe:
    """Bytes in, bytes out, and a close signal."""

    name = "pipe"

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.close_frame: Any = None

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class TcpPipe(Pipe):
    name = "tcp"

    @classmethod
    async def open(cls, host: str, port: int) -> TcpPipe:
        self = cls()
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        try:
            while data := await self.reader.read(65536):
                await self.incoming.put(data)
        except (ConnectionError, OSError):
            pass
        await self.incoming.put(None)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()


class _SockJSPipe(Pipe):
    """SockJS framing shared by the transports."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        super().__init__()
        self.http = http
        self.base = f"{base}/000/{uuid.uuid4().hex[:12]}"
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _frame(self, frame: str) -> bool:
        """Handle one SockJS frame; False once closed."""
        kind = frame[:1]
        if kind == "o":
            self.opened.set()
        elif kind == "a":
            for message in json.loads(frame[1:]):
                await self.incoming.put(message.encode("utf-8"))
        elif kind == "c":
            self.close_frame = json.loads(frame[1:])
            await self.incoming.put(None)
            return False
        return True

    async def write(self, data: bytes) -> None:
        async with self.http.post(f"{self.base}/xhr_send", data=json.dumps([data.decode("utf-8")])) as resp:
            if resp.status != 204:
                raise ConnectionError(f"xhr_send: {resp.status}")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


class WebSocketPipe(_SockJSPipe):
    name = "websocket"

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> WebSocketPipe:
        self = cls(http, base)
        # No client-side message limit: the server's limits are what the tests look at.
        self.ws = await http.ws_connect(f"{self.base}/websocket", max_msg_size=0)
        self.task = asyncio.create_task(self._pump())
        await asyncio.wait_for(self.opened.wait(), TIMEOUT)
        return self

    async def _pump(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT and not await self._frame(msg.data):
                    return
        except (ConnectionError, aiohttp.ClientError):
            pass
        if self.close_frame is None:
            await self.incoming.put(None)

    async def write(self, data: bytes) -> None:
        await self.ws.send_str(json.dumps([data.decode("utf-8")]))

    async def close(self) -> None:
        await self.ws.close()
        await super().close()


class XhrStreamingPipe(_SockJSPipe):
    name = "xhr-streaming"

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> XhrStreamingPipe:
        self = cls(http, base)
        self.task = asyncio.create_task(self._pump())
        await asyncio.wait_for(self.opened.wait(), TIMEOUT)
        return self

    async def _pump(self) -> None:
        try:
            # A streaming response ends at response_limit; the client opens the next one.
            while True:
                async with self.http.post(f"{self.base}/xhr_streaming") as resp:
                    async for line in resp.content:
                        text = line.decode("utf-8").rstrip("\n")
                        if text and set(text) == {"h"} and len(text) > 1:
                            continue  # the 2 KiB prelude
                        if not await self._frame(text):
                            return
        except (ConnectionError, aiohttp.ClientError):
            pass
        if self.close_frame is None:
            await self.incoming.put(None)


class XhrPollingPipe(_SockJSPipe):
    name = "xhr-polling"

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> XhrPollingPipe:
        self = cls(http, base)
        self.task = asyncio.create_task(self._pump())
        await asyncio.wait_for(self.opened.wait(), TIMEOUT)
        return self

    async def _pump(self) -> None:
        try:
            while True:
                async with self.http.post(f"{self.base}/xhr") as resp:
                    text = (await resp.text()).rstrip("\n")
                if not await self._frame(text):
                    return
        except (ConnectionError, aiohttp.ClientError):
            pass
        if self.close_frame is None:
            await self.incoming.put(None)


# --- the client ------------------------------------------------------------


class StompClient:
    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.parser = ClientParser()
        self.frames: asyncio.Queue[ClientFrame | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.task = asyncio.create_task(self._pump())
        self.connected: ClientFrame | None = None
        #: Frames read while waiting for a RECEIPT, handed out by next() first.
        self.stash: list[ClientFrame] = []

    async def _pump(self) -> None:
        while True:
            data = await self.pipe.incoming.get()
            if data is None:
                break
            for frame in self.parser.feed(data):
                await self.frames.put(frame)
        self.closed.set()
        await self.frames.put(None)

    @property
    def heartbeats(self) -> int:
        return self.parser.heartbeats

    async def send_raw(self, data: bytes) -> None:
        await self.pipe.write(data)

    async def send_frame(self, command: str, headers: Mapping[str, str] | list[tuple[str, str]] = (), body: bytes | str = b"") -> None:
        await self.pipe.write(encode_frame(command, headers, body, escape_headers=command not in ("CONNECT", "STOMP")))

    async def connect(self, version: str | None = "1.2", **headers: str) -> ClientFrame:
        hdrs = {"host": "/"}
        if version is not None:
            hdrs["accept-version"] = version
        hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
        await self.send_frame("CONNECT", hdrs)
        frame = await self.next()
        assert frame is not None and frame.command == "CONNECTED", frame
        self.connected = frame
        return frame

    async def next(self, timeout: float = TIMEOUT) -> ClientFrame | None:
        """The next frame, or None once the connection closed."""
        if self.stash:
            return self.stash.pop(0)
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def expect(self, command: str, timeout: float = TIMEOUT) -> ClientFrame:
        frame = await self.next(timeout)
        assert frame is not None, f"connection closed while waiting for {command}"
        assert frame.command == command, f"expected {command}, got {frame.command} {frame.headers} {frame.body!r}"
        return frame

    async def receipt(self, receipt_id: str) -> None:
        """Wait for RECEIPT ``receipt_id``; MESSAGE frames arriving first are kept for next()."""
        while True:
            frame = await asyncio.wait_for(self.frames.get(), TIMEOUT)
            assert frame is not None, f"connection closed while waiting for RECEIPT {receipt_id}"
            if frame.command == "RECEIPT":
                assert frame["receipt-id"] == receipt_id, frame.headers
                return
            assert frame.command == "MESSAGE", f"expected RECEIPT, got {frame.command} {frame.headers} {frame.body!r}"
            self.stash.append(frame)

    async def subscribe(self, destination: str, sub_id: str, ack: str = "auto", **extra: str) -> None:
        headers = {"destination": destination, "id": sub_id, "ack": ack, "receipt": f"sub-{sub_id}"}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        await self.send_frame("SUBSCRIBE", headers)
        await self.receipt(f"sub-{sub_id}")

    async def send(self, destination: str, body: bytes | str = b"", receipt: str | None = None, **extra: str) -> None:
        headers = {"destination": destination}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        if receipt is not None:
            headers["receipt"] = receipt
        await self.send_frame("SEND", headers, body)
        if receipt is not None:
            await self.receipt(receipt)

    async def expect_error(self, message: str | None = None, *, closed: bool = True) -> ClientFrame:
        """An ERROR frame, then (``closed``) the connection closes."""
        frame = await self.expect("ERROR")
        if message is not None:
            assert frame["message"] == message, frame.headers
        if closed:
            await self.wait_closed()
        return frame

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def no_frame(self, delay: float = 0.05) -> None:
        """Nothing arrives for a short while (used after a receipt made it ordered)."""
        assert not self.stash, f"unexpected frames {self.stash}"
        try:
            frame = await asyncio.wait_for(self.frames.get(), delay)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame}")

    async def disconnect(self) -> None:
        await self.send_frame("DISCONNECT", {"receipt": "bye"})
        await self.receipt("bye")
        await self.wait_closed()
        await self.close()

    async def close(self) -> None:
        self.task.cancel()
        await self.pipe.close()


# --- the server side: one StompServer over TCP and SockJS ----------------------

SOCKJS_TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling")
ALL_TRANSPORTS = ("tcp", *SOCKJS_TRANSPORTS)


class Harness:
    """One StompServer served over TCP and over SockJS at /stomp, and clients for it."""

    def __init__(self, stomp: StompServer, transport: str) -> None:
        self.stomp = stomp
        self.transport = transport
        self.clients: list[StompClient] = []
        self.port = 0
        self.base = ""
        self.http: aiohttp.ClientSession | None = None

    async def client(self, transport: str | None = None) -> StompClient:
        transport = transport or self.transport
        if transport == "tcp":
            pipe: Any = await TcpPipe.open("127.0.0.1", self.port)
        else:
            assert self.http is not None
            kind = {"websocket": WebSocketPipe, "xhr-streaming": XhrStreamingPipe, "xhr-polling": XhrPollingPipe}[transport]
            pipe = await kind.open(self.http, self.base)
        client = StompClient(pipe)
        self.clients.append(client)
        return client

    async def connected(self, transport: str | None = None, version: str | None = "1.2", **headers: str) -> StompClient:
        client = await self.client(transport)
        await client.connect(version, **headers)
        return client


@pytest.fixture
async def harness(aiohttp_server: Any) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[tuple[Harness, Any]] = []

    async def make(transport: str = "tcp", stomp: StompServer | None = None, sockjs_options: Options | None = None, **kwargs: Any) -> Harness:
        stomp = stomp if stomp is not None else StompServer(**kwargs)
        h = Harness(stomp, transport)
        tcp = await start_tcp_server(stomp, "127.0.0.1", 0)
        h.port = tcp.sockets[0].getsockname()[1]
        app = web.Application()
        add_endpoint(app, "/stomp", stomp, options=sockjs_options or Options(heartbeat_delay=25.0))
        server = await aiohttp_server(app)
        h.base = str(server.make_url("/stomp"))
        h.http = aiohttp.ClientSession()
        made.append((h, tcp))
        return h

    yield make
    for h, tcp in made:
        for client in h.clients:
            try:
                await client.close()
            except Exception:
                pass
        await h.stomp.close()
        tcp.close()
        if h.http is not None:
            await h.http.close()
