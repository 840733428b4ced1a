"""A small HTTP/1.1 and websocket server for ASGI apps, made for SockJS traffic: ``--server builtin``.

SockJS's HTTP transports are many small requests (every message a client
sends is a POST, every poll a GET), so a server's own cost per request
decides their speed. This one keeps it low: one ``asyncio.Protocol`` per
connection, the head parsed in one pass (:mod:`~sockjs_server.servers.builtin.h1`), the
application started in place (no task when it answers without waiting, the
common case for ``xhr_send`` and busy polls), the response head and body
written in one call, websocket frames read and written by
:mod:`~sockjs_server.servers.builtin.wsframes`. It serves any ASGI 3 application (HTTP,
websocket with the ``websocket.http.response`` extension, lifespan), but
only what SockJS needs: no HTTP/2, no TLS (put a proxy in front), no
websocket compression.

Limits (defaults of :class:`Limits`): a request head of at most
``max_head`` bytes and ``max_headers`` fields (431), a head completed
within ``head_timeout`` seconds of its first byte and a new request within
``keep_alive_timeout`` of the last answer (the connection closes), a
request body that stalls for ``body_timeout`` seconds answered 408, at most
``max_body_buffer`` bytes of a request body or ``max_websocket_queue``
websocket messages read ahead of the application (reading pauses until it
takes them), websocket messages of at most ``max_websocket_message``
bytes (close 1009; SockJS endpoints have their own, lower
``max_message_size``), a close handshake answered within
``close_timeout`` seconds, a websocket quiet for ``ping_interval``
seconds pinged and closed (1011) when nothing comes back within
``ping_timeout`` (what finds dead peers of raw websockets, which have
no SockJS heartbeats). A client that stops reading makes ``send``
wait (the transport's write buffer above its high-water mark) instead of
growing the buffer.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from ...core.http import ON_DISCONNECT, WEBSOCKET_PUSH, WEBSOCKET_WRITE, WRITE_ROOM
from ...runtime.eager import start_eagerly
from .h1 import (
    MAX_HEAD,
    MAX_HEADERS,
    ChunkedReader,
    HttpError,
    RequestHead,
    encode_fields,
    encode_head,
    error_response,
    find_head_end,
    parse_head,
    status_line,
)
from .wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WebsocketError,
    accept_key,
    close_code_allowed,
    encode_close,
    encode_frame,
    encode_text,
)

__all__ = ["Limits", "Server", "run", "serve"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
DirectSend = Callable[[str, Scope, bytes], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes] | None]]
"""A SockJS app's ``direct_send`` (:meth:`sockjs_server.asgi.SockJSRouter.direct_send`): an ``xhr_send``
answered without ASGI messages, the one request of every message a fallback client sends."""

DirectPoll = Callable[[str, Scope, Callable[[int, list[tuple[bytes, bytes]], bytes], None]], bool]
"""A SockJS app's ``direct_poll`` (:meth:`sockjs_server.asgi.SockJSRouter.direct_poll`): an ``xhr`` poll
that waits in no task and answers through the callback it is given (``False``: the ASGI path)."""

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_HIGH_WATER = 64 * 1024
_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
_STREAMING = (b"/xhr_streaming", b"/eventsource", b"/htmlfile")
"""SockJS URLs whose answer stays open: their app runs in a task from the start."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The built-in server's limits and timeouts (see the module docstring)."""

    max_head: int = MAX_HEAD
    max_headers: int = MAX_HEADERS
    head_timeout: float = 30.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_body_buffer: int = 64 * 1024
    max_websocket_queue: int = 64
    max_websocket_message: int = 16 * 1024 * 1024
    close_timeout: float = 5.0
    graceful_timeout: float = 5.0
    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0


class _Date:
    """The ``Date`` field, formatted once a second."""

    second = -1
    field = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.field = b"date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return cls.field


