"""How each HTTP transport wraps frames (sans-I/O, no sockets)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_server.core.envelopes import ENVELOPES, CallbackError, TransportKind, validate_callback
from sockjs_server.core.framing import message_frame

JS = "application/javascript; charset=UTF-8"


def test_every_receiving_transport_has_an_envelope() -> None:
    assert {segment: (e.name, e.content_type, e.kind, e.needs_callback) for segment, e in ENVELOPES.items()} == {
        "xhr": ("xhr-polling", JS, TransportKind.POLLING, False),
        "xhr_streaming": ("xhr-streaming", JS, TransportKind.STREAMING, False),
        "eventsource": ("eventsource", "text/event-stream", TransportKind.STREAMING, False),
        "htmlfile": ("htmlfile", "text/html; charset=UTF-8", TransportKind.STREAMING, True),
        "jsonp": ("jsonp-polling", JS, TransportKind.POLLING, True),
    }


def test_preludes() -> None:
    assert ENVELOPES["xhr"].prelude() == b""
    assert ENVELOPES["jsonp"].prelude("cb") == b""
    # 2 KiB of "h" and a newline, so that old browsers start handing over the stream.
    assert ENVELOPES["xhr_streaming"].prelude() == b"h" * 2048 + b"\n"
    # A bare newline first: an Opera bug.
    assert ENVELOPES["eventsource"].prelude() == b"\r\n"


def test_htmlfile_prelude_calls_back_into_the_parent_and_is_over_a_kilobyte() -> None:
    prelude = ENVELOPES["htmlfile"].prelude("my_cb.x-1")
    assert len(prelude) > 1024
    assert prelude.endswith(b"\r\n\r\n")
    text = prelude.decode()
    assert text.startswith("<!doctype html>\n<html><head>")
    assert "var c = parent.my_cb.x-1;\n" in text
    assert "c.start();" in text
    assert "function p(d) {c.message(d);};" in text
    assert "window.onload = function() {c.stop();};" in text
    assert "document.domain = document.domain;" in text
    # The head is a complete, closed script block.
    assert text.count("<script>") == text.count("</script>") == 1


def test_frame_wrapping_per_transport() -> None:
    frame = 'a["x"]'
    assert ENVELOPES["xhr"].wrap("o") == b"o\n"
    assert ENVELOPES["xhr_streaming"].wrap(frame) == b'a["x"]\n'
    assert ENVELOPES["eventsource"].wrap(frame) == b'data: a["x"]\r\n\r\n'
    assert ENVELOPES["htmlfile"].wrap(frame, "cb") == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'
    assert ENVELOPES["jsonp"].wrap(frame, "cb") == b'/**/cb("a[\\"x\\"]");\r\n'


def _script_literal(wrapped: bytes) -> str:
    match = re.fullmatch(rb"<script>\np\((.*)\);\n</script>\r\n", wrapped, re.S)
    assert match is not None, wrapped
    return match.group(1).decode()


def test_htmlfile_message_cannot_leave_its_script_block() -> None:
    hostile = "</script><script>alert(document.cookie)</script><!-- & -->"
    frame = message_frame(hostile)
    wrapped = ENVELOPES["htmlfile"].wrap(frame, "cb")
    text = wrapped.decode()
    assert text.count("<script>") == 1
    assert text.count("</script>") == 1
    literal = _script_literal(wrapped)
    assert not set("<>&") & set(literal)
    assert json.loads(literal) == frame


def test_htmlfile_and_jsonp_escape_javascript_line_terminators() -> None:
    frame = 'a["line\u2028para\u2029end"]'
    for segment in ("htmlfile", "jsonp"):
        wrapped = ENVELOPES[segment].wrap(frame, "cb").decode()
        assert "\u2028" not in wrapped and "\u2029" not in wrapped, segment
        assert "\\u2028" in wrapped and "\\u2029" in wrapped, segment


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_htmlfile_wrapping_round_trips(message: str) -> None:
    frame = message_frame(message)
    literal = _script_literal(ENVELOPES["htmlfile"].wrap(frame, "cb"))
    assert not set("<>&\u2028\u2029\n\r") & set(literal)
    assert json.loads(literal) == frame


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_jsonp_wrapping_round_trips(message: str) -> None:
    frame = message_frame(message)
    wrapped = ENVELOPES["jsonp"].wrap(frame, "cb")
    match = re.fullmatch(rb"/\*\*/cb\((.*)\);\r\n", wrapped, re.S)
    assert match is not None
    literal = match.group(1).decode()
    assert not set("\u2028\u2029\n\r") & set(literal)
    assert json.loads(literal) == frame


@pytest.mark.parametrize("callback", ["callback", "x", "a.b", "jQuery_123-4.cb", "0", "-._", "a" * 64])
def test_valid_callbacks(callback: str) -> None:
    assert validate_callback(callback) == callback


@pytest.mark.parametrize("callback", [None, ""])
def test_missing_callback(callback: str | None) -> None:
    with pytest.raises(CallbackError) as info:
        validate_callback(callback)
    assert str(info.value) == '"callback" parameter required'


@pytest.mark.parametrize(
    "callback",
    [" ", "*", "abc(", "abc)", "a b", "a;alert(1)", "abc\n", "\nabc", "abc\r", "a/b", "é", "a" * 65, "a\x00"],
)
def test_invalid_callbacks(callback: str) -> None:
    with pytest.raises(CallbackError) as info:
        validate_callback(callback)
    assert str(info.value) == 'invalid "callback" parameter'


def test_eventsource_percent_encodes_what_decodeuri_would_eat() -> None:
    # sockjs-client calls decodeURI() on each event: a raw "%41" would arrive as "A"
    # and a lone "%" would throw and lose the frame.
    wire = ENVELOPES["eventsource"].wrap('a["50%","%41"]')
    assert wire == b'data: a["50%25","%2541"]\r\n\r\n'
