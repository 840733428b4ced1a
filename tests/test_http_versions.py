"""HTTP/1.0 and HTTP/1.1 framing over a raw socket: lengths, chunking, keep-alive, connection close."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import RawHTTP, new_id, server_decides

GREETING = b"Welcome to SockJS!\n"


async def connect(testserver: TestClient) -> RawHTTP:
    server = testserver.server
    assert server.port is not None
    return await RawHTTP.connect(str(server.host), server.port)


# -- HTTP/1.0 --------------------------------------------------------------------------------------


async def test_http10_greeting(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        head = await conn.request("GET", "/echo", version="1.0", headers={"Connection": "Keep-Alive"})
        assert head.status == 200
        assert head.version in ("1.0", "1.1")
        assert head.header("transfer-encoding") is None  # not in HTTP/1.0
        length = head.header("content-length")
        if length is None:
            assert (head.header("connection") or "").lower() == "close"
            assert await conn.read_to_eof() == GREETING
            return
        assert int(length) == len(GREETING)
        assert await conn.read(len(GREETING)) == GREETING
        connection = (head.header("connection") or "").lower()
        if connection in ("", "close"):
            assert await conn.at_eof()
        else:
            assert connection == "keep-alive"
            head = await conn.request("GET", "/echo", version="1.0", headers={"Connection": "Keep-Alive"})
            assert head.status == 200
            assert await conn.read(len(GREETING)) == GREETING


async def test_http10_without_keep_alive_closes(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        head = await conn.request("GET", "/echo", version="1.0")
        assert head.status == 200
        assert await conn.read_to_eof() == GREETING


async def test_http10_streaming_ends_with_the_connection(testserver: TestClient, layer: str) -> None:
    server_decides(layer, uvicorn="it answers HTTP/1.0 with a chunked body")
    async with await connect(testserver) as conn:
        head = await conn.request(
            "POST", f"/close/000/{new_id()}/xhr_streaming", version="1.0", headers={"Connection": "Keep-Alive"}
        )
        assert head.status == 200
        # Neither chunking (HTTP/1.1 only) nor a length (unknown yet): the body ends with the connection.
        assert head.header("transfer-encoding") is None
        assert head.header("content-length") is None
        assert (head.header("connection") or "close").lower() in ("close", "keep-alive")
        assert await conn.read_to_eof() == b"h" * 2048 + b"\n" + b"o\n" + b'c[3000,"Go away!"]\n'


async def test_http10_polling(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        head = await conn.request("POST", f"/echo/000/{new_id()}/xhr", version="1.0")
        assert head.status == 200
        assert head.header("transfer-encoding") is None
        body = await conn.read_to_eof()
        if head.header("content-length") is not None:
            assert int(head.header("content-length") or 0) == len(body)
        assert body == b"o\n"


# -- HTTP/1.1 --------------------------------------------------------------------------------------


async def test_http11_greeting_keeps_the_connection(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        for _ in range(3):
            head = await conn.request("GET", "/echo", headers={"Connection": "Keep-Alive"})
            assert head.status == 200
            assert head.version == "1.1"
            assert (head.header("connection") or "").lower() in ("", "keep-alive")
            if head.header("content-length") is not None:
                assert head.header("transfer-encoding") is None
                assert int(head.header("content-length") or 0) == len(GREETING)
                assert await conn.read(len(GREETING)) == GREETING
            else:
                assert (head.header("transfer-encoding") or "").lower() == "chunked"
                assert await conn.read_chunk() == GREETING
                assert await conn.read_chunk() == b""


async def test_http11_streaming_is_chunked_frame_by_frame(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        head = await conn.request("POST", f"/close/000/{new_id()}/xhr_streaming", headers={"Connection": "Keep-Alive"})
        assert head.status == 200
        assert (head.header("transfer-encoding") or "").lower() == "chunked"
        assert head.header("content-length") is None
        assert await conn.read_chunk() == b"h" * 2048 + b"\n"
        assert await conn.read_chunk() == b"o\n"
        assert await conn.read_chunk() == b'c[3000,"Go away!"]\n'
        assert await conn.read_chunk() == b""
        # The connection is still good for another request.
        head = await conn.request("GET", "/echo")
        assert head.status == 200


async def test_http11_pipelined_requests(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        session = new_id()
        await conn.send(
            f"POST /echo/000/{session}/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            f"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        first = await conn.read_head()
        assert first.status == 200
        assert await conn.read(int(first.header("content-length") or 0)) == b"o\n"
        second = await conn.read_head()
        assert second.status == 200
        assert await conn.read(int(second.header("content-length") or 0)) == GREETING


# -- request bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_post_without_content_length(testserver: TestClient, version: str) -> None:
    async with await connect(testserver) as conn:
        # No Content-Length and no body at all: must not hang or break the server.
        await conn.send(f"POST /echo/000/{new_id()}/xhr HTTP/{version}\r\nHost: x\r\n\r\n".encode())
        head = await conn.read_head()
        assert head.status == 200
        length = head.header("content-length")
        body = await conn.read(int(length)) if length is not None else await conn.read_to_eof()
        assert body == b"o\n"


async def test_chunked_request_body(testserver: TestClient) -> None:
    async with await connect(testserver) as conn:
        session = new_id()
        head = await conn.request("POST", f"/echo/000/{session}/xhr")
        assert await conn.read(int(head.header("content-length") or 0)) == b"o\n"
        await conn.send(
            f"POST /echo/000/{session}/xhr_send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            '3\r\n["a\r\n2\r\n"]\r\n0\r\n\r\n'.encode()
        )
        head = await conn.read_head()
        assert head.status == 204
        head = await conn.request("POST", f"/echo/000/{session}/xhr")
        assert await conn.read(int(head.header("content-length") or 0)) == b'a["a"]\n'


async def test_conflicting_length_headers_are_refused(testserver: TestClient, layer: str) -> None:
    # Request smuggling: Content-Length together with chunked must not be taken at face value.
    server_decides(
        layer, granian="it reads the body as chunked and closes the connection after the answer (RFC 9112 6.3 allows either)"
    )
    async with await connect(testserver) as conn:
        session = new_id()
        await conn.send(
            f"POST /echo/000/{session}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
        )
        head = await conn.read_head()
        assert head.status == 400