class _Connection(asyncio.Protocol):
    """One client connection: requests one after another, or one websocket after its handshake."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.buffer = b""
        self.cycle: _HttpCycle | None = None
        self.websocket: _WebsocketCycle | None = None
        self.idle_since = 0.0
        self.head_since: float | None = None
        self.closed = False
        self.reading_paused = False
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.parsing = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_raw = b""
        self.last_parsed: tuple[RequestHead, bytes, str, bytes] | None = None

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        stream: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = stream
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.local = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
        stream.set_write_buffer_limits(high=_HIGH_WATER)
        self.server.connections.add(self)
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.cycle is not None:
            self.cycle.lost()
        if self.websocket is not None:
            self.websocket.lost()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None
        if self.cycle is None and self.websocket is None:
            if self.buffer:
                self.next_request()  # pipelined requests waited for the client to read our answers
            elif self.reading_paused:
                self.resume_reading()

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written (or is gone)."""
        if self.writing_paused and not self.closed:
            if self.drained is None:
                self.drained = self.loop.create_future()
            await asyncio.shield(self.drained)

    def data_received(self, data: bytes) -> None:
        if self.websocket is not None:
            self.websocket.feed(data)
            return
        cycle = self.cycle
        if cycle is not None and cycle.body_left:
            data = cycle.feed_body(data)
            if not data:
                return
        self.buffer = self.buffer + data if self.buffer else data
        if self.cycle is None:
            self.next_request()
        elif len(self.buffer) > self.limits.max_body_buffer:
            self.pause_reading()  # a pipelined request waits for the answer in progress

    # -- requests ---------------------------------------------------------------

    def next_request(self) -> None:
        """Start the requests waiting in the buffer, one at a time (pipelined ones after the answer)."""
        if self.parsing:
            return
        self.parsing = True
        try:
            while self.cycle is None and self.websocket is None and self.buffer and not self.closed:
                if self.writing_paused:
                    # A client that sends requests without reading the answers: the next one
                    # waits until it has read (resume_writing), rather than answers piling up.
                    self.pause_reading()
                    return
                buffer = self.buffer
                if buffer[:2] == b"\r\n":
                    buffer = self.buffer = buffer.lstrip(b"\r\n")
                    if not buffer:
                        return
                end = find_head_end(buffer)
                if end < 0 or end > self.limits.max_head:
                    if len(buffer) > self.limits.max_head or end > self.limits.max_head:
                        self.refuse(HttpError(431, "Request head too large."))
                    elif self.head_since is None:
                        self.head_since = self.loop.time()
                    return
                self.buffer = buffer[end:]
                raw = buffer[:end]
                self.head_since = None
                last = self.last_parsed
                if last is not None and raw == self.last_raw:  # a client repeats its heads (polls, sends of one size)
                    self.start(*last)
                    continue
                try:
                    head = parse_head(raw, self.limits.max_headers)
                except HttpError as error:
                    self.refuse(error)
                    return
                try:
                    parsed = (head, *_split_target(head.target))
                except HttpError as error:
                    self.refuse(error, head.version)
                    return
                if not head.upgrade:
                    self.last_raw = raw
                    self.last_parsed = parsed
                self.start(*parsed)
        finally:
            self.parsing = False
        if self.reading_paused and self.cycle is None and not self.writing_paused:
            self.resume_reading()

    def refuse(self, error: HttpError, version: bytes = b"1.1") -> None:
        """Answer a request the application never sees, and close."""
        self.server.refused += 1
        if self.transport is not None and not self.closed:
            self.transport.write(error_response(error, version))
            self.transport.close()
        self.closed = True

    def start(self, head: RequestHead, raw_path: bytes, path: str, query: bytes) -> None:
        server = self.server
        if head.upgrade and head.method == "GET":
            self.start_websocket(head, raw_path, path, query)
            return
        cycle = self.cycle = _HttpCycle(self, head)
        scope: Scope = {
            "type": "http", "asgi": _ASGI, "http_version": _VERSIONS[head.version], "method": head.method,
            "scheme": "http", "path": path, "raw_path": raw_path, "query_string": query, "root_path": "",
            "headers": head.headers.copy(), "client": self.client, "server": self.local,
            "state": server.state.copy() if server.state else {},
            "extensions": {ON_DISCONNECT: cycle.on_disconnect, WRITE_ROOM: cycle.room},
        }  # fmt: skip
        if head.content_length:
            rest = self.buffer
            self.buffer = b""
            if rest:
                self.buffer = cycle.feed_body(rest)
            else:
                cycle.body_since = self.loop.time()
        if cycle.body_done and head.method == "POST":
            direct = server.direct_send
            if direct is not None and raw_path.endswith(b"/xhr_send"):
                body = cycle.body
                data = body[0] if len(body) == 1 else b"".join(body)
                self.run(self._direct(direct, path, scope, data, cycle), cycle)
                return
            poll = server.direct_poll
            if poll is not None and raw_path.endswith(b"/xhr"):
                try:
                    if poll(path, scope, cycle.respond):
                        return
                except Exception:
                    logger.exception("Exception in ASGI application")
                    cycle.app_failed()
                    return
        self.run(server.app(scope, cycle.receive, cycle.send), cycle, long=raw_path.endswith(_STREAMING))

    async def _direct(self, direct: DirectSend, path: str, scope: Scope, data: bytes, cycle: _HttpCycle) -> None:
        """An ``xhr_send`` answered by the app's direct path, or by its ASGI path when that declines."""
        answer = await direct(path, scope, data)
        if answer is None:
            await self.server.app(scope, cycle.receive, cycle.send)
        else:
            cycle.respond(*answer)

    def run(self, app: Awaitable[None], cycle: _HttpCycle | _WebsocketCycle, *, long: bool = False) -> None:
        """Run the application for ``cycle`` in place until it first waits, then in a task; ``long``
        (a websocket, a streaming answer: it always waits) in a task from the start, whose every
        later step is then the event loop's own, not a hand-driven continuation."""
        coro = self._guarded(app, cycle)
        task = self.loop.create_task(coro) if long else start_eagerly(coro)
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _guarded(self, app: Awaitable[None], cycle: _HttpCycle | _WebsocketCycle) -> None:
        try:
            await app
        except asyncio.CancelledError:
            cycle.app_failed()
            raise
        except BaseException as exc:  # the application's own error: logged, answered with 500 or a close
            if not isinstance(exc, Exception):
                raise
            logger.error("Exception in ASGI application", exc_info=exc)
            cycle.app_failed()
        else:
            cycle.app_done()

    def request_done(self, keep_alive: bool) -> None:
        """The answer is written: the next request, or close."""
        self.cycle = None
        if not keep_alive or self.closed or self.server.stopping:
            self.close()
            return
        self._idle()
        if self.buffer:
            self.next_request()
        elif self.reading_paused and not self.writing_paused:
            self.resume_reading()

    # -- websockets ----------------------------------------------------------------

    def start_websocket(self, head: RequestHead, raw_path: bytes, path: str, query: bytes) -> None:
        key = version = b""
        hixie = False
        protocols: list[str] = []
        for name, value in head.headers:
            if name == b"sec-websocket-key":
                key = value
            elif name == b"sec-websocket-version":
                version = value
            elif name == b"sec-websocket-protocol":
                protocols.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
            elif name == b"sec-websocket-key1":
                hixie = True
        if not version:
            if hixie:
                logger.debug("refused a hixie-76 websocket handshake (unsupported): %s", path)
            why = "hixie-76 websockets are not supported" if hixie else "Missing Sec-WebSocket-Version"
            self.refuse(HttpError(400, why + "; this server speaks RFC 6455 (version 13)."), head.version)
            return
        if version not in (b"13", b"8", b"7"):  # the hybi-07/08 drafts frame as RFC 6455 does
            self.server.refused += 1
            if self.transport is not None:
                body = b"Unsupported websocket version; this server speaks version 13 (and 8, 7).\n"
                fields = [(b"sec-websocket-version", b"13, 8, 7"), (b"content-type", b"text/plain; charset=utf-8"),
                          (b"content-length", b"%d" % len(body)), (b"connection", b"close")]  # fmt: skip
                self.transport.write(encode_head(head.version, 426, fields) + body)
                self.transport.close()
            self.closed = True
            return
        accept = accept_key(key.decode("latin-1"))
        if accept is None:
            self.refuse(HttpError(400, "Missing or malformed Sec-WebSocket-Key."), head.version)
            return
        cycle = self.websocket = _WebsocketCycle(self, head, accept)
        scope: Scope = {
            "type": "websocket", "asgi": _ASGI, "http_version": _VERSIONS[head.version], "scheme": "ws",
            "path": path, "raw_path": raw_path, "query_string": query, "root_path": "", "headers": head.headers,
            "client": self.client, "server": self.local, "subprotocols": protocols, "state": dict(self.server.state),
            "extensions": {"websocket.http.response": {}, WEBSOCKET_PUSH: cycle.register_push, WEBSOCKET_WRITE: cycle.write},
        }  # fmt: skip
        self.run(self.server.app(scope, cycle.receive, cycle.send), cycle, long=True)

    # -- the connection ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def _idle(self) -> None:
        self.idle_since = self.loop.time()
        self.head_since = None

    def check_timeouts(self, now: float) -> None:
        """Close a connection idle for ``keep_alive_timeout``, answer 408 to a head not completed in
        ``head_timeout`` or a body that stalls for ``body_timeout``, ping quiet websockets (the
        server's sweep calls this: no timer per request)."""
        if self.websocket is not None:
            self.websocket.check(now)
            return
        cycle = self.cycle
        if cycle is not None:
            if cycle.body_left and now - cycle.body_since > self.limits.body_timeout:
                cycle.stalled()
            return
        if self.cycle is not None or self.websocket is not None or self.closed:
            return
        if self.head_since is not None:
            if now - self.head_since > self.limits.head_timeout:
                self.refuse(HttpError(408, "Request head not completed in time."))
        elif now - self.idle_since > self.limits.keep_alive_timeout:
            self.close()


