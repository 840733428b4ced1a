"""Streaming transports: xhr-streaming, eventsource and htmlfile, read chunk by chunk."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from sockjs_client import (
    OPEN,
    HtmlfileUnwrapper,
    Recorder,
    Serve,
    SockJSClient,
    Stream,
    bounded,
    closing,
    messages,
    new_id,
    parse_frame,
    reply_of,
)

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
STREAMING = ["xhr_streaming", "eventsource", "htmlfile"]
HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def content_type(stream: Stream) -> str:
    return (stream.headers.get("Content-Type") or "").replace(" ", "")


def assert_not_cached(stream: Stream) -> None:
    assert stream.headers.get("Cache-Control") == NO_CACHE
    assert "Expires" not in stream.headers
    assert "Last-Modified" not in stream.headers


# -- xhr-streaming --------------------------------------------------------------------------


async def test_xhr_streaming(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.stream(session, "xhr_streaming", headers={"Origin": "test"}) as stream:
        assert stream.status == 200
        assert content_type(stream) == "application/javascript;charset=UTF-8"
        assert stream.headers.get("Access-Control-Allow-Origin") == "test"
        assert stream.headers.get("Access-Control-Allow-Credentials") == "true"
        assert_not_cached(stream)
        # Each write is its own chunk: first 2 KiB of "h" and a newline, then frames.
        assert await stream.chunk() == b"h" * 2048 + b"\n"
        assert await stream.chunk() == b"o\n"
        reply = await echo_client.xhr_send(session, "x")
        assert (reply.status, reply.body) == (204, b"")
        assert await stream.chunk() == b'a["x"]\n'


async def test_xhr_streaming_refuses_get(testserver: TestClient) -> None:
    reply = await reply_of(await testserver.get(f"/echo/000/{new_id()}/xhr_streaming"))
    assert reply.status == 405


# -- eventsource --------------------------------------------------------------------------------


async def test_eventsource(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.stream(session, "eventsource") as stream:
        assert stream.status == 200
        assert content_type(stream) == "text/event-stream"
        assert_not_cached(stream)
        assert await stream.chunk() == b"\r\n"
        assert await stream.chunk() == b"data: o\r\n\r\n"
        reply = await echo_client.xhr_send(session, "x")
        assert (reply.status, reply.body) == (204, b"")
        assert await stream.chunk() == b'data: a["x"]\r\n\r\n'
        # Leading spaces, NUL and line breaks cannot break the event: they arrive JSON-escaped.
        reply = await echo_client.xhr_send(session, body='["  \\u0000\\n\\r "]')
        assert reply.status == 204
        assert await stream.chunk() == b'data: a["  \\u0000\\n\\r "]\r\n\r\n'


async def test_eventsource_refuses_post(testserver: TestClient) -> None:
    reply = await reply_of(await testserver.post(f"/echo/000/{new_id()}/eventsource"))
    assert reply.status == 405


# -- htmlfile -----------------------------------------------------------------------------------


async def test_htmlfile(echo_client: SockJSClient) -> None:
    session = new_id()
    response = await echo_client.http.get(echo_client.url(session, "htmlfile") + "?c=%63allback")
    async with Stream(response, HtmlfileUnwrapper()) as stream:
        assert stream.status == 200
        assert content_type(stream) == "text/html;charset=UTF-8"
        assert_not_cached(stream)
        head = await stream.chunk()
        assert head.decode().strip() == HTMLFILE_HEAD % "callback"
        assert len(head) > 1024
        assert await stream.chunk() == b'<script>\np("o");\n</script>\r\n'
        assert (await echo_client.xhr_send(session, "x")).status == 204
        assert await stream.chunk() == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'


async def test_htmlfile_message_cannot_break_out_of_its_script(echo_client: SockJSClient) -> None:
    session = new_id()
    hostile = '</script><script>alert("owned")</script><!-- & \u2028 \u2029'
    async with await echo_client.stream(session, "htmlfile") as stream:
        assert await stream.frame() == OPEN
        assert (await echo_client.xhr_send(session, hostile)).status == 204
        raw = await stream.chunk()
        assert raw.count(b"<script>") == 1 and raw.count(b"</script>") == 1
        for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
            assert forbidden.encode() not in raw[len(b"<script>") : -len(b"</script>\r\n")]
        # ... and the page still gets exactly the message.
        text, rest = HtmlfileUnwrapper().split(raw)
        assert text is not None and rest == b""
        assert parse_frame(text) == messages(hostile)


@pytest.mark.parametrize("segment", ["htmlfile", "jsonp"])
async def test_callback_required(testserver: TestClient, segment: str) -> None:
    reply = await reply_of(await testserver.get(f"/echo/a/a/{segment}"))
    assert reply.status == 500
    assert '"callback" parameter required' in reply.text


@pytest.mark.parametrize("segment", ["htmlfile", "jsonp"])
@pytest.mark.parametrize("callback", ["%20", "*", "abc(", "abc%28", "abc%0A", "x%0D%0Aalert(1)", "a%3Bb"])
async def test_invalid_callback(testserver: TestClient, segment: str, callback: str) -> None:
    reply = await reply_of(await testserver.get(f"/echo/a/a/{segment}?c={callback}"))
    assert reply.status == 500
    assert 'invalid "callback" parameter' in reply.text


async def test_invalid_callback_opens_no_session(testserver: TestClient) -> None:
    session = new_id()
    await reply_of(await testserver.get(f"/echo/000/{session}/htmlfile?c=a(b"))
    reply = await reply_of(await testserver.post(f"/echo/000/{session}/xhr_send", data='["x"]'))
    assert reply.status == 404


# -- response limit ------------------------------------------------------------------------------


async def test_xhr_streaming_ends_after_the_response_limit(echo_client: SockJSClient) -> None:
    # The test server ends a streaming response after 4096 bytes of frames.
    session = new_id()
    message = "x" * 128
    async with await echo_client.stream(session, "xhr_streaming") as stream:
        assert await stream.prelude()
        assert await stream.frame() == OPEN
        for _ in range(31):  # 31 frames of 133 bytes: just under 4096
            assert (await echo_client.xhr_send(session, message)).status == 204
            assert await stream.chunk() == b'a["' + message.encode() + b'"]\n'
        assert await stream.chunk() == b""
    # The session lives on: the client reconnects and gets what was queued meanwhile.
    assert (await echo_client.xhr_send(session, "later")).status == 204
    async with await echo_client.stream(session, "xhr_streaming") as stream:
        assert await stream.frame() == messages("later")


@pytest.mark.parametrize("transport", ["eventsource", "htmlfile"])
async def test_one_big_frame_ends_the_response(echo_client: SockJSClient, transport: str) -> None:
    session = new_id()
    message = "x" * 4096
    async with await echo_client.stream(session, transport) as stream:
        assert await stream.frame() == OPEN
        assert (await echo_client.xhr_send(session, message)).status == 204
        assert await stream.frame() == messages(message)
        assert await stream.ended()


async def test_response_limit_counts_framing(serve: Serve) -> None:
    served = await serve(response_limit=30)
    session = new_id()
    async with await served.client.stream(session, "eventsource") as stream:
        assert await stream.frame() == OPEN  # 11 bytes
        assert (await served.client.xhr_send(session, "12345")).status == 204
        assert await stream.frame() == messages("12345")  # 11 + 19 bytes = 30
        assert await stream.ended()


# -- closing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", STREAMING)
async def test_close_frame_ends_the_stream_and_is_replayed(close_client: SockJSClient, transport: str) -> None:
    session = new_id()
    async with await close_client.stream(session, transport) as first:
        assert await first.frame() == OPEN
        assert await first.frame() == closing(3000, "Go away!")
        assert await first.ended()
    async with await close_client.stream(session, transport) as second:
        assert await second.frame() == closing(3000, "Go away!")
        assert await second.ended()


@pytest.mark.parametrize("transport", STREAMING)
async def test_second_receiver_gets_2010_and_the_first_keeps_working(
    echo_client: SockJSClient, transport: str
) -> None:
    session = new_id()
    async with await echo_client.stream(session, transport) as first:
        assert await first.frame() == OPEN
        async with await echo_client.stream(session, "xhr_streaming") as second:
            assert await second.frame() == closing(2010, "Another connection still open")
            assert await second.ended()
        assert (await echo_client.xhr_send(session, "still here")).status == 204
        assert await first.frame() == messages("still here")


async def test_aborted_stream_interrupts_the_session(serve: Serve) -> None:
    recorder = Recorder()
    served = await serve(recorder)
    client = served.client
    session = new_id()
    first = await client.stream(session, "xhr_streaming")
    assert await first.frame() == OPEN
    app_session = await recorder.next_session()
    async with await client.stream(session, "xhr_streaming") as second:
        assert await second.frame() == closing(2010, "Another connection still open")
        assert await second.ended()
    first.close()
    # The server notices the vanished client and closes the session with 1002.
    await bounded(app_session.wait_closed())
    assert app_session.close_code == 1002
    async with await client.stream(session, "xhr_streaming") as third:
        assert await third.frame() == closing(1002, "Connection interrupted")
        assert await third.ended()
    assert await recorder.next_ended() is app_session


async def test_streams_serve_several_frames_per_response(echo_client: SockJSClient) -> None:
    session = new_id()
    async with await echo_client.stream(session, "eventsource") as stream:
        assert await stream.frame() == OPEN
        for text in ("a", "b", "c"):
            assert (await echo_client.xhr_send(session, text)).status == 204
            assert await stream.frame() == messages(text)
