"""The test toolkit: a small client-side SockJS codec and client, and handler doubles.

It speaks each transport the way sockjs-client does, but checks the bytes:
frames are parsed strictly, streaming responses are read HTTP chunk by HTTP
chunk, and every envelope (newline, ``data:``, ``<script>``, ``/**/cb(...)``)
is unwrapped by hand rather than trusted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from sockjs_server import Endpoint, Session

T = TypeVar("T")

UNIT = 0.1 * float(os.environ.get("SOCKJS_TESTS_TIME_FACTOR", "1"))
"""One time unit in seconds; set SOCKJS_TESTS_TIME_FACTOR to stretch every delay on slow machines."""

GUARD = 100 * UNIT
"""Hang guard for waits that should finish promptly (never a measured expectation)."""


async def bounded(aw: Awaitable[T], timeout: float = GUARD) -> T:
    """Await ``aw`` but fail the test instead of hanging forever."""
    return await asyncio.wait_for(aw, timeout)


async def still_pending(aw: asyncio.Future[Any], grace: float = 2 * UNIT) -> bool:
    """Whether ``aw`` is still not done after giving the loop ``grace`` seconds to finish it."""
    done, _ = await asyncio.wait({aw}, timeout=grace)
    return not done


def aiohttp_only(layer: str, why: str) -> None:
    """Skip on the ASGI layers a test of the aiohttp layer's own API."""
    if layer != "aiohttp":
        import pytest

        pytest.skip(f"aiohttp layer only: {why}")


def server_decides(layer: str, *, uvicorn: str | None = None, granian: str | None = None, builtin: str | None = None) -> None:
    """Skip on an ASGI layer whose server, not this package, decides the behaviour under test.

    ``uvicorn`` and ``granian`` say what that server does instead; a layer without a reason runs the test.
    """
    why = {"asgi": ("uvicorn", uvicorn), "granian": ("granian", granian), "builtin": ("the built-in server", builtin)}.get(layer)
    if why is not None and why[1] is not None:
        import pytest

        pytest.skip(f"{why[0]}'s own behaviour: {why[1]}")


def new_id() -> str:
    return uuid.uuid4().hex


# -- frames ---------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One SockJS frame as the client understands it."""

    kind: str
    messages: tuple[str, ...] = ()
    code: int | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.kind == "a":
            return "a" + json.dumps(list(self.messages))
        if self.kind == "c":
            return "c" + json.dumps([self.code, self.reason])
        return self.kind


OPEN = Frame("o")
HEARTBEAT = Frame("h")


def closing(code: int, reason: str) -> Frame:
    return Frame("c", code=code, reason=reason)


def messages(*texts: str) -> Frame:
    return Frame("a", tuple(texts))


def parse_frame(text: str) -> Frame:
    """Parse one frame strictly; anything malformed raises ``ValueError``."""
    if text in ("o", "h"):
        return Frame(text)
    if text[:1] == "a":
        payload = json.loads(text[1:])
        if not isinstance(payload, list) or not payload or not all(isinstance(m, str) for m in payload):
            raise ValueError(f"bad message frame {text!r}")
        return Frame("a", tuple(payload))
    if text[:1] == "c":
        payload = json.loads(text[1:])
        if (
            not isinstance(payload, list)
            or len(payload) != 2
            or type(payload[0]) is not int
            or not isinstance(payload[1], str)
        ):
            raise ValueError(f"bad close frame {text!r}")
        return Frame("c", code=payload[0], reason=payload[1])
    raise ValueError(f"not a SockJS frame: {text!r}")


# -- envelopes (client side) --------------------------------------------------------

XHR_STREAMING_PRELUDE = b"h" * 2048 + b"\n"
EVENTSOURCE_PRELUDE = b"\r\n"

_HTMLFILE_FRAME = re.compile(rb"<script>\np\((.*?)\);\n</script>\r\n", re.S)
_JSONP = re.compile(rb"/\*\*/([A-Za-z0-9_.\-]+)\((.*)\);\r\n", re.S)


