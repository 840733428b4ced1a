"""The built-in server (``--server builtin``) over raw sockets: HTTP/1.1 framing, its limits, bad input, lifespan.

The SockJS behaviour on this server is covered by every layer-parametrised test
(layer ``builtin``); these tests are about what the server itself decides.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_server import BuiltinServer
from sockjs_client import new_id

from sockjs_server import Options, Session
from sockjs_server.asgi import SockJSApp, SockJSRouter
from sockjs_server.core.http import WEBSOCKET_PUSH

TIMEOUT = 5.0


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


async def plain(scope: Any, receive: Any, send: Any) -> None:
    """A small ASGI app: echoes the request body (or the path) with a Content-Length."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    if scope["path"] == "/nothing":
        return
    if scope["path"] == "/bad-header":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-evil", b"a\r\nset-cookie: x=1")]})
        await send({"type": "http.response.body", "body": b"no"})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = body or scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]})  # fmt: skip
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[BuiltinServer]:
    limits = getattr(request, "param", {})
    srv = BuiltinServer(plain, **limits)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


async def exchange(port: int, data: bytes, *, until_closed: bool = True, read: int = 65536) -> bytes:
    """Write ``data`` and read the answer (until the server closes, or one read)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if until_closed:
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        return await asyncio.wait_for(reader.read(read), TIMEOUT)
    finally:
        writer.close()


def statuses(answer: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(server: BuiltinServer) -> None:
    requests = b"".join(b"GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
    answer = await exchange(server.port, requests + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(answer) == [200, 200, 200, 200]
    assert answer.index(b"/r0") < answer.index(b"/r1") < answer.index(b"/r2") < answer.index(b"/last")
    assert answer.count(b"connection: close") == 1


async def test_http_1_0_closes_unless_keep_alive_and_streams_without_chunks(server: BuiltinServer) -> None:
    answer = await exchange(server.port, b"GET /stream HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in answer.lower() and answer.endswith(b"one two three")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(2):
            writer.write(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert b"connection: keep-alive" in head
            assert await asyncio.wait_for(reader.readexactly(3), TIMEOUT) == b"/ka"
    finally:
        writer.close()


async def test_streaming_answer_is_chunked_on_http_1_1(server: BuiltinServer) -> None:
    answer = await exchange(server.port, b"GET /stream HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert b"transfer-encoding: chunked" in answer
    assert answer.endswith(b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n")


async def test_chunked_request_body_is_decoded(server: BuiltinServer) -> None:
    body = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
    answer = await exchange(server.port, b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
    assert statuses(answer) == [200] and answer.endswith(b"hello world")


async def test_body_in_pieces_and_expect_continue(server: BuiltinServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"01234")
        await asyncio.sleep(0.05)
        writer.write(b"56789")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(10), TIMEOUT) == b"0123456789"
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /x HTTP/2.0\r\n\r\n", 505),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        (b"GET x HTTP/1.1\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /x HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n", 400),
        (b"GET /x HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET /x HTTP/1.1\r\nBig: " + b"x" * 17000 + b"\r\n\r\n", 431),
        (b"GET /" + b"x" * 17000, 431),
    ],
)
async def test_malformed_requests_get_their_status_and_a_close(server: BuiltinServer, request_bytes: bytes, status: int) -> None:
    answer = await exchange(server.port, request_bytes)
    assert statuses(answer) == [status]
    assert b"connection: close" in answer


async def test_the_application_s_failures_are_500(server: BuiltinServer) -> None:
    for path in (b"/boom", b"/nothing", b"/bad-header"):
        answer = await exchange(server.port, b"GET %s HTTP/1.1\r\n\r\n" % path)
        assert statuses(answer) == [500], path
        assert b"set-cookie" not in answer


@pytest.mark.parametrize("server", [{"head_timeout": 0.2, "keep_alive_timeout": 0.2, "body_timeout": 0.2}], indirect=True)
async def test_a_head_not_completed_in_time_is_408_and_idle_connections_close(server: BuiltinServer) -> None:
    answer = await exchange(server.port, b"GET /slow HTTP/1.1\r\nHost: x\r\n")
    assert statuses(answer) == [408]
    answer = await exchange(server.port, b"POST /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert statuses(answer) == [408] and b"body" in answer
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # idle: closed without an answer
    finally:
        writer.close()


async def _handshake(port: int, path: str, extra: bytes = b"", key: bytes | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)) if key is None else key
    writer.write(
        b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\n%s\r\n" % (path.encode(), key, extra)
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return reader, writer, head


def _client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    header = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        header += bytes([0x80 | length])
    elif length < 65536:
        header += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + length.to_bytes(8, "big")
    return header + mask + masked


async def _server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


@pytest.fixture
async def sockjs_server() -> AsyncIterator[BuiltinServer]:
    srv = BuiltinServer(SockJSRouter({"/echo": SockJSApp(echo, options=Options(), prefix="/echo")}))
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


async def test_websocket_version_and_key_are_checked(sockjs_server: BuiltinServer) -> None:
    path = f"/echo/000/{new_id()}/websocket"
    _, writer, head = await _handshake(sockjs_server.port, path, b"Sec-WebSocket-Version: 6\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 426") and b"sec-websocket-version: 13, 8, 7" in head
    for version in (b"7", b"8"):  # the hybi drafts sockjs-protocol still tests
        _, writer, head = await _handshake(sockjs_server.port, f"/echo/000/{new_id()}/websocket", b"Sec-WebSocket-Version: %s\r\n" % version)
        writer.close()
        assert head.startswith(b"HTTP/1.1 101")
    _, writer, head = await _handshake(sockjs_server.port, path, b"Sec-WebSocket-Version: 13\r\n", key=b"short")
    writer.close()
    assert head.startswith(b"HTTP/1.1 400")


async def test_websocket_ping_fragments_and_close(sockjs_server: BuiltinServer) -> None:
    path = f"/echo/000/{new_id()}/websocket"
    reader, writer, head = await _handshake(sockjs_server.port, path, b"Sec-WebSocket-Version: 13\r\n")
    try:
        assert head.startswith(b"HTTP/1.1 101")
        assert await _server_frame(reader) == (1, b"o")
        writer.write(_client_frame(9, b"are you there"))
        assert await _server_frame(reader) == (10, b"are you there")
        # A message in three fragments, a ping between them.
        writer.write(_client_frame(1, b'["hel', fin=False) + _client_frame(9, b"") + _client_frame(0, b"lo", fin=False))
        writer.write(_client_frame(0, b'"]'))
        assert await _server_frame(reader) == (10, b"")
        assert await _server_frame(reader) == (1, b'a["hello"]')
        writer.write(_client_frame(8, (1000).to_bytes(2, "big") + b"bye"))
        opcode, payload = await _server_frame(reader)
        assert opcode == 8 and payload[:2] == (1000).to_bytes(2, "big")
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    finally:
        writer.close()


async def test_an_unmasked_client_frame_is_a_protocol_error(sockjs_server: BuiltinServer) -> None:
    path = f"/echo/000/{new_id()}/websocket"
    reader, writer, _ = await _handshake(sockjs_server.port, path, b"Sec-WebSocket-Version: 13\r\n")
    try:
        assert await _server_frame(reader) == (1, b"o")
        writer.write(b"\x81\x04[\"a\"]"[:6])
        opcode, payload = await _server_frame(reader)
        assert opcode == 8 and int.from_bytes(payload[:2], "big") == 1002
    finally:
        writer.close()


async def test_lifespan_runs_on_start_and_stop() -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["ready"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    srv = BuiltinServer(app)
    await srv.start_server()
    await srv.close()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


async def test_an_app_without_lifespan_is_served() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("http only")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    srv = BuiltinServer(app)
    await srv.start_server()
    try:
        answer = await exchange(srv.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert statuses(answer) == [204]
    finally:
        await srv.close()


async def test_shutdown_sends_close_frames_to_open_sessions(sockjs_server: BuiltinServer) -> None:
    path = f"/echo/000/{new_id()}/websocket"
    reader, writer, _ = await _handshake(sockjs_server.port, path, b"Sec-WebSocket-Version: 13\r\n")
    try:
        assert await _server_frame(reader) == (1, b"o")
        closing = asyncio.ensure_future(sockjs_server.close())
        assert await _server_frame(reader) == (1, b'c[1001,"Server shutting down"]')
        writer.write(_client_frame(8, (1000).to_bytes(2, "big")))
        await asyncio.wait_for(closing, TIMEOUT)
    finally:
        writer.close()


async def test_a_quiet_websocket_is_pinged_and_closed_when_the_peer_is_dead() -> None:
    srv = BuiltinServer(SockJSRouter({"/echo": SockJSApp(echo, prefix="/echo")}), ping_interval=0.2, ping_timeout=0.3)
    await srv.start_server()
    try:
        reader, writer, head = await _handshake(srv.port, "/echo/websocket", b"Sec-WebSocket-Version: 13\r\n")
        try:
            assert head.startswith(b"HTTP/1.1 101")
            assert await _server_frame(reader) == (9, b"")
            writer.write(_client_frame(10, b""))  # alive: answered
            assert await _server_frame(reader) == (9, b"")  # quiet again: pinged again
            opcode, payload = await _server_frame(reader)  # no answer this time
            assert opcode == 8 and int.from_bytes(payload[:2], "big") == 1011
        finally:
            writer.close()
    finally:
        await srv.close()


async def test_pipelined_requests_wait_for_a_client_that_does_not_read(server: BuiltinServer) -> None:
    """Requests sent without reading the answers: the server stops reading instead of buffering answers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds few of the answers
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        request = b"POST /x HTTP/1.1\r\nContent-Length: 4096\r\n\r\n" + b"x" * 4096
        sent = 0
        for _ in range(10000):  # bounded: the server stops reading long before
            writer.write(request)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except asyncio.TimeoutError:
                break
            sent += 1
        assert sent < 10000, "the server kept reading requests whose answers nobody read"
        for conn in server._server.connections:
            assert conn.transport.get_write_buffer_size() <= 4 * 65536
        # The client reads: every request sent is answered, in order.
        answered = 0
        while answered < sent:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert len(await asyncio.wait_for(reader.readexactly(4096), TIMEOUT)) == 4096
            answered += 1
    finally:
        writer.close()


