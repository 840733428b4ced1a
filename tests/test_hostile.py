"""Hostile input found by probing the server, over real sockets: each gets its documented answer."""

from __future__ import annotations

import json
import logging

import pytest

from sockjs_client import (
    OPEN,
    RawHTTP,
    Serve,
    messages,
    new_id,
    raw_ws_handshake,
    read_ws_frame,
    server_decides,
    ws_frame,
)

# -- nosniff on script and HTML responses -------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "query"),
    [("jsonp", "?c=cb"), ("htmlfile", "?c=cb"), ("xhr", ""), ("eventsource", ""), ("xhr_streaming", "")],
)
async def test_receiving_responses_are_nosniff(serve: Serve, transport: str, query: str) -> None:
    served = await serve()
    method = "GET" if transport in ("jsonp", "htmlfile", "eventsource") else "POST"
    async with await RawHTTP.connect(served.host, served.port) as conn:
        head = await conn.request(method, served.client.url(new_id(), transport) + query)
        assert head.status == 200
        assert head.header("x-content-type-options") == "nosniff"


async def test_iframe_page_is_nosniff(serve: Serve) -> None:
    served = await serve()
    reply = await served.http.get("/echo/iframe.html")
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


# -- the websocket handshake ---------------------------------------------------------------------


def _handshake(path: str, upgrades: list[str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: Upgrade"]
    lines += [f"Upgrade: {value}" for value in upgrades]
    lines += ["Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==", "Sec-WebSocket-Version: 13"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "upgrades",
    [["websocket", "h2c"], ["h2c", "websocket"], ["websocket", "websocket"], ["websocket, h2c"], ["h2c"]],
)
@pytest.mark.parametrize("raw", [False, True])
async def test_several_or_conflicting_upgrade_headers_get_400(
    serve: Serve, upgrades: list[str], raw: bool, layer: str
) -> None:
    server_decides(
        layer, uvicorn="it parses the Upgrade headers",
        granian="it switches to websocket when any Upgrade value is websocket",
    )  # fmt: skip
    served = await serve()
    path = "/echo/websocket" if raw else served.client.url(new_id(), "websocket")
    async with await RawHTTP.connect(served.host, served.port) as conn:
        await conn.send(_handshake(path, upgrades))
        head = await conn.read_head()
        assert head.status == 400


async def test_one_upgrade_header_still_switches(serve: Serve) -> None:
    served = await serve()
    async with await RawHTTP.connect(served.host, served.port) as conn:
        await conn.send(_handshake(served.client.url(new_id(), "websocket"), ["WebSocket"]))
        assert (await conn.read_head()).status == 101


HIXIE76 = (
    b"GET /echo/000/abc/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\n"
    b"Connection: Upgrade\r\nOrigin: http://example.com\r\n"
    b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U"
)


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_hixie76_handshake_gets_a_clean_400(
    serve: Serve, caplog: pytest.LogCaptureFixture, level: int, layer: str
) -> None:
    server_decides(
        layer, uvicorn="it answers the handshake",
        granian="it answers the handshake with 400 itself: the endpoint never logs it" if level == logging.DEBUG else None,
    )  # fmt: skip
    caplog.set_level(level)
    served = await serve()
    async with await RawHTTP.connect(served.host, served.port) as conn:
        await conn.send(HIXIE76)
        head = await conn.read_head()
        assert head.status == 400
        await conn.read_to_eof()
    records = [r for r in caplog.records if r.name.startswith(("aiohttp.server", "sockjs_server"))]
    assert not [r for r in records if r.levelno >= logging.WARNING or r.exc_info]
    if level == logging.DEBUG:
        assert any("hixie-76" in r.getMessage() for r in records)
    # The server is fine afterwards.
    session = await served.client.open_xhr()
    assert (await served.client.xhr_send(session, "still")).status == 204
    assert await served.client.xhr_frame(session) == messages("still")


# -- client close codes --------------------------------------------------------------------------


async def _close_with(served_port: int, host: str, path: str, payload: bytes) -> int:
    async with await RawHTTP.connect(host, served_port) as conn:
        assert (await raw_ws_handshake(conn, path)).status == 101
        assert await read_ws_frame(conn) == (1, b"o")
        await conn.send(ws_frame(0x8, payload))
        while True:
            opcode, data = await read_ws_frame(conn)
            if opcode == 0x8:
                return int.from_bytes(data[:2], "big")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
async def test_forbidden_close_codes_are_answered_with_1002(serve: Serve, code: int) -> None:
    served = await serve()
    path = served.client.url(new_id(), "websocket")
    assert await _close_with(served.port, served.host, path, code.to_bytes(2, "big")) == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
async def test_allowed_close_codes_are_answered_with_1000(serve: Serve, code: int, layer: str) -> None:
    server_decides(
        layer, uvicorn="its websockets library echoes the client's close code",
        granian="it echoes the client's close code",
    )  # fmt: skip
    served = await serve()
    path = served.client.url(new_id(), "websocket")
    assert await _close_with(served.port, served.host, path, code.to_bytes(2, "big") + b"bye") == 1000


async def test_a_close_without_a_code_is_answered_with_1000(serve: Serve, layer: str) -> None:
    server_decides(
        layer, uvicorn="its websockets library echoes an empty close", granian="it echoes an empty close"
    )
    served = await serve()
    path = served.client.url(new_id(), "websocket")
    assert await _close_with(served.port, served.host, path, b"") == 1000


# -- max_message_size, at the boundary -----------------------------------------------------------


@pytest.mark.parametrize("compress", [0, 15])
async def test_a_message_of_exactly_max_message_size_is_accepted(serve: Serve, compress: int) -> None:
    served = await serve(max_message_size=100)
    exact = json.dumps(["x" * 96])
    assert len(exact.encode()) == 100
    async with await served.client.websocket(new_id(), compress=compress) as ws:
        assert await ws.frame() == OPEN
        await ws.send_raw(exact)
        assert await ws.frame() == messages("x" * 96)
        await ws.send_raw(json.dumps(["x" * 97]))  # 101 bytes
        assert await ws.wait_closed() == 1009


async def test_raw_websocket_boundary_is_the_same(serve: Serve) -> None:
    served = await serve(max_message_size=100)
    ws = await served.client.raw_websocket()
    try:
        await ws.send_str("y" * 100)
        assert (await ws.receive()).data == "y" * 100
        await ws.send_str("y" * 101)
        msg = await ws.receive()
        assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
        assert ws.close_code == 1009
    finally:
        await ws.close()
