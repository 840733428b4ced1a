"""Frames and client payloads (sans-I/O, no sockets)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_server.core.framing import (
    HEARTBEAT_FRAME,
    OPEN_FRAME,
    PayloadError,
    close_frame,
    decode_payload,
    encode_message,
    message_frame,
    messages_frame,
)

# The characters sockjs-protocol ("JSON Unicode Encoding") says a server must
# escape, above U+00FF; below it every control character is escaped as well.
SERVER_MUST_ESCAPE = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")

any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)


def test_fixed_frames() -> None:
    assert OPEN_FRAME == "o"
    assert HEARTBEAT_FRAME == "h"


def test_message_frames_hold_json_strings() -> None:
    assert message_frame("a") == 'a["a"]'
    assert messages_frame([encode_message("x"), encode_message('say "hi"')]) == 'a["x","say \\"hi\\""]'
    assert message_frame("") == 'a[""]'


def test_close_frame() -> None:
    assert close_frame(3000, "Go away!") == 'c[3000,"Go away!"]'
    assert close_frame(2010, "Another connection still open") == 'c[2010,"Another connection still open"]'
    assert json.loads(close_frame(1002, 'a "quoted"\n reason')[1:]) == [1002, 'a "quoted"\n reason']


def test_plain_text_is_sent_verbatim() -> None:
    # Non-ASCII text that browsers do not mangle goes out as UTF-8, not \u escapes.
    assert encode_message("zażółć 中文 😀") == '"zażółć 中文 😀"'


def test_control_characters_are_escaped() -> None:
    encoded = encode_message("  \x00\n\r \x1f")
    assert encoded == '"  \\u0000\\n\\r \\u001f"'


def test_every_character_the_protocol_names_is_escaped_in_lowercase_hex() -> None:
    chars = [chr(i) for i in range(0x100, 0x10000) if SERVER_MUST_ESCAPE.match(chr(i))]
    assert len(chars) == 44
    expected = '"' + "".join("\\u%04x" % ord(c) for c in chars) + '"'
    assert encode_message("".join(chars)) == expected


def test_lone_surrogates_are_escaped_not_sent_as_broken_utf8() -> None:
    encoded = encode_message("a\ud800b\udfff")
    assert encoded == '"a\\ud800b\\udfff"'
    encoded.encode("utf-8")  # would raise on a raw surrogate


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_encoding_round_trips_and_leaves_nothing_escapable(text: str) -> None:
    encoded = encode_message(text)
    assert json.loads(encoded) == text
    assert SERVER_MUST_ESCAPE.search(encoded) is None
    assert re.search("[\ud800-\udfff]", encoded) is None


def test_a_payload_is_a_json_array_of_strings() -> None:
    assert decode_payload('["a","b"]') == ["a", "b"]
    assert decode_payload(' [ "a" ] ') == ["a"]
    assert decode_payload("[]") == []
    assert decode_payload('["\\u0000", "\\ud800", "\\u2028"]') == ["\x00", "\ud800", "\u2028"]


def test_empty_payload() -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload("")
    assert str(info.value) == "Payload expected."


@pytest.mark.parametrize(
    "payload",
    [
        '["a',
        "[",
        '"abc"',
        "123",
        "1.5",
        "NaN",
        "null",
        "true",
        "{}",
        '{"a": "b"}',
        "[null]",
        "[1]",
        '["a", 2]',
        '[["a"]]',
        '[{"a": 1}]',
        '["a"] x',
    ],
)
def test_anything_but_an_array_of_strings_is_broken_json(payload: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload(payload)
    assert str(info.value) == "Broken JSON encoding."


def test_a_single_string_is_accepted_only_where_allowed() -> None:
    assert decode_payload('"abc"', allow_single=True) == ["abc"]
    with pytest.raises(PayloadError):
        decode_payload("123", allow_single=True)


def test_deep_nesting_is_rejected_not_a_crash() -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload("[" * 100_000 + "]" * 100_000)
    assert str(info.value) == "Broken JSON encoding."


def test_message_count_cap() -> None:
    assert decode_payload('["a","b","c"]', max_messages=3) == ["a", "b", "c"]
    with pytest.raises(PayloadError) as info:
        decode_payload('["a","b","c","d"]', max_messages=3)
    assert str(info.value) == "Too many messages."
    # The error carries its answer: 413 over HTTP, close 1009 on a websocket.
    assert (info.value.status_hint, info.value.close_code_hint) == (413, 1009)


def test_broken_payloads_carry_their_answer() -> None:
    for data in ("", "[1]", "{"):
        with pytest.raises(PayloadError) as info:
            decode_payload(data)
        assert (info.value.status_hint, info.value.close_code_hint, info.value.close_reason) == (
            500,
            3000,
            "Broken framing.",
        )


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)