async def test_a_ping_flood_from_a_client_that_does_not_read_piles_up_no_pongs(sockjs_server: BuiltinServer) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", sockjs_server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET /echo/000/%s/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (new_id().encode(), key)
        )
        ping = _client_frame(9, b"p" * 125)
        for _ in range(200):  # 200 x 1000 pings of 125 bytes, bounded by timeouts
            writer.write(ping * 1000)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except asyncio.TimeoutError:
                break
        for conn in sockjs_server._server.connections:
            assert conn.transport.get_write_buffer_size() <= 4 * 65536
    finally:
        writer.close()


def _push_app(log: list[Any], gate: asyncio.Future[None]) -> Any:
    """An ASGI app on the ``sockjs_server.websocket_push`` extension: records what the server pushes;
    the message ``wait`` holds the next ones until ``gate`` is done, ``boom`` raises."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_message(data: str | bytes) -> Any:
            log.append(data)
            if data == "boom":
                raise RuntimeError("boom")
            return gate if data == "wait" else None

        scope["extensions"][WEBSOCKET_PUSH](on_message, ended.set_result)
        log.append(("closed", await ended))

    return app


async def test_websocket_push_hands_messages_over_in_order_and_holds_them_while_the_app_waits() -> None:
    log: list[Any] = []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    srv = BuiltinServer(_push_app(log, gate))
    await srv.start_server()
    try:
        reader, writer, head = await _handshake(srv.port, "/ws", b"Sec-WebSocket-Version: 13\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(_client_frame(1, b"one") + _client_frame(2, b"two") + _client_frame(1, b"wait") + _client_frame(1, b"after"))
        for _ in range(50):
            if "wait" in log:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert log == ["one", b"two", "wait"]  # "after" waits for the app
        gate.set_result(None)
        writer.write(_client_frame(8, (4000).to_bytes(2, "big")))
        opcode, _ = await _server_frame(reader)
        assert opcode == 8
        for _ in range(50):
            if len(log) == 5:
                break
            await asyncio.sleep(0.02)
        assert log == ["one", b"two", "wait", "after", ("closed", 4000)]
        writer.close()
    finally:
        await srv.close()


async def test_websocket_push_an_application_failure_closes_with_1011() -> None:
    log: list[Any] = []
    srv = BuiltinServer(_push_app(log, asyncio.get_running_loop().create_future()))
    await srv.start_server()
    try:
        reader, writer, _ = await _handshake(srv.port, "/ws", b"Sec-WebSocket-Version: 13\r\n")
        writer.write(_client_frame(1, b"boom") + _client_frame(1, b"lost"))
        opcode, payload = await _server_frame(reader)
        assert opcode == 8 and int.from_bytes(payload[:2], "big") == 1011
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        assert log[0] == "boom" and "lost" not in log
        writer.close()
    finally:
        await srv.close()


async def test_sockjs_websockets_take_the_push_path(sockjs_server: BuiltinServer) -> None:
    reader, writer, _ = await _handshake(sockjs_server.port, f"/echo/000/{new_id()}/websocket", b"Sec-WebSocket-Version: 13\r\n")
    try:
        assert await _server_frame(reader) == (1, b"o")
        writer.write(_client_frame(1, b'["a","b"]') + _client_frame(1, b'["c"]'))
        echoed: list[str] = []
        while len(echoed) < 3:
            opcode, payload = await _server_frame(reader)
            assert opcode == 1 and payload.startswith(b"a")
            echoed += json.loads(payload[1:])
        assert echoed == ["a", "b", "c"]
        assert [conn.websocket.push is not None for conn in sockjs_server._server.connections] == [True]
        writer.write(_client_frame(1, b"not json"))
        opcode, payload = await _server_frame(reader)
        assert (opcode, payload) == (8, (3000).to_bytes(2, "big") + b"Broken framing.")
    finally:
        writer.close()


async def _poll(port: int, session_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo/000/%s/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % session_id.encode())
    return reader, writer


async def _answer_body(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    return head, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


async def test_a_waiting_poll_waits_in_no_task_and_is_answered_by_a_message_or_the_shutdown(sockjs_server: BuiltinServer) -> None:
    session_id = new_id()
    reader, writer = await _poll(sockjs_server.port, session_id)
    try:
        head, body = await _answer_body(reader)
        assert head.startswith(b"HTTP/1.1 200") and body == b"o\n"
        writer.write(b"POST /echo/000/%s/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % session_id.encode())
        await asyncio.sleep(0.1)
        waiting = [conn for conn in sockjs_server._server.connections if conn.cycle is not None]
        assert len(waiting) == 1 and not waiting[0].tasks  # the direct path: no task while it waits
        answer = await exchange(sockjs_server.port, b'POST /echo/000/%s/xhr_send HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 6\r\n\r\n["hi"]' % session_id.encode())
        assert statuses(answer) == [204]
        head, body = await _answer_body(reader)
        assert head.startswith(b"HTTP/1.1 200") and body == b'a["hi"]\n' and b"content-type: application/javascript" in head.lower()
        writer.write(b"POST /echo/000/%s/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % session_id.encode())
        await asyncio.sleep(0.1)
        closing = asyncio.ensure_future(sockjs_server.close())
        head, body = await _answer_body(reader)
        assert body == b'c[1001,"Server shutting down"]\n'
        await asyncio.wait_for(closing, TIMEOUT)
    finally:
        writer.close()
