"""JSONP polling: callbacks, the ``/**/`` guard, form and raw ``jsonp_send`` payloads."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import OPEN, JsonpUnwrapper, SockJSClient, messages, new_id, parse_frame, reply_of

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_jsonp_transport(echo_client: SockJSClient) -> None:
    session = new_id()
    url = echo_client.url(session, "jsonp")
    reply = await reply_of(await echo_client.http.get(url + "?c=%63allback"))
    assert reply.status == 200
    assert (reply.header("Content-Type") or "").replace(" ", "") == "application/javascript;charset=UTF-8"
    assert reply.header("Cache-Control") == NO_CACHE
    assert reply.header("Expires") is None and reply.header("Last-Modified") is None
    # "/**/" keeps a reflected callback from being sniffed as something else (Rosetta Flash).
    assert reply.body == b'/**/callback("o");\r\n'

    reply = await reply_of(
        await echo_client.http.post(echo_client.url(session, "jsonp_send"), data="d=%5B%22x%22%5D", headers=FORM)
    )
    # 200 "ok" rather than 204: Konqueror mishandles 204.
    assert (reply.status, reply.body) == (200, b"ok")
    assert (reply.header("Content-Type") or "").replace(" ", "") == "text/plain;charset=UTF-8"
    assert reply.header("Cache-Control") == NO_CACHE

    reply = await reply_of(await echo_client.http.get(url + "?c=%63allback"))
    assert reply.body == b'/**/callback("a[\\"x\\"]");\r\n'


async def test_jsonp_bad_payloads(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session, "x") == OPEN
    reply = await echo_client.jsonp_send(session, body="d=%5B%22x")
    assert reply.status == 500
    assert "Broken JSON encoding." in reply.text
    for body in ("", "d=", "p=p"):
        reply = await echo_client.jsonp_send(session, body=body)
        assert reply.status == 500, body
        assert "Payload expected." in reply.text, body
    reply = await echo_client.jsonp_send(session, "b")
    assert (reply.status, reply.body) == (200, b"ok")
    assert await echo_client.jsonp_frame(session, "x") == messages("b")


@pytest.mark.parametrize("data", ["d=%22abc%22", "d=123", "d=%7B%7D", "d=%5Bnull%5D", "d=%5B1%5D"])
async def test_jsonp_payload_must_be_an_array_of_strings(echo_client: SockJSClient, data: str) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session) == OPEN
    reply = await echo_client.jsonp_send(session, body=data)
    assert reply.status == 500
    assert "Broken JSON encoding." in reply.text


async def test_jsonp_send_accepts_form_and_raw_bodies(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session, "x") == OPEN
    reply = await echo_client.jsonp_send(session, body="d=%5B%22abc%22%5D")
    assert reply.body == b"ok"
    # A raw body is taken as it is: "%61" is not URL-decoded.
    reply = await echo_client.jsonp_send(session, body='["%61bc"]', form=False, headers={"Content-Type": "text/plain"})
    assert reply.body == b"ok"
    reply = await echo_client.jsonp(session, "x")
    assert reply.body == b'/**/x("a[\\"abc\\",\\"%61bc\\"]");\r\n'


async def test_jsonp_form_with_a_charset(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session) == OPEN
    reply = await echo_client.jsonp_send(
        session, body="d=%5B%22%C3%A9%22%5D", headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    )
    assert reply.body == b"ok"
    assert await echo_client.jsonp_frame(session) == messages("é")


async def test_jsonp_form_with_other_fields(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session) == OPEN
    reply = await echo_client.jsonp_send(session, body="a=1&d=%5B%22x%22%5D&z=2")
    assert reply.body == b"ok"
    assert await echo_client.jsonp_frame(session) == messages("x")


async def test_jsonp_close_is_replayed(close_client: SockJSClient) -> None:
    session = new_id()
    assert (await close_client.jsonp(session, "x")).body == b'/**/x("o");\r\n'
    for _ in range(2):
        assert (await close_client.jsonp(session, "x")).body == b'/**/x("c[3000,\\"Go away!\\"]");\r\n'


async def test_jsonp_empty_frames(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session, "x") == OPEN
    assert (await echo_client.jsonp_send(session, body="d=%5B%5D")).body == b"ok"
    assert (await echo_client.jsonp_send(session, "x")).body == b"ok"
    assert await echo_client.jsonp_frame(session, "x") == messages("x")


async def test_jsonp_send_to_unknown_session_is_404(echo_client: SockJSClient) -> None:
    assert (await echo_client.jsonp_send(new_id(), "x")).status == 404


@pytest.mark.parametrize("callback", ["cb\n", "cb%0A", "\ncb"])
async def test_callback_with_a_newline_is_refused(testserver: TestClient, callback: str) -> None:
    # A "$"-anchored check would let "cb\n" through; the name must match in full.
    reply = await reply_of(await testserver.get(f"/echo/000/{new_id()}/jsonp", params={"c": callback.replace("%0A", "\n")}))
    assert reply.status == 500
    assert 'invalid "callback" parameter' in reply.text


async def test_jsonp_escapes_javascript_line_terminators(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.jsonp_frame(session) == OPEN
    assert (await echo_client.jsonp_send(session, "a\u2028b\u2029c")).body == b"ok"
    reply = await echo_client.jsonp(session)
    assert "\u2028".encode() not in reply.body and "\u2029".encode() not in reply.body
    text, rest = JsonpUnwrapper("cb").split(reply.body)
    assert text is not None and rest == b""
    assert parse_frame(text) == messages("a\u2028b\u2029c")


async def test_jsonp_poll_while_another_receiver_waits_gets_2010(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.stream(session, "xhr_streaming") as stream:
        assert await stream.frame() == OPEN
        reply = await echo_client.jsonp(session, "cb")
        assert reply.body == b'/**/cb("c[2010,\\"Another connection still open\\"]");\r\n'
        assert (await echo_client.jsonp_send(session, "x")).body == b"ok"
        assert await stream.frame() == messages("x")