class Unwrapper:
    """Splits the body of one receiving transport into frame texts."""

    name = ""

    def prelude_end(self, data: bytes) -> int | None:
        """Index just after the prelude in ``data``, or ``None`` if it is not complete yet."""
        return 0

    def split(self, data: bytes) -> tuple[str | None, bytes]:
        """The first whole frame in ``data`` and the rest, or ``(None, data)``."""
        raise NotImplementedError


class XhrUnwrapper(Unwrapper):
    name = "xhr"

    def prelude_end(self, data: bytes) -> int | None:
        return 0

    def split(self, data: bytes) -> tuple[str | None, bytes]:
        end = data.find(b"\n")
        if end < 0:
            return None, data
        return data[:end].decode(), data[end + 1 :]


class XhrStreamingUnwrapper(XhrUnwrapper):
    name = "xhr_streaming"

    def prelude_end(self, data: bytes) -> int | None:
        if len(data) < len(XHR_STREAMING_PRELUDE):
            return None
        assert data[: len(XHR_STREAMING_PRELUDE)] == XHR_STREAMING_PRELUDE, data[:40]
        return len(XHR_STREAMING_PRELUDE)


class EventSourceUnwrapper(Unwrapper):
    name = "eventsource"

    def prelude_end(self, data: bytes) -> int | None:
        if len(data) < 2:
            return None
        assert data[:2] == EVENTSOURCE_PRELUDE, data[:40]
        return 2

    def split(self, data: bytes) -> tuple[str | None, bytes]:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None, data
        event = data[:end]
        assert event.startswith(b"data: "), event
        assert b"\r" not in event and b"\n" not in event, event
        return event[len(b"data: ") :].decode(), data[end + 4 :]


class HtmlfileUnwrapper(Unwrapper):
    name = "htmlfile"

    def prelude_end(self, data: bytes) -> int | None:
        end = data.find(b"\r\n\r\n")
        return None if end < 0 else end + 4

    def split(self, data: bytes) -> tuple[str | None, bytes]:
        match = _HTMLFILE_FRAME.match(data)
        if match is None:
            assert b"</script>\r\n" not in data, f"malformed htmlfile frame: {data[:200]!r}"
            return None, data
        literal = match.group(1)
        return _js_string(literal), data[match.end() :]


class JsonpUnwrapper(Unwrapper):
    name = "jsonp"

    def __init__(self, callback: str) -> None:
        self.callback = callback

    def split(self, data: bytes) -> tuple[str | None, bytes]:
        match = _JSONP.fullmatch(data)
        if match is None:
            return None, data
        assert match.group(1).decode() == self.callback, data
        return _js_string(match.group(2)), b""


def _js_string(literal: bytes) -> str:
    """Decode a JavaScript string literal written as JSON; it must hold no raw line terminator."""
    text = literal.decode()
    for forbidden in ("\n", "\r", "\u2028", "\u2029"):
        assert forbidden not in text, f"raw {forbidden!r} in a JavaScript string literal"
    value = json.loads(text)
    assert isinstance(value, str)
    return value


def unwrapper_for(transport: str, callback: str = "cb") -> Unwrapper:
    return {
        "xhr": XhrUnwrapper(),
        "xhr_streaming": XhrStreamingUnwrapper(),
        "eventsource": EventSourceUnwrapper(),
        "htmlfile": HtmlfileUnwrapper(),
        "jsonp": JsonpUnwrapper(callback),
    }[transport]


# -- replies and streams ----------------------------------------------------------------


