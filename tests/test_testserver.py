"""The conformance test server's endpoints behave as the protocol suite expects, on every web layer
and as the ``sockjs-server testserver`` command on every ``--server``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import GUARD, OPEN, SockJSClient, bounded, closing, messages, new_id

ROOT = Path(__file__).resolve().parent.parent


async def test_ticker_ticks(testserver: TestClient) -> None:
    ticker = SockJSClient(testserver, "/ticker")
    session = await ticker.open_xhr()
    assert await ticker.xhr_frame(session) == messages("tick!")


async def test_amplify_answers_two_to_the_n(testserver: TestClient) -> None:
    amplify = SockJSClient(testserver, "/amplify")
    async with await amplify.websocket(new_id()) as ws:
        assert await ws.frame() == OPEN
        await ws.send("3")
        assert await ws.frame() == messages("x" * 8)
        await ws.send("not a number")
        assert await ws.frame() == messages("xx")


async def test_broadcast_reaches_everyone(testserver: TestClient) -> None:
    broadcast = SockJSClient(testserver, "/broadcast")
    one, two = await broadcast.open_xhr(), await broadcast.open_xhr()
    assert (await broadcast.xhr_send(one, "hello all")).status == 204
    assert await broadcast.xhr_frame(one) == messages("hello all")
    assert await broadcast.xhr_frame(two) == messages("hello all")


async def test_close_endpoint(close_client: SockJSClient) -> None:
    session = new_id()
    assert await close_client.xhr_frame(session) == OPEN
    assert await close_client.xhr_frame(session) == closing(3000, "Go away!")


async def test_echo_has_the_small_response_limit(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.stream(session, "xhr_streaming") as stream:
        assert await stream.frame() == OPEN
        assert (await echo_client.xhr_send(session, "x" * 5000)).status == 204
        assert await stream.frame() == messages("x" * 5000)
        assert await stream.ended()


async def test_iframe_page_uses_the_given_sockjs_url(testserver: TestClient) -> None:
    response = await testserver.get("/echo/iframe.html")
    assert '<script src="/static/sockjs.js"></script>' in await response.text()


# -- the command, as a process: ``sockjs-server testserver --server ...`` ---------------------------

SERVERS = ["aiohttp", "uvicorn", "granian", "builtin"]


async def start_testserver(server: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``sockjs-server testserver --server SERVER --port 0``; return it and its base URL."""
    if server not in ("aiohttp", "builtin"):
        pytest.importorskip(server)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sockjs_server", "testserver", "--port", "0", "--server", server, "--no-session-log",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "(Ctrl+C to stop)":
        line = await bounded(process.stdout.readline(), 3 * GUARD)
        if not line:
            process.kill()
            raise AssertionError(f"testserver --server {server} exited: {lines}")
        lines.append(line.decode().rstrip("\n"))
    match = re.fullmatch(r"SockJS test endpoint /echo at (http://127\.0\.0\.1:\d+)/echo", lines[0])
    assert match, lines
    assert len(lines) == 8, lines  # seven endpoints
    return process, match.group(1)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("server", SERVERS)
async def test_command_serves_the_suite_and_closes_sessions_when_stopped(server: str, stop_signal: int) -> None:
    process, base = await start_testserver(server)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/disabled_websocket_echo/info") as response:
                assert json.loads(await response.read())["websocket"] is False
            async with http.post(base + "/cookie_needed_echo/000/c/xhr") as response:
                assert await response.text() == "o\n"
                assert "JSESSIONID" in response.cookies
            for expected in ("o\n", 'c[3000,"Go away!"]\n'):
                async with http.post(base + "/close/000/c/xhr") as response:
                    assert await response.text() == expected
            async with http.ws_connect(base + "/echo/000/e/websocket") as ws:
                assert await bounded(ws.receive_str()) == "o"
                await ws.send_str('["over a real socket"]')
                assert await bounded(ws.receive_str()) == 'a["over a real socket"]'
                async with http.post(base + "/echo/000/s/xhr_streaming") as stream:
                    assert await bounded(stream.content.readline()) == b"h" * 2048 + b"\n"  # the prelude
                    assert await bounded(stream.content.readline()) == b"o\n"
                    process.send_signal(stop_signal)
                    assert await bounded(ws.receive_str()) == 'c[1001,"Server shutting down"]'
                    assert await bounded(stream.content.read()) == b'c[1001,"Server shutting down"]\n'
        returncode = await bounded(process.wait())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode(errors="replace")
    assert returncode == 0, errors
    assert "Traceback" not in errors
