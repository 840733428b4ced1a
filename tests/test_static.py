"""The fixed URLs of an endpoint: greeting, 404s and 405s, the iframe page, /info and preflights."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import Recorder, Reply, Serve, new_id, reply_of

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


def content_type(reply: Reply) -> str:
    return (reply.header("Content-Type") or "").replace(" ", "")


def assert_long_cached(reply: Reply) -> None:
    cache = reply.header("Cache-Control") or ""
    assert "public" in cache
    assert re.search(r"max-age=[1-9][0-9]{6,}", cache), cache
    assert reply.header("Expires")


def assert_no_cors_credentials(reply: Reply) -> None:
    assert reply.header("Access-Control-Allow-Origin") == "*"
    assert reply.header("Access-Control-Allow-Credentials") is None


async def get(http: TestClient, path: str, **kwargs: Any) -> Reply:
    return await reply_of(await http.get(path, **kwargs))


async def request(http: TestClient, method: str, path: str, **kwargs: Any) -> Reply:
    return await reply_of(await http.request(method, path, **kwargs))


# -- greeting ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/echo", "/echo/"])
async def test_greeting(testserver: TestClient, path: str) -> None:
    reply = await get(testserver, path)
    assert reply.status == 200
    assert content_type(reply) == "text/plain;charset=UTF-8"
    assert reply.body == b"Welcome to SockJS!\n"
    assert reply.header("Set-Cookie") is None


async def test_greeting_head(testserver: TestClient) -> None:
    reply = await request(testserver, "HEAD", "/echo")
    assert reply.status == 200
    assert reply.body == b""


@pytest.mark.parametrize(
    "suffix", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/", "/a/a/a/a", "/info/x", "/websocket/x"]
)
async def test_unknown_urls_under_the_prefix_are_404(testserver: TestClient, suffix: str) -> None:
    assert (await get(testserver, "/echo" + suffix)).status == 404


async def test_wrong_method_on_greeting_is_a_bare_405(testserver: TestClient) -> None:
    reply = await request(testserver, "POST", "/echo")
    assert_bare_405(reply)


def assert_bare_405(reply: Reply) -> None:
    assert reply.status == 405
    assert reply.header("Allow")
    assert reply.header("Content-Type") is None
    assert reply.body == b""


# -- iframe page ---------------------------------------------------------------------------

IFRAME = re.compile(
    r"""<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="(?P<url>[^"]*)"></script>
  <script>
    document\.domain = document\.domain;
    SockJS\.bootstrap_iframe\(\);
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe\. It's used for cross domain magic\.</p>
</body>
</html>"""
)


@pytest.mark.parametrize(
    "path",
    [
        "/iframe.html",
        "/iframe-a.html",
        "/iframe-.html",
        "/iframe-0.1.2.html",
        "/iframe-0.1.2abc-dirty.2144.html",
        "/iframe-a.html?t=1234",
        "/iframe-0.1.2.html?t=123414",
        "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123",
    ],
)
async def test_iframe_page(testserver: TestClient, path: str) -> None:
    reply = await get(testserver, "/echo" + path)
    assert reply.status == 200
    assert content_type(reply) == "text/html;charset=UTF-8"
    assert_long_cached(reply)
    assert reply.header("ETag")
    assert reply.header("Last-Modified") is None
    assert reply.header("Set-Cookie") is None
    match = IFRAME.fullmatch(reply.text.strip())
    assert match is not None, reply.text
    assert match.group("url") == "/static/sockjs.js"


@pytest.mark.parametrize(
    "suffix", ["/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML", "/iframe.xml", "/iframe-/.html"]
)
async def test_malformed_iframe_urls_are_404(testserver: TestClient, suffix: str) -> None:
    assert (await get(testserver, "/echo" + suffix)).status == 404


async def test_iframe_page_etag_and_304(testserver: TestClient) -> None:
    first = await get(testserver, "/echo/iframe.html")
    second = await get(testserver, "/echo/iframe-1.2.3.html")
    etag = first.header("ETag")
    assert etag and etag == second.header("ETag")
    assert first.body == second.body
    cached = await get(testserver, "/echo/iframe.html", headers={"If-None-Match": etag})
    assert cached.status == 304
    assert cached.header("Content-Type") is None
    assert cached.body == b""
    stale = await get(testserver, "/echo/iframe.html", headers={"If-None-Match": '"other"'})
    assert stale.status == 200


async def test_iframe_page_escapes_its_sockjs_url(serve: Serve) -> None:
    served = await serve(sockjs_url='/x.js"></script><script>alert(1)</script>')
    reply = await get(served.http, "/echo/iframe.html")
    assert "<script>alert(1)</script>" not in reply.text
    assert reply.text.count("<script") == 2


async def test_iframe_etag_follows_the_sockjs_url(serve: Serve, testserver: TestClient) -> None:
    other = await serve(sockjs_url="/other/sockjs.js")
    mine = await get(testserver, "/echo/iframe.html")
    theirs = await get(other.http, "/echo/iframe.html")
    assert mine.header("ETag") != theirs.header("ETag")


async def test_iframe_wrong_method(testserver: TestClient) -> None:
    assert_bare_405(await request(testserver, "POST", "/echo/iframe.html"))


# -- /info ---------------------------------------------------------------------------------


async def test_info(testserver: TestClient) -> None:
    reply = await get(testserver, "/echo/info", headers={"Origin": "test"})
    assert reply.status == 200
    assert content_type(reply) == "application/json;charset=UTF-8"
    assert reply.header("Set-Cookie") is None
    assert reply.header("Cache-Control") == NO_CACHE
    assert reply.header("Expires") is None and reply.header("Last-Modified") is None
    assert reply.header("Access-Control-Allow-Origin") == "test"
    assert reply.header("Access-Control-Allow-Credentials") == "true"
    data = json.loads(reply.body)
    assert data["websocket"] is True
    assert data["cookie_needed"] is False
    assert data["origins"] == ["*:*"]
    assert type(data["entropy"]) is int


async def test_info_without_origin_allows_any_origin_without_credentials(testserver: TestClient) -> None:
    assert_no_cors_credentials(await get(testserver, "/echo/info"))


async def test_info_entropy_is_a_fresh_32_bit_number(testserver: TestClient) -> None:
    values = [json.loads((await get(testserver, "/echo/info")).body)["entropy"] for _ in range(8)]
    assert all(0 <= value < 2**32 for value in values)
    assert len(set(values)) > 1


async def test_info_reports_the_options(testserver: TestClient) -> None:
    disabled = json.loads((await get(testserver, "/disabled_websocket_echo/info")).body)
    assert disabled["websocket"] is False
    cookies = await get(testserver, "/cookie_needed_echo/info")
    assert json.loads(cookies.body)["cookie_needed"] is True
    assert cookies.header("Set-Cookie") is None


async def test_info_wrong_method(testserver: TestClient) -> None:
    assert_bare_405(await request(testserver, "POST", "/echo/info"))


# -- preflights ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/echo/info", "OPTIONS, GET"),
        ("/echo/abc/abc/xhr", "OPTIONS, POST"),
        ("/echo/abc/abc/xhr_send", "OPTIONS, POST"),
        ("/echo/abc/abc/xhr_streaming", "OPTIONS, POST"),
    ],
)
@pytest.mark.parametrize("origin", ["test", "null", "https://example.com"])
async def test_preflight(testserver: TestClient, path: str, methods: str, origin: str) -> None:
    reply = await request(
        testserver, "OPTIONS", path, headers={"Origin": origin, "Access-Control-Request-Method": methods}
    )
    assert reply.status in (200, 204)
    assert_long_cached(reply)
    assert int(reply.header("Access-Control-Max-Age") or 0) > 1_000_000
    allowed = reply.header("Access-Control-Allow-Methods") or ""
    for method in methods.split(","):
        assert method.strip() in allowed
    assert reply.body == b""
    # "null" (a page from file://) is echoed too: "*" would be refused with credentials.
    assert reply.header("Access-Control-Allow-Origin") == origin
    assert reply.header("Access-Control-Allow-Credentials") == "true"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Access-Control-Request-Headers": "a, b, c"}, "a, b, c"), ({"Access-Control-Request-Headers": ""}, None), ({}, None)],
)
async def test_preflight_echoes_requested_headers(
    testserver: TestClient, headers: dict[str, str], expected: str | None
) -> None:
    reply = await request(
        testserver,
        "OPTIONS",
        "/echo/000/abc/xhr",
        headers={"Origin": "test", "Access-Control-Request-Method": "POST", **headers},
    )
    assert reply.status in (200, 204)
    assert reply.header("Access-Control-Allow-Origin") == "test"
    assert reply.header("Access-Control-Allow-Headers") == expected


async def test_preflight_does_not_open_a_session(testserver: TestClient) -> None:
    await request(testserver, "OPTIONS", "/echo/000/preflighted/xhr", headers={"Origin": "test"})
    reply = await reply_of(await testserver.post("/echo/000/preflighted/xhr_send", data='["x"]'))
    assert reply.status == 404


# -- allowed origins -------------------------------------------------------------------------


async def test_allowed_origin_gets_cors_headers(serve: Serve) -> None:
    served = await serve(allowed_origins={"https://good.example"})
    reply = await get(served.http, "/echo/info", headers={"Origin": "https://good.example"})
    assert reply.header("Access-Control-Allow-Origin") == "https://good.example"
    assert reply.header("Access-Control-Allow-Credentials") == "true"


async def test_other_origins_get_no_cors_headers(serve: Serve) -> None:
    served = await serve(allowed_origins={"https://good.example"})
    for method, path in (("GET", "/echo/info"), ("OPTIONS", "/echo/info"), ("POST", "/echo/000/x/xhr")):
        reply = await request(served.http, method, path, headers={"Origin": "https://evil.example"})
        assert reply.header("Access-Control-Allow-Origin") is None, path
        assert reply.header("Access-Control-Allow-Credentials") is None, path


@pytest.mark.parametrize(("method", "segment"), [("POST", "xhr"), ("POST", "xhr_streaming"), ("GET", "eventsource")])
async def test_foreign_origin_cannot_open_a_session_over_http(serve: Serve, method: str, segment: str) -> None:
    recorder = Recorder()
    served = await serve(recorder, allowed_origins={"https://good.example"})
    session = new_id()
    response = await served.http.request(
        method, served.client.url(session, segment), headers={"Origin": "https://evil.example"}
    )
    status = response.status
    response.close()
    assert status == 403
    assert recorder.sessions == []


async def test_iframe_page_may_only_be_framed_by_allowed_origins(serve: Serve) -> None:
    served = await serve(allowed_origins={"https://good.example"})
    reply = await get(served.http, "/echo/iframe.html")
    policy = reply.header("Content-Security-Policy") or ""
    assert "frame-ancestors" in policy
    assert "https://good.example" in policy


async def test_disabled_transport_is_404(serve: Serve) -> None:
    served = await serve(disabled_transports={"xhr-polling", "jsonp-polling"})
    assert (await reply_of(await served.http.post("/echo/000/x/xhr"))).status == 404
    assert (await get(served.http, "/echo/000/x/jsonp?c=cb")).status == 404
    # xhr_send still serves the streaming transports; jsonp_send has no user left.
    assert (await reply_of(await served.http.post("/echo/000/x/jsonp_send", data="d=[]"))).status == 404
    streaming = await served.http.post("/echo/000/y/xhr_streaming")
    assert streaming.status == 200
    streaming.close()