def _split_target(target: bytes) -> tuple[bytes, str, bytes]:
    """A request target as ASGI's ``raw_path``, ``path`` (percent-decoded) and ``query_string``."""
    if target[:1] != b"/":
        if not target.startswith((b"http://", b"https://")):
            raise HttpError(400, "Request target must be a path.")
        slash = target.find(b"/", target.find(b"//") + 2)
        target = target[slash:] if slash >= 0 else b"/"
    raw_path, _, query = target.partition(b"?")
    path = unquote(raw_path.decode("latin-1")) if b"%" in raw_path else raw_path.decode("latin-1")
    return raw_path, path, query


class _Done:
    """An awaitable that is already done: what ``send`` returns when it did not have to wait."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_DONE = _Done()

_NO_BODY: collections.deque[bytes] = collections.deque(maxlen=0)
"""The body of every request without one (empty, and stays empty: nothing is appended to it)."""


class _HttpCycle:
    """One request and its answer, as ASGI ``receive`` and ``send``."""

    __slots__ = (
        "conn", "head", "body_left", "chunked", "body", "more", "body_done", "waiter", "disconnected",
        "started", "status", "headers", "finished", "chunked_out", "keep_alive", "continued", "body_buffered", "final_given",
        "on_gone", "body_since",
    )  # fmt: skip

    def __init__(self, conn: _Connection, head: RequestHead) -> None:
        self.conn = conn
        self.head = head
        self.chunked = ChunkedReader() if head.content_length < 0 else None
        self.body_left = head.content_length  # -1: chunked, until its last chunk
        self.body: collections.deque[bytes] = _NO_BODY if head.content_length == 0 else collections.deque()
        self.body_buffered = 0
        self.body_done = head.content_length == 0
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.started = False
        self.status = 200
        self.headers: Any = ()
        self.finished = False
        self.chunked_out = False
        self.keep_alive = head.keep_alive
        self.continued = not head.expect_continue
        self.final_given = False
        self.on_gone: Callable[[], None] | None = None
        self.body_since = 0.0  # set while a body is incomplete

    # -- the request body, as it arrives ---------------------------------------------

    def feed_body(self, data: bytes) -> bytes:
        """Take this request's body from ``data``; return what follows it (the next request)."""
        rest = b""
        if self.chunked is not None:
            try:
                data, rest = self.chunked.feed(data)
            except HttpError as error:
                self.body_left = 0
                self.lost()
                if self.started:
                    self.conn.close()
                else:
                    self.conn.refuse(error)
                return b""
            if self.chunked.done:
                self.body_left = 0
                self.body_done = True
        else:
            if len(data) >= self.body_left:
                data, rest = data[: self.body_left], data[self.body_left :]
                self.body_left = 0
                self.body_done = True
            else:
                self.body_left -= len(data)
        if self.body_left:
            self.body_since = self.conn.loop.time()
        if data:
            self.body.append(data)
            self.body_buffered += len(data)
            if self.body_buffered > self.conn.limits.max_body_buffer:
                self.conn.pause_reading()
        self._wake()
        return rest

    def stalled(self) -> None:
        """The body stopped arriving: 408 when nothing was answered yet, and the connection closes."""
        self.body_left = 0
        conn = self.conn
        if not self.started:
            conn.write(error_response(HttpError(408, "Request body not received in time."), self.head.version))
        conn.close()
        self.lost()

    def lost(self) -> None:
        self.disconnected = True
        self._wake()
        on_gone = self.on_gone
        if on_gone is not None and not self.finished:
            self.on_gone = None
            on_gone()

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """The ``sockjs_server.on_disconnect`` extension: ``callback()`` when the client goes away first."""
        self.on_gone = callback
        return self._unwatch

    def _unwatch(self) -> None:
        self.on_gone = None

    def room(self, size: int) -> bool:
        """The ``sockjs_server.write_room`` extension: whether ``size`` more bytes go out without waiting."""
        conn = self.conn
        transport = conn.transport
        return (
            transport is not None and not conn.writing_paused and not conn.closed
            and transport.get_write_buffer_size() + size + 16 < _HIGH_WATER  # a chunk's own bytes
        )  # fmt: skip

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Message:
        while True:
            body = self.body
            if body:
                if self.body_done:
                    data = body[0] if len(body) == 1 else b"".join(body)
                    body.clear()
                    self.body_buffered = 0
                    self.final_given = True
                else:
                    data = body.popleft()
                    self.body_buffered -= len(data)
                conn = self.conn
                if conn.reading_paused and self.body_buffered <= conn.limits.max_body_buffer // 2:
                    conn.resume_reading()
                return {"type": "http.request", "body": data, "more_body": not self.body_done}
            if self.body_done and not self.final_given:
                self.final_given = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.disconnected:
                return {"type": "http.disconnect"}
            if not self.continued:
                self.continued = True
                if not self.started:
                    self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            waiter = self.waiter = self.conn.loop.create_future()
            try:
                await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None

    # -- the answer --------------------------------------------------------------------

    def send(self, message: Message) -> Awaitable[None]:
        """ASGI ``send``; an awaitable already done unless the client must read first (no coroutine per call)."""
        if self.conn.closed and self.conn.cycle is self:
            return _DONE  # the client is gone (or timed out): nothing more reaches it
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.finished:
                raise RuntimeError("http.response.body before http.response.start or after the last body")
            return self._body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = message.get("headers", ())
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP request")
        return _DONE

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The whole answer at once (the direct path: no ASGI messages)."""
        self.started = True
        self.status = status
        self.headers = headers
        self._body(body, False)

    def _body(self, body: bytes, more: bool) -> Awaitable[None]:
        conn = self.conn
        if self.started is True:
            self.started = 2  # type: ignore[assignment]
            head = self._head(body, more)
            if self.head.method == "HEAD":
                conn.write(head)
            elif self.chunked_out:
                conn.write(head + (b"%x\r\n%s\r\n" % (len(body), body) if body else b""))
            else:
                conn.write(head + body if body else head)
        elif body and self.head.method != "HEAD":
            conn.write(b"%x\r\n%s\r\n" % (len(body), body) if self.chunked_out else body)
        if not more:
            self.finished = True
            if self.chunked_out and self.head.method != "HEAD":
                conn.write(b"0\r\n\r\n")
            keep_alive = self.keep_alive and self.body_done and not self.disconnected
            self.disconnected = True  # a receive() still waiting hears the request is over
            self._wake()
            conn.request_done(keep_alive)
        elif conn.writing_paused:
            return conn.drain()
        return _DONE

    def _head(self, body: bytes, more: bool) -> bytes:
        version = self.head.version
        try:
            fields, length, close = encode_fields(self.headers)
        except ValueError:
            logger.error("ASGI application answered with a header holding CR or LF; answered 500 instead")
            self.keep_alive = False
            self.chunked_out = False
            self.head = self.head._replace(method="HEAD")
            return error_response(HttpError(500, "Internal Server Error"), version)
        if close or not self.body_done:
            self.keep_alive = False  # asked, or the rest of the body would have to be read: close instead
        extra = _Date.get()
        if not length:
            if not more:
                extra += b"content-length: %d\r\n" % len(body)
            elif version == b"1.1":
                self.chunked_out = True
                extra += b"transfer-encoding: chunked\r\n"
            else:
                self.keep_alive = False
        if not self.keep_alive:
            extra += b"connection: close\r\n"
        elif version == b"1.0":
            extra += b"connection: keep-alive\r\n"
        return status_line(version, self.status) + fields + extra + b"\r\n"

    # -- the application's end -------------------------------------------------------

    def app_done(self) -> None:
        if not self.finished:
            if not self.started and not self.conn.closed:
                logger.error("ASGI application returned without answering the request")
            self.app_failed()

    def app_failed(self) -> None:
        if self.finished:
            return
        self.finished = True
        conn = self.conn
        if not self.started:
            conn.write(error_response(HttpError(500, "Internal Server Error"), self.head.version))
        conn.request_done(False)


class _WebsocketCycle:
    """One websocket, from its handshake to its close, as ASGI ``receive`` and ``send``."""

    __slots__ = ("conn", "head", "accept", "state", "reader", "events", "waiter", "close_code", "close_timer", "connect_given", "disconnect_given", "keep_alive", "ping_sent", "last_seen", "push", "on_close", "blocked")

    CONNECTING, OPEN, CLOSING, CLOSED, REFUSED = range(5)

    def __init__(self, conn: _Connection, head: RequestHead, accept: str) -> None:
        self.conn = conn
        self.head = head
        self.accept = accept
        self.state = self.CONNECTING
        self.reader = FrameReader(conn.limits.max_websocket_message)
        self.events: collections.deque[Message] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.close_code = 1006
        self.close_timer: asyncio.TimerHandle | None = None
        self.connect_given = False
        self.disconnect_given = False
        self.keep_alive = False
        self.ping_sent: float | None = None
        self.last_seen = conn.loop.time()
        self.push: Callable[[str | bytes], Awaitable[None] | None] | None = None
        self.on_close: Callable[[int], None] | None = None
        self.blocked = False  # an on_message is not done: the next messages wait

    # -- from the client -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.state != self.OPEN and self.state != self.CLOSING:
            if self.state == self.CONNECTING or self.state == self.REFUSED:
                # Frames sent before our answer (read once accepted), or the next request.
                self.conn.buffer += data
                self.conn.pause_reading()
            return
        self.last_seen = self.conn.loop.time()
        try:
            frames = self.reader.feed(data)
        except WebsocketError as error:
            for opcode, payload in error.messages:  # complete before the violation: delivered
                if opcode == OP_TEXT or opcode == OP_BINARY:
                    self._message(payload)
            self._fail(error.code, error.reason)
            return
        for opcode, payload in frames:
            if opcode == OP_TEXT or opcode == OP_BINARY:
                self._message(payload)
                if self.state == self.CLOSED:
                    return  # the application failed on it
            elif opcode == OP_PING:
                # Not while the client is not reading: a ping flood must not pile up pongs.
                if self.state == self.OPEN and not self.conn.writing_paused:
                    self.conn.write(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code, _reason = payload
                if self.state == self.OPEN:
                    self.conn.write(encode_close(1000))  # as the aiohttp layer answers any valid close
                self._closed(code)
                return
        if len(self.events) > self.conn.limits.max_websocket_queue:
            self.conn.pause_reading()

    def _fail(self, code: int, reason: str) -> None:
        if self.state == self.OPEN:
            self.conn.write(encode_close(code, reason))
        self._closed(code)

    def _closed(self, code: int) -> None:
        """The websocket is over: the application hears ``websocket.disconnect`` with ``code``."""
        if self.state == self.CLOSED:
            return
        self.state = self.CLOSED
        self.close_code = code
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        self._event({"type": "websocket.disconnect", "code": code})
        self.conn.close()

    def lost(self) -> None:
        if self.state == self.CONNECTING:
            self.state = self.CLOSED
            self._event({"type": "websocket.disconnect", "code": 1006})
        elif self.state != self.CLOSED and self.state != self.REFUSED:
            self._closed(1006 if self.state == self.OPEN else 1000)

    def _message(self, payload: str | bytes) -> None:
        """A text (``str``) or binary message: to the application's ``on_message`` where it pushes,
        else an event for ``receive()``."""
        if self.push is not None and not self.blocked and not self.events:
            self._call(payload)
        elif isinstance(payload, str):
            self._event({"type": "websocket.receive", "text": payload})
        else:
            self._event({"type": "websocket.receive", "bytes": payload})

    def _event(self, message: Message) -> None:
        self.events.append(message)
        if self.push is not None:
            self._pump()
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the WEBSOCKET_PUSH extension ----------------------------------------------

    def register_push(self, on_message: Callable[[str | bytes], Awaitable[None] | None], on_close: Callable[[int], None]) -> None:
        """``scope["extensions"][WEBSOCKET_PUSH]``: messages go to ``on_message`` from now on, the end to ``on_close``."""
        if self.state == self.CONNECTING or self.state == self.REFUSED:
            raise RuntimeError("websocket push before the websocket is accepted")
        self.push = on_message
        self.on_close = on_close
        self._pump()

    def _pump(self) -> None:
        """Hand the queued messages (and then the end) to the application while it takes them."""
        events = self.events
        while events and not self.blocked:
            message = events.popleft()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                self._call(text if text is not None else message.get("bytes") or b"")
            elif not self.disconnect_given:
                self.disconnect_given = True
                on_close = self.on_close
                if on_close is not None:
                    try:
                        on_close(int(message.get("code", 1000)))
                    except Exception:
                        logger.exception("the ASGI application's on_close failed")

    def _call(self, payload: str | bytes) -> None:
        assert self.push is not None
        if self.state == self.CLOSED:
            return  # ended while it waited: the application hears the end next
        try:
            waiting = self.push(payload)
        except Exception:
            logger.exception("the ASGI application's on_message failed")
            self._fail(1011, "")
            return
        if waiting is not None:
            self.blocked = True
            self.conn.pause_reading()
            asyncio.ensure_future(waiting).add_done_callback(self._unblocked)

    def _unblocked(self, done: asyncio.Future[None]) -> None:
        self.blocked = False
        if not done.cancelled() and done.exception() is not None:
            logger.error("the ASGI application's on_message failed", exc_info=done.exception())
            self._fail(1011, "")
        self._pump()
        if not self.blocked and self.state == self.OPEN and self.conn.reading_paused:
            self.conn.resume_reading()

    async def receive(self) -> Message:
        if not self.connect_given:
            self.connect_given = True
            return {"type": "websocket.connect"}
        while not self.events:
            if self.disconnect_given:
                return {"type": "websocket.disconnect", "code": self.close_code}
            waiter = self.waiter = self.conn.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None
        message = self.events.popleft()
        if message["type"] == "websocket.disconnect":
            self.disconnect_given = True
        conn = self.conn
        if conn.reading_paused and len(self.events) <= conn.limits.max_websocket_queue // 2 and self.state == self.OPEN:
            conn.resume_reading()
        return message

    # -- to the client ---------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        conn = self.conn
        if kind == "websocket.send":
            text = message.get("text")
            waiting = self.write(text if text is not None else message.get("bytes") or b"")
            if waiting is not None:
                await waiting
        elif state == self.CLOSED:
            return  # the client went away first: nothing more to say
        elif kind == "websocket.accept":
            if state != self.CONNECTING:
                raise RuntimeError("websocket.accept after the handshake")
            fields = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-accept", self.accept.encode())]
            subprotocol = message.get("subprotocol")
            if subprotocol:
                fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
            fields.extend((bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ()))
            try:
                head = encode_head(b"1.1", 101, fields, _Date.get())
            except ValueError:
                raise RuntimeError("websocket.accept header holds CR or LF") from None
            self.state = self.OPEN
            conn.write(head)
            early, conn.buffer = conn.buffer, b""
            if conn.reading_paused:
                conn.resume_reading()
            if early:
                self.feed(early)
        elif kind == "websocket.close":
            code = int(message.get("code") or 1000)
            if not close_code_allowed(code):
                logger.warning("ASGI application closed a websocket with code %d, not allowed on the wire: sent 1011", code)
                code = 1011
            if state == self.CONNECTING:
                self.state = self.REFUSED
                conn.server.refused += 1
                conn.write(encode_head(self.head.version, 403, [(b"content-length", b"0"), (b"connection", b"close")]))
                conn.close()
                self._event({"type": "websocket.disconnect", "code": code})
            elif state == self.OPEN:
                self.state = self.CLOSING
                conn.write(encode_close(code, message.get("reason") or ""))
                self.close_timer = conn.loop.call_later(conn.limits.close_timeout, self._close_timeout)
        elif kind == "websocket.http.response.start":
            if state != self.CONNECTING:
                raise RuntimeError("websocket.http.response.start after the handshake")
            self.state = self.REFUSED
            conn.server.refused += 1
            headers = message.get("headers", ())
            length = any(bytes(name).lower() == b"content-length" for name, _ in headers)
            # With a length the answer ends on its own: the connection stays usable (a
            # handshake has no body), as after any other answer.
            self.keep_alive = length and self.head.keep_alive and not conn.server.stopping
            extra = _Date.get() + (b"" if self.keep_alive else b"connection: close\r\n")
            try:
                conn.write(encode_head(self.head.version, int(message["status"]), headers, extra))
            except ValueError:
                self.keep_alive = False
                conn.write(error_response(HttpError(500, "Internal Server Error"), self.head.version))
                self._refused_done()
        elif kind == "websocket.http.response.body":
            if state != self.REFUSED or conn.websocket is not self:
                raise RuntimeError("websocket.http.response.body without its start")
            conn.write(message.get("body", b""))
            if not message.get("more_body", False):
                self._refused_done()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a websocket")

    def write(self, data: str | bytes) -> Awaitable[None] | None:
        """``websocket.send`` without the event (``scope["extensions"][WEBSOCKET_WRITE]``): the frame is
        written now; what to wait on before the next one while the client is not reading."""
        if self.state != self.OPEN:
            raise ConnectionResetError("the websocket is closed")
        conn = self.conn
        conn.write(encode_text(data) if isinstance(data, str) else encode_frame(OP_BINARY, data))
        return conn.drain() if conn.writing_paused else None

    def check(self, now: float) -> None:
        """Ping a websocket quiet for ``ping_interval``; close it when no answer came in ``ping_timeout``."""
        limits = self.conn.limits
        if self.state != self.OPEN or limits.ping_interval is None:
            return
        if self.ping_sent is not None and self.last_seen >= self.ping_sent:
            self.ping_sent = None
        if self.ping_sent is None:
            if now - self.last_seen > limits.ping_interval:
                self.ping_sent = now
                self.conn.write(encode_frame(OP_PING, b""))
        elif now - self.ping_sent > limits.ping_timeout:
            self._fail(1011, "No answer to ping.")

    def _refused_done(self) -> None:
        """The refusal is written: the connection serves the next request, or closes."""
        self._event({"type": "websocket.disconnect", "code": 1006})
        conn = self.conn
        if conn.websocket is self:
            conn.websocket = None
            conn.request_done(self.keep_alive)

    def _close_timeout(self) -> None:
        self.close_timer = None
        self._closed(self.close_code)

    def app_done(self) -> None:
        self._ended(1000)

    def app_failed(self) -> None:
        self._ended(1011)

    def _ended(self, code: int) -> None:
        """The application returned (``code`` 1000) or failed (1011): end what it left open."""
        conn = self.conn
        if self.state == self.CONNECTING:
            self.state = self.REFUSED
            conn.write(error_response(HttpError(500, "Internal Server Error"), self.head.version))
            conn.close()
        elif self.state == self.OPEN:
            self.state = self.CLOSING
            conn.write(encode_close(code))
            self.close_timer = conn.loop.call_later(conn.limits.close_timeout, self._close_timeout)
        elif self.state == self.REFUSED and conn.websocket is self:
            conn.close()


class _Lifespan:
    """The ASGI lifespan protocol: startup before listening, shutdown after the last connection."""

    def __init__(self, app: App, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.startup_done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.shutdown_done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.failed_message = ""

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        await self.startup_done
        if self.failed_message:
            raise RuntimeError(f"ASGI application failed to start: {self.failed_message}")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.shutdown_done), 10)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self._send)
        except Exception:  # an app without lifespan support: served without it
            if not self.startup_done.done():
                logger.debug("ASGI application does not support lifespan", exc_info=True)
        finally:
            for done in (self.startup_done, self.shutdown_done):
                if not done.done():
                    done.set_result(False)

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.startup_done.set_result(True)
        elif kind == "lifespan.startup.failed":
            self.failed_message = str(message.get("message", "")) or "lifespan.startup.failed"
            self.startup_done.set_result(False)
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            self.shutdown_done.set_result(kind.endswith("complete"))


class Server:
    """Serve an ASGI application on listening sockets; :meth:`stop` closes the ``apps``'s sessions first."""

    def __init__(self, app: App, apps: Sequence[Any] = (), *, limits: Limits | None = None, lifespan: bool = True) -> None:
        self.app = app
        self.apps = tuple(apps)
        self.limits = limits or Limits()
        self.lifespan_on = lifespan
        self.connections: set[_Connection] = set()
        self.servers: list[asyncio.Server] = []
        self.state: dict[str, Any] = {}
        self.stopping = False
        self.refused = 0
        self._lifespan: _Lifespan | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.loop = asyncio.get_event_loop()
        direct = getattr(app, "direct_send", None)
        self.direct_send: DirectSend | None = direct if callable(direct) else None
        poll = getattr(app, "direct_poll", None)
        self.direct_poll: DirectPoll | None = poll if callable(poll) else None

    @property
    def port(self) -> int:
        """The port of the first listening socket (the real one when bound to port 0)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def start(self, sockets: Sequence[socket.socket]) -> None:
        """Run the lifespan startup, then listen on ``sockets``."""
        self.loop = asyncio.get_running_loop()
        if self.lifespan_on:
            self._lifespan = _Lifespan(self.app, self.state)
            await self._lifespan.startup()
        for sock in sockets:
            self.servers.append(await self.loop.create_server(lambda: _Connection(self), sock=sock, backlog=2048))
        self._sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        limits = self.limits
        interval = max(0.05, min(0.5, limits.keep_alive_timeout / 4, limits.head_timeout / 4, limits.body_timeout / 4,
                                 (limits.ping_interval or 2.0) / 4, limits.ping_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.check_timeouts(now)

    async def stop(self) -> None:
        """Stop listening, close every session with a close frame, let answers end, then close."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self.servers:
            server.close()
        await asyncio.gather(*(app.stop() for app in self.apps))
        for conn in list(self.connections):
            if conn.cycle is None and conn.websocket is None:
                conn.close()
        deadline = self.loop.time() + self.limits.graceful_timeout
        # Answers still open: their app's task, or a direct poll answered from a loop callback.
        while any(conn.tasks or conn.cycle is not None for conn in self.connections) and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            for task in list(conn.tasks):
                task.cancel()
            conn.close()
        for conn in list(self.connections):
            for task in list(conn.tasks):
                with contextlib.suppress(BaseException):
                    await task
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        if self._lifespan is not None:
            await self._lifespan.shutdown()