@dataclass
class Reply:
    """A complete HTTP answer."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode()

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


async def reply_of(response: aiohttp.ClientResponse) -> Reply:
    async with response:
        body = await bounded(response.read())
        return Reply(response.status, response.headers, body)


class Stream:
    """A streaming receiving response, read HTTP chunk by HTTP chunk."""

    def __init__(self, response: aiohttp.ClientResponse, unwrapper: Unwrapper) -> None:
        self.response = response
        self.unwrapper = unwrapper
        self._buffer = b""
        self._prelude_read = False
        self.eof = False

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.response.headers

    async def chunk(self) -> bytes:
        """The next HTTP chunk as the server wrote it (``b""`` at the end of the response)."""
        assert not self._buffer, "chunk() after frame() left bytes buffered"
        return await bounded(self._read_chunk())

    async def _read_chunk(self) -> bytes:
        data = b""
        while True:
            part, end_of_chunk = await self.response.content.readchunk()
            data += part
            if end_of_chunk and data:
                return data
            if not part and not end_of_chunk:
                self.eof = True
                return data

    async def prelude(self) -> bytes:
        """Read exactly the transport's prelude."""
        while True:
            end = self.unwrapper.prelude_end(self._buffer)
            if end is not None:
                prelude, self._buffer = self._buffer[:end], self._buffer[end:]
                self._prelude_read = True
                return prelude
            data = await bounded(self._read_chunk())
            if not data:
                raise AssertionError(f"response ended inside the prelude: {self._buffer[:200]!r}")
            self._buffer += data

    async def frame_text(self) -> str | None:
        """The next frame's text, or ``None`` when the response ended."""
        if not self._prelude_read:
            await self.prelude()
        while True:
            text, self._buffer = self.unwrapper.split(self._buffer)
            if text is not None:
                return text
            if self.eof:
                assert not self._buffer, f"response ended mid-frame: {self._buffer[:200]!r}"
                return None
            self._buffer += await bounded(self._read_chunk())

    async def frame(self) -> Frame | None:
        text = await self.frame_text()
        return None if text is None else parse_frame(text)

    async def next_non_heartbeat(self) -> Frame | None:
        while True:
            frame = await self.frame()
            if frame != HEARTBEAT:
                return frame

    async def ended(self) -> bool:
        """Whether the response ends here with no further frame."""
        return await self.frame_text() is None

    def close(self) -> None:
        self.response.close()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class WS:
    """A SockJS-framed websocket session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def frame(self) -> Frame | None:
        msg = await bounded(self.ws.receive())
        if msg.type is aiohttp.WSMsgType.TEXT:
            return parse_frame(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            return None
        raise AssertionError(f"unexpected websocket message {msg!r}")

    async def next_non_heartbeat(self) -> Frame | None:
        while True:
            frame = await self.frame()
            if frame != HEARTBEAT:
                return frame

    async def send(self, *texts: str) -> None:
        await self.ws.send_str(json.dumps(list(texts)))

    async def send_raw(self, data: str) -> None:
        await self.ws.send_str(data)

    async def wait_closed(self) -> int | None:
        """Read until the server closes the websocket; returns the close code."""
        while True:
            msg = await bounded(self.ws.receive())
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return self.ws.close_code
            if msg.type is aiohttp.WSMsgType.ERROR:
                return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> WS:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()


# -- the client ----------------------------------------------------------------------


class SockJSClient:
    """Speaks SockJS to the endpoint at ``prefix`` through a pytest-aiohttp client."""

    def __init__(self, http: TestClient, prefix: str = "/echo") -> None:
        self.http = http
        self.prefix = prefix

    def url(self, session_id: str, transport: str, server: str = "000") -> str:
        return f"{self.prefix}/{server}/{quote(session_id, safe='')}/{transport}"

    # receiving requests

    async def xhr(self, session_id: str, **kwargs: Any) -> Reply:
        return await reply_of(await self.http.post(self.url(session_id, "xhr"), **kwargs))

    async def xhr_frame(self, session_id: str, **kwargs: Any) -> Frame:
        """One xhr poll; the body must be exactly one frame and a newline."""
        reply = await self.xhr(session_id, **kwargs)
        assert reply.status == 200, (reply.status, reply.body)
        assert reply.body.endswith(b"\n") and reply.body.count(b"\n") == 1, reply.body
        return parse_frame(reply.body[:-1].decode())

    async def jsonp(self, session_id: str, callback: str = "cb", **kwargs: Any) -> Reply:
        return await reply_of(
            await self.http.get(self.url(session_id, "jsonp"), params={"c": callback}, **kwargs)
        )

    async def jsonp_frame(self, session_id: str, callback: str = "cb") -> Frame:
        reply = await self.jsonp(session_id, callback)
        assert reply.status == 200, (reply.status, reply.body)
        text, rest = JsonpUnwrapper(callback).split(reply.body)
        assert text is not None and rest == b"", reply.body
        return parse_frame(text)

    async def stream(self, session_id: str, transport: str, callback: str = "cb", **kwargs: Any) -> Stream:
        """Open a streaming receiving request (``xhr_streaming``, ``eventsource``, ``htmlfile``)."""
        url = self.url(session_id, transport)
        if transport == "xhr_streaming":
            response = await bounded(self.http.post(url, **kwargs))
        else:
            params = {"c": callback} if transport == "htmlfile" else None
            response = await bounded(self.http.get(url, params=params, **kwargs))
        return Stream(response, unwrapper_for(transport, callback))

    async def websocket(self, session_id: str, **kwargs: Any) -> WS:
        ws = await bounded(self.http.ws_connect(self.url(session_id, "websocket"), **kwargs))
        return WS(ws)

    async def raw_websocket(self, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        return await bounded(self.http.ws_connect(f"{self.prefix}/websocket", **kwargs))

    # sending requests

    async def xhr_send(self, session_id: str, *texts: str, body: str | bytes | None = None, **kwargs: Any) -> Reply:
        data = json.dumps(list(texts)) if body is None else body
        return await reply_of(await self.http.post(self.url(session_id, "xhr_send"), data=data, **kwargs))

    async def jsonp_send(
        self, session_id: str, *texts: str, body: str | bytes | None = None, form: bool = True, **kwargs: Any
    ) -> Reply:
        if body is None:
            payload = json.dumps(list(texts))
            body = "d=" + quote(payload, safe="") if form else payload
        headers = kwargs.pop("headers", {})
        if form:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return await reply_of(
            await self.http.post(self.url(session_id, "jsonp_send"), data=body, headers=headers, **kwargs)
        )

    # conveniences

    async def open_xhr(self, session_id: str | None = None) -> str:
        """Open a session over xhr-polling and return its id."""
        session_id = session_id or new_id()
        assert await self.xhr_frame(session_id) == OPEN
        return session_id

    async def poll_until(self, session_id: str, wanted: int) -> list[str]:
        """Poll until ``wanted`` messages arrived (heartbeats skipped); fails on a close frame."""
        received: list[str] = []
        while len(received) < wanted:
            frame = await self.xhr_frame(session_id)
            if frame.kind == "a":
                received.extend(frame.messages)
            else:
                assert frame == HEARTBEAT, frame
        return received


# -- raw HTTP over a socket ---------------------------------------------------------------


@dataclass
class RawResponse:
    version: str
    status: int
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class RawHTTP:
    """One TCP connection speaking HTTP by hand, for HTTP/1.0 and framing edge cases."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> RawHTTP:
        reader, writer = await bounded(asyncio.open_connection(host, port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await bounded(self.writer.drain())

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str = "1.1",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> RawResponse:
        lines = [f"{method} {path} HTTP/{version}"]
        all_headers = {"Host": "127.0.0.1"}
        all_headers.update(headers or {})
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k in all_headers):
            all_headers["Content-Length"] = str(len(body))
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return await self.read_head()

    async def read_head(self) -> RawResponse:
        head = await bounded(self.reader.readuntil(b"\r\n\r\n"))
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        assert version.startswith("HTTP/"), status_line
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return RawResponse(version[5:], int(status), headers)

    async def read(self, n: int) -> bytes:
        return await bounded(self.reader.readexactly(n))

    async def read_chunk(self) -> bytes:
        """One chunk of a chunked body (``b""`` for the last one)."""
        size_line = await bounded(self.reader.readuntil(b"\r\n"))
        size = int(size_line.split(b";")[0], 16)
        data = await self.read(size)
        assert await self.read(2) == b"\r\n"
        return data

    async def read_to_eof(self) -> bytes:
        return await bounded(self.reader.read())

    async def at_eof(self) -> bool:
        """Whether the server closed the connection (nothing more to read)."""
        return await bounded(self.reader.read(1)) == b""

    def close(self) -> None:
        self.writer.close()

    async def __aenter__(self) -> RawHTTP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


# -- server-side doubles ------------------------------------------------------------------
#
# Handlers are plain coroutines or small classes: the tests watch what they see
# through the public Session API, never by patching the server.


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


class Recorder:
    """A handler that remembers every session and message; echoes unless told not to.

    ``gate``: when given, the handler waits for it before reading anything
    (a slow application, for back-pressure tests).
    """

    def __init__(self, *, echo: bool = True, gate: asyncio.Event | None = None) -> None:
        self.echo = echo
        self.gate = gate
        self.sessions: list[Session] = []
        self.received: list[str] = []
        self._opened: asyncio.Queue[Session] = asyncio.Queue()
        self._ended: asyncio.Queue[Session] = asyncio.Queue()

    async def __call__(self, session: Session) -> None:
        self.sessions.append(session)
        self._opened.put_nowait(session)
        try:
            if self.gate is not None:
                await self.gate.wait()
            async for message in session:
                self.received.append(message)
                if self.echo:
                    await session.send(message)
        finally:
            self._ended.put_nowait(session)

    async def next_session(self) -> Session:
        return await bounded(self._opened.get())

    async def next_ended(self) -> Session:
        """The next session whose handler returned."""
        return await bounded(self._ended.get())


# -- websocket frames by hand (for what a well-behaved client library refuses to send) -------------

WS_KEY = "x3JJHMbDL1EzLkh9GBhXDw=="
WS_ACCEPT = "HSmrc0sMlYUkAGmm5OPpG2HaGWk="  # RFC 6455 accept value for WS_KEY


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """One masked client-to-server websocket frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + length.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def read_ws_frame(conn: RawHTTP) -> tuple[int, bytes]:
    """One unmasked server-to-client frame: ``(opcode, payload)``."""
    first, second = await conn.read(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await conn.read(2), "big")
    elif length == 127:
        length = int.from_bytes(await conn.read(8), "big")
    assert not second & 0x80, "server frames must not be masked"
    return first & 0x0F, await conn.read(length)


async def raw_ws_handshake(conn: RawHTTP, path: str, headers: dict[str, str] | None = None) -> RawResponse:
    return await conn.request(
        "GET",
        path,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": WS_KEY,
            **(headers or {}),
        },
    )


# -- running an app under test ------------------------------------------------------------------


@dataclass
class Served:
    """A running app with one SockJS endpoint."""

    http: TestClient
    endpoint: Endpoint
    client: SockJSClient

    @property
    def host(self) -> str:
        return str(self.http.server.host)

    @property
    def port(self) -> int:
        port = self.http.server.port
        assert port is not None
        return port


Serve = Callable[..., Awaitable[Served]]


class AppServer(TestServer):
    """Runs the app as ``web.run_app`` does: request handlers are not cancelled when a
    client goes away (pytest-aiohttp's default cancels them), unless ``cancel_handlers``.

    The shutdown timeout is short so that a request handler that never returns shows
    up as a failing test rather than a minute-long teardown.
    """

    def __init__(self, app: web.Application, *, cancel_handlers: bool = False) -> None:
        super().__init__(app, host="127.0.0.1")
        self.cancel_handlers = cancel_handlers

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = self.cancel_handlers
        kwargs["shutdown_timeout"] = UNIT
        return web.AppRunner(self.app, **kwargs)
