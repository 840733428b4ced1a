"""The conformance test server's endpoints behave as the protocol suite expects."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from sockjs_client import OPEN, SockJSClient, closing, messages, new_id


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