def run(
    app: App,
    apps: Sequence[Any] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: Limits | None = None,
    uvloop: bool = False,
    sock: socket.socket | None = None,
    started: Callable[[Server], None] | None = None,
) -> None:
    """Serve ``app`` at ``host``:``port`` (or on ``sock``) until SIGINT or SIGTERM, then stop cleanly:
    ``apps`` (the :class:`~sockjs_server.asgi.SockJSApp`\\ s in ``app``) send their sessions close frames first.
    ``started(server)`` is called once listening (``server.port`` is the real port when ``port=0``)."""
    if sock is None:
        sock = socket.create_server((host, port), reuse_port=False)

    async def main() -> None:
        server = Server(app, apps, limits=limits)
        await server.start([sock])
        if started is not None:
            started(server)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await server.stop()

    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    if uvloop:
        import uvloop as uvloop_module

        runner = uvloop_module.run
    runner(main())


def serve(
    routes: Mapping[str, Any],
    args: argparse.Namespace,
    *,
    labels: Mapping[str, str],
    announce: Callable[[str], None] = lambda line: print(line, flush=True),
    fallback: Callable[..., Awaitable[None]] | None = None,
    fallback_lines: Sequence[tuple[str, str]] = (),
) -> None:
    """Serve ``routes`` (prefix -> :class:`~sockjs_server.asgi.SockJSApp`) at ``--host``/``--port``
    (the CLI's ``--server builtin``); other paths go to ``fallback``, announced as ``fallback_lines``."""
    from ...asgi.app import SockJSRouter
    from ..listening import listening_socket

    router = SockJSRouter(routes, fallback)
    lines = [(labels.get(prefix, "SockJS endpoint"), prefix) for prefix in routes] + list(fallback_lines)

    def started(server: Server) -> None:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        for label, path in lines:
            announce(f"{label} at http://{host}:{port}{path}")
        announce("(Ctrl+C to stop)")

    run(router, router.apps, sock=listening_socket(args), uvloop=bool(getattr(args, "uvloop", False)), started=started)
