"""xhr-polling and xhr_send: session URLs, the basic protocol, payload errors, JSON encoding."""

from __future__ import annotations

import json
import re

import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import OPEN, SockJSClient, closing, messages, new_id, reply_of

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


# -- session URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "session"),
    [("a", "a"), ("_", "_"), ("1", "1"), ("abcdefgh_i-j%20", "abcdefg_i-j%20"), ("000", "0-0_0")],
)
async def test_any_server_and_session_value(testserver: TestClient, server: str, session: str) -> None:
    suffix = new_id()[:6]
    reply = await reply_of(await testserver.post(f"/echo/{server}/{session}{suffix}/xhr"))
    assert reply.status == 200
    assert reply.body == b"o\n"


@pytest.mark.parametrize("middle", ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_invalid_session_paths_are_404(testserver: TestClient, middle: str, method: str) -> None:
    reply = await reply_of(await testserver.request(method, "/echo" + middle + "/xhr"))
    assert reply.status == 404


async def test_server_id_is_ignored(echo_client: SockJSClient) -> None:
    session = new_id()
    assert await echo_client.xhr_frame(session) == OPEN
    reply = await echo_client.xhr_send(session, "a")
    assert (reply.status, reply.body) == (204, b"")
    reply = await reply_of(await echo_client.http.post(echo_client.url(session, "xhr", server="999")))
    assert reply.body == b'a["a"]\n'


# -- the protocol over xhr-polling --------------------------------------------------------


async def test_simple_session(echo_client: SockJSClient) -> None:
    session = new_id()
    reply = await echo_client.xhr(session)
    assert (reply.status, reply.body) == (200, b"o\n")
    reply = await echo_client.xhr_send(session, "a")
    assert (reply.status, reply.body) == (204, b"")
    assert await echo_client.xhr_frame(session) == messages("a")


async def test_sending_to_an_unknown_session_is_404(echo_client: SockJSClient) -> None:
    reply = await echo_client.xhr_send("bad_session", "a")
    assert reply.status == 404
    reply = await echo_client.xhr_send(new_id(), "x")
    assert reply.status == 404


async def test_messages_are_batched_in_order(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    for text in ("one", "two"):
        assert (await echo_client.xhr_send(session, text)).status == 204
    assert (await echo_client.xhr_send(session, "three", "four")).status == 204
    assert await echo_client.poll_until(session, 4) == ["one", "two", "three", "four"]


async def test_close_is_replayed_until_the_session_expires(close_client: SockJSClient) -> None:
    session = new_id()
    assert await close_client.xhr_frame(session) == OPEN
    for _ in range(3):
        assert await close_client.xhr_frame(session) == closing(3000, "Go away!")


async def test_xhr_answer_headers(echo_client: SockJSClient) -> None:
    session = new_id()
    reply = await echo_client.xhr(session, headers={"Origin": "test"})
    assert reply.status == 200
    assert reply.body == b"o\n"
    assert (reply.header("Content-Type") or "").replace(" ", "") == "application/javascript;charset=UTF-8"
    assert reply.header("Access-Control-Allow-Origin") == "test"
    assert reply.header("Access-Control-Allow-Credentials") == "true"
    # iOS 6 caches POST answers.
    assert reply.header("Cache-Control") == NO_CACHE
    assert reply.header("Expires") is None and reply.header("Last-Modified") is None
    assert reply.header("Set-Cookie") is None

    reply = await echo_client.xhr_send(session, "x", headers={"Origin": "test"})
    assert (reply.status, reply.body) == (204, b"")
    # text/plain even on a 204, or Firefox guesses XML and complains.
    assert (reply.header("Content-Type") or "").replace(" ", "") == "text/plain;charset=UTF-8"
    assert reply.header("Access-Control-Allow-Origin") == "test"
    assert reply.header("Access-Control-Allow-Credentials") == "true"
    assert reply.header("Cache-Control") == NO_CACHE
    assert await echo_client.xhr_frame(session) == messages("x")


async def test_xhr_without_origin_allows_any(echo_client: SockJSClient) -> None:
    reply = await echo_client.xhr(new_id())
    assert reply.header("Access-Control-Allow-Origin") == "*"
    assert reply.header("Access-Control-Allow-Credentials") is None


@pytest.mark.parametrize(("segment", "allow"), [("xhr", "POST"), ("xhr_send", "POST")])
async def test_xhr_urls_refuse_get(testserver: TestClient, segment: str, allow: str) -> None:
    reply = await reply_of(await testserver.get(f"/echo/000/{new_id()}/{segment}"))
    assert reply.status == 405
    assert allow in (reply.header("Allow") or "")
    assert reply.body == b""
    assert reply.header("Content-Type") is None


# -- payload errors ---------------------------------------------------------------------------


async def test_broken_and_missing_payloads(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    reply = await echo_client.xhr_send(session, body='["x')
    assert reply.status == 500
    assert "Broken JSON encoding." in reply.text
    reply = await echo_client.xhr_send(session, body="")
    assert reply.status == 500
    assert "Payload expected." in reply.text
    # The session survives bad input.
    reply = await echo_client.xhr_send(session, "a")
    assert (reply.status, reply.body) == (204, b"")
    assert await echo_client.xhr_frame(session) == messages("a")


@pytest.mark.parametrize(
    "body", ['"abc"', "123", "null", "{}", '{"0": "a"}', "[null]", '["a", 1]', '[["a"]]', '[{"a": "b"}]', "true"]
)
async def test_json_that_is_not_an_array_of_strings_is_refused(echo_client: SockJSClient, body: str) -> None:
    session = await echo_client.open_xhr()
    reply = await echo_client.xhr_send(session, body=body)
    assert reply.status == 500
    assert "Broken JSON encoding." in reply.text
    assert "Traceback" not in reply.text
    # Nothing was delivered: a string is never split into characters.
    assert (await echo_client.xhr_send(session, "after")).status == 204
    assert await echo_client.xhr_frame(session) == messages("after")


async def test_invalid_utf8_body_is_refused(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    reply = await echo_client.xhr_send(session, body=b'["\xff\xfe"]')
    assert reply.status == 500
    assert "Broken JSON encoding." in reply.text


async def test_error_answers_are_plain_text_with_cors(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    reply = await echo_client.xhr_send(session, body="[", headers={"Origin": "test"})
    assert reply.status == 500
    assert (reply.header("Content-Type") or "").replace(" ", "") == "text/plain;charset=UTF-8"
    assert reply.header("Access-Control-Allow-Origin") == "test"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "T",
        "application/json",
        "application/xml",
        "",
        "application/json; charset=utf-8",
        "text/xml; charset=utf-8",
        "text/xml",
        "application/x-www-form-urlencoded",
    ],
)
async def test_any_content_type_is_accepted(echo_client: SockJSClient, content_type: str) -> None:
    session = await echo_client.open_xhr()
    reply = await echo_client.xhr_send(session, "a", headers={"Content-Type": content_type})
    assert (reply.status, reply.body) == (204, b"")
    assert await echo_client.xhr_frame(session) == messages("a")


async def test_empty_frames_are_allowed(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    assert (await echo_client.xhr_send(session, body="[]")).status == 204
    assert (await echo_client.xhr_send(session, "a")).status == 204
    assert await echo_client.xhr_frame(session) == messages("a")


# -- JSON encoding ------------------------------------------------------------------------------

# What the server must escape (sockjs-protocol, "JSON Unicode Encoding"), above U+00FF.
SERVER_ESCAPES = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")
# What sockjs-client escapes before sending, because browsers mangle it in transit.
CLIENT_ESCAPES = re.compile(
    "[\\\\\"\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0604\u070f\u17b4\u17b5\u2000-\u20ff\ufeff\ufff0-\uffff"
    "\u0300-\u0333\u033d-\u0346\u034a-\u034c\u0350-\u0352\u0357-\u0358\u035c-\u0362\u0374\u037e\u0387"
    "\u0591-\u05af\u05c4\u0610-\u0617\u0653-\u0654\u0657-\u065b\u065d-\u065e\u06df-\u06e2\u06eb-\u06ec"
    "\u0730\u0732-\u0733\u0735-\u0736\u073a\u073d\u073f-\u0741\u0743\u0745\u0747\u07eb-\u07f1\u0951"
    "\u0958-\u095f\u09dc-\u09dd\u09df\u0a33\u0a36\u0a59-\u0a5b\u0a5e\u0b5c-\u0b5d\u0e38-\u0e39\u0f43"
    "\u0f4d\u0f52\u0f57\u0f5c\u0f69\u0f72-\u0f76\u0f78\u0f80-\u0f83\u0f93\u0f9d\u0fa2\u0fa7\u0fac\u0fb9"
    "\u1939-\u193a\u1a17\u1b6b\u1cda-\u1cdb\u1dc0-\u1dcf\u1dfc\u1dfe\u1f71\u1f73\u1f75\u1f77\u1f79"
    "\u1f7b\u1f7d\u1fbb\u1fbe\u1fc9\u1fcb\u1fd3\u1fdb\u1fe3\u1feb\u1fee-\u1fef\u1ff9\u1ffb\u1ffd"
    "\u2126\u212a-\u212b\u2329-\u232a\u2adc\u302b-\u302c\uaab2-\uaab3\uf900-\ufa0d\ufa10\ufa12"
    "\ufa15-\ufa1e\ufa20\ufa22\ufa25-\ufa26\ufa2a-\ufa2d\ufa30-\ufa6d\ufa70-\ufad9\ufb1d\ufb1f"
    "\ufb2a-\ufb36\ufb38-\ufb3c\ufb3e\ufb40-\ufb41\ufb43-\ufb44\ufb46-\ufb4e]"
)


async def test_server_escapes_what_the_protocol_requires(echo_client: SockJSClient) -> None:
    chars = "".join(chr(i) for i in range(0x100, 0x10000) if SERVER_ESCAPES.match(chr(i)))
    escaped = '"' + "".join("\\u%04x" % ord(c) for c in chars) + '"'
    session = await echo_client.open_xhr()
    # Sent raw (UTF-8), the way a non-browser client may send them.
    reply = await echo_client.xhr_send(session, body=("[" + json.dumps(chars, ensure_ascii=False) + "]").encode())
    assert reply.status == 204
    reply = await echo_client.xhr(session)
    assert reply.body == b"a[" + escaped.encode() + b"]\n"


async def test_server_decodes_what_the_client_escapes(echo_client: SockJSClient) -> None:
    chars = "".join(chr(i) for i in range(0x10000) if CLIENT_ESCAPES.match(chr(i)))
    session = await echo_client.open_xhr()
    payload = "[" + '"' + "".join("\\u%04x" % ord(c) for c in chars) + '"' + "]"
    assert (await echo_client.xhr_send(session, body=payload)).status == 204
    assert await echo_client.xhr_frame(session) == messages(chars)


async def test_lone_surrogates_round_trip_escaped(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    assert (await echo_client.xhr_send(session, body='["a\\ud800b", "\\udc00"]')).status == 204
    reply = await echo_client.xhr(session)
    assert reply.body == b'a["a\\ud800b","\\udc00"]\n'


async def test_non_ascii_text_round_trips_as_utf8(echo_client: SockJSClient) -> None:
    session = await echo_client.open_xhr()
    text = "zażółć gęślą jaźń — 中文 — 😀"
    assert (await echo_client.xhr_send(session, text)).status == 204
    reply = await echo_client.xhr(session)
    assert reply.body == ('a["' + text + '"]\n').encode()
