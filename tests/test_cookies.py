"""JSESSIONID for sticky load balancers, only when ``cookie_needed``."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import OPEN, Reply, SockJSClient, new_id, reply_of


def set_cookie_parts(headers: Mapping[str, str]) -> list[str]:
    value = headers.get("Set-Cookie")
    assert value, "no Set-Cookie header"
    return [part.strip() for part in value.split(";")]


def assert_cookie(headers: Mapping[str, str], value: str = "dummy") -> None:
    parts = set_cookie_parts(headers)
    assert parts[0] == f"JSESSIONID={value}"
    assert "path=/" in [p.lower() for p in parts[1:]]


async def test_info_says_cookies_are_needed_but_sets_none(testserver: TestClient) -> None:
    reply = await reply_of(await testserver.get("/cookie_needed_echo/info"))
    assert reply.status == 200
    assert reply.header("Set-Cookie") is None
    assert json.loads(reply.body)["cookie_needed"] is True


async def test_xhr_sets_a_dummy_cookie_or_echoes_the_client_one(cookie_client: SockJSClient) -> None:
    reply = await cookie_client.xhr(new_id())
    assert reply.body == b"o\n"
    assert_cookie(reply.headers)
    # A cookie the client already has is echoed back.
    cookie_client.http.session.cookie_jar.clear()
    reply = await cookie_client.xhr(new_id(), headers={"Cookie": "JSESSIONID=abcdef"})
    assert reply.body == b"o\n"
    assert_cookie(reply.headers, "abcdef")


@pytest.mark.parametrize("transport", ["xhr_streaming", "eventsource", "htmlfile"])
async def test_streaming_transports_set_the_cookie(cookie_client: SockJSClient, transport: str) -> None:
    async with await cookie_client.stream(new_id(), transport) as stream:
        assert stream.status == 200
        assert_cookie(stream.headers)
        assert await stream.frame() == OPEN


async def test_jsonp_and_jsonp_send_set_the_cookie(cookie_client: SockJSClient) -> None:
    session = new_id()
    reply = await cookie_client.jsonp(session, "callback")
    assert reply.body == b'/**/callback("o");\r\n'
    assert_cookie(reply.headers)
    reply = await cookie_client.jsonp_send(session, "x")
    assert (reply.status, reply.body) == (200, b"ok")
    assert_cookie(reply.headers)


async def test_xhr_send_sets_the_cookie(cookie_client: SockJSClient) -> None:
    session = await cookie_client.open_xhr()
    reply: Reply = await cookie_client.xhr_send(session, "x")
    assert reply.status == 204
    assert_cookie(reply.headers)


async def test_no_cookie_unless_needed(echo_client: SockJSClient) -> None:
    session = new_id()
    replies = [await echo_client.xhr(session, headers={"Cookie": "JSESSIONID=abc"})]
    replies.append(await echo_client.xhr_send(session, "x"))
    replies.append(await echo_client.jsonp(session))
    for reply in replies:
        assert reply.header("Set-Cookie") is None
    async with await echo_client.stream(new_id(), "eventsource") as stream:
        assert "Set-Cookie" not in stream.headers


@pytest.mark.parametrize("path", ["/cookie_needed_echo", "/cookie_needed_echo/iframe.html"])
async def test_static_pages_set_no_cookie(testserver: TestClient, path: str) -> None:
    reply = await reply_of(await testserver.get(path))
    assert reply.header("Set-Cookie") is None
