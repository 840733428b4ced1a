"""RFC 6455 frame codec (sans-I/O, no sockets): what a client's bytes read as, and the server's frames."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_server.servers.builtin.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WebsocketError,
    accept_key,
    close_code_allowed,
    encode_binary,
    encode_close,
    encode_frame,
    encode_text,
    unmask,
)

MASK = b"\x37\xfa\x21\x3d"


def naive_xor(mask: bytes, payload: bytes) -> bytes:
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length_form: int | None = None,
) -> bytes:
    """A frame as a client sends it; ``length_form`` 126 or 127 forces a longer length encoding."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    form = length_form or (length if length < 126 else 126 if length < 0x10000 else 127)
    mask_bit = 0x80 if mask is not None else 0
    header = bytes((first, mask_bit | form))
    if form == 126:
        header += length.to_bytes(2, "big")
    elif form == 127:
        header += length.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + naive_xor(mask, payload)


def header_only(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A masked frame header announcing ``length`` bytes, without them."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes((first, 0x80 | length)) + MASK
    if length < 0x10000:
        return bytes((first, 0x80 | 126)) + length.to_bytes(2, "big") + MASK
    return bytes((first, 0x80 | 127)) + length.to_bytes(8, "big") + MASK


def read_all(data: bytes, max_message_size: int = 1 << 20) -> list[tuple[int, Any]]:
    return FrameReader(max_message_size).feed(data)


def fails(data: bytes, code: int, max_message_size: int = 1 << 20) -> WebsocketError:
    reader = FrameReader(max_message_size)
    with pytest.raises(WebsocketError) as caught:
        reader.feed(data)
    assert caught.value.code == code
    assert caught.value.reason
    assert reader.feed(client_frame(OP_TEXT, b"after")) == []
    assert reader.finished
    return caught.value


# -- handshake key


def test_accept_key_of_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(" dGhlIHNhbXBsZSBub25jZQ==\t") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    "key",
    [
        "",
        "dGhlIHNhbXBsZSBub25jZQ",  # no padding
        "dGhlIHNhbXBsZSBub25jZQ=",
        "dGhlIHNhbXBsZSBub25jZQ===",
        "dGhlIHNhbXBsZSBub25jZTE=",  # 17 bytes
        "dGhlIHNhbXBsZSBub25j",  # 15 bytes
        "dGhlIHNhbXBsZSBub25jZ!==",
        "dGhlIHNhbXBsZSBub25jZé==",
        "dGhlIHNh bXBsZSBub25jZQ=",
    ],
)
def test_accept_key_refuses_what_is_not_base64_of_16_bytes(key: str) -> None:
    assert accept_key(key) is None


# -- reading single frames


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 125, 126, 127, 2047, 2048, 2049, 4099, 65535, 65536, 70001])
def test_text_and_binary_of_every_length_form(length: int) -> None:
    data = random.Random(length).randbytes(length)
    text = "é" * (length // 2) + "x" * (length % 2)
    assert read_all(client_frame(OP_BINARY, data)) == [(OP_BINARY, data)]
    assert read_all(client_frame(OP_TEXT, text.encode())) == [(OP_TEXT, text)]
    (message,) = read_all(client_frame(OP_BINARY, data))
    assert type(message[1]) is bytes


def test_control_frames() -> None:
    frames = client_frame(OP_PING, b"") + client_frame(OP_PING, b"p" * 125) + client_frame(OP_PONG, b"\x00\xff")
    assert read_all(frames) == [(OP_PING, b""), (OP_PING, b"p" * 125), (OP_PONG, b"\x00\xff")]


def test_many_frames_in_one_feed_and_one_frame_over_many() -> None:
    frames = [client_frame(OP_TEXT, b"one"), client_frame(OP_BINARY, b"\x00" * 300), client_frame(OP_PING, b"x")]
    expected = [(OP_TEXT, "one"), (OP_BINARY, b"\x00" * 300), (OP_PING, b"x")]
    assert read_all(b"".join(frames)) == expected
    reader = FrameReader(1000)
    got = []
    for byte in b"".join(frames):
        got += reader.feed(bytes((byte,)))
    assert got == expected


def test_a_feed_may_be_a_bytearray_and_is_not_kept() -> None:
    data = bytearray(client_frame(OP_BINARY, b"abcdef") + client_frame(OP_TEXT, b"xyz")[:3])
    reader = FrameReader(100)
    assert reader.feed(data) == [(OP_BINARY, b"abcdef")]
    data[:] = b"\x00" * len(data)
    assert reader.feed(client_frame(OP_TEXT, b"xyz")[3:]) == [(OP_TEXT, "xyz")]


def test_unmasked_frames_when_masks_are_not_required() -> None:
    reader = FrameReader(1 << 20, require_mask=False)
    big = bytes(range(256)) * 20
    frames = client_frame(OP_TEXT, b"plain", mask=None) + client_frame(OP_BINARY, big, mask=None)
    assert reader.feed(frames[:6]) == []
    assert reader.feed(frames[6:12]) == [(OP_TEXT, "plain")]
    assert reader.feed(frames[12:]) == [(OP_BINARY, big)]
    assert reader.feed(client_frame(OP_PING, b"masked still reads")) == [(OP_PING, b"masked still reads")]
    assert reader.feed(client_frame(OP_PONG, b"pong", mask=None)) == [(OP_PONG, b"pong")]


def test_non_minimal_length_encodings_are_accepted() -> None:
    assert read_all(client_frame(OP_TEXT, b"short", length_form=126)) == [(OP_TEXT, "short")]
    assert read_all(client_frame(OP_TEXT, b"short", length_form=127)) == [(OP_TEXT, "short")]
    assert read_all(client_frame(OP_BINARY, b"m" * 200, length_form=127)) == [(OP_BINARY, b"m" * 200)]


# -- fragmented messages


def test_fragments_are_reassembled_around_control_frames() -> None:
    frames = (
        client_frame(OP_TEXT, b"Hel", fin=False)
        + client_frame(OP_PING, b"1")
        + client_frame(OP_CONTINUATION, b"", fin=False)
        + client_frame(OP_CONTINUATION, b"lo", fin=False)
        + client_frame(OP_PONG, b"2")
        + client_frame(OP_CONTINUATION, b"!")
        + client_frame(OP_BINARY, b"\x01", fin=False)
        + client_frame(OP_CONTINUATION, b"\x02")
    )
    assert read_all(frames) == [(OP_PING, b"1"), (OP_PONG, b"2"), (OP_TEXT, "Hello!"), (OP_BINARY, b"\x01\x02")]


def test_a_character_split_across_fragments() -> None:
    encoded = "a€b".encode()  # the euro sign is 3 bytes
    frames = (
        client_frame(OP_TEXT, encoded[:2], fin=False)
        + client_frame(OP_CONTINUATION, encoded[2:3], fin=False)
        + client_frame(OP_CONTINUATION, encoded[3:])
    )
    assert read_all(frames) == [(OP_TEXT, "a€b")]


def test_an_invalid_sequence_in_an_early_fragment_fails_before_the_message_ends() -> None:
    reader = FrameReader(1000)
    assert reader.feed(client_frame(OP_TEXT, b"ok", fin=False)) == []
    with pytest.raises(WebsocketError) as caught:
        reader.feed(client_frame(OP_CONTINUATION, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80", fin=False))
    assert caught.value.code == 1007


def test_a_message_ending_inside_a_character_is_invalid() -> None:
    fails(client_frame(OP_TEXT, b"ok\xe2\x82", fin=False) + client_frame(OP_CONTINUATION, b""), 1007)
    fails(client_frame(OP_TEXT, b"ok\xe2\x82"), 1007)


@pytest.mark.parametrize("payload", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\x80"])
def test_invalid_utf8_in_a_text_frame(payload: bytes) -> None:
    fails(client_frame(OP_TEXT, payload), 1007)


def test_binary_messages_are_not_utf8_checked() -> None:
    assert read_all(client_frame(OP_BINARY, b"\xff\xfe", fin=False) + client_frame(OP_CONTINUATION, b"\xed")) == [
        (OP_BINARY, b"\xff\xfe\xed")
    ]


# -- close frames


def test_close_frames() -> None:
    assert read_all(client_frame(OP_CLOSE, b"")) == [(OP_CLOSE, (1005, ""))]
    assert read_all(client_frame(OP_CLOSE, b"\x03\xe8")) == [(OP_CLOSE, (1000, ""))]
    assert read_all(client_frame(OP_CLOSE, b"\x0f\xa0" + "bye ✓".encode())) == [(OP_CLOSE, (4000, "bye ✓"))]


def test_nothing_is_read_after_a_close_frame() -> None:
    reader = FrameReader(100)
    frames = client_frame(OP_TEXT, b"a") + client_frame(OP_CLOSE, b"\x03\xe8") + client_frame(OP_TEXT, b"b")
    assert reader.feed(frames) == [(OP_TEXT, "a"), (OP_CLOSE, (1000, ""))]
    assert reader.finished
    assert reader.feed(client_frame(OP_TEXT, b"c")) == []
    assert reader.feed(b"\xff\xff") == []


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1010, 1014, 3000, 4000, 4999])
def test_close_codes_allowed_on_the_wire(code: int) -> None:
    assert close_code_allowed(code)
    assert read_all(client_frame(OP_CLOSE, code.to_bytes(2, "big") + b"r")) == [(OP_CLOSE, (code, "r"))]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_codes_refused_on_the_wire(code: int) -> None:
    assert not close_code_allowed(code)
    fails(client_frame(OP_CLOSE, code.to_bytes(2, "big")), 1002)


def test_broken_close_payloads() -> None:
    fails(client_frame(OP_CLOSE, b"\x03"), 1002)
    fails(client_frame(OP_CLOSE, b"\x03\xe8\xff"), 1007)
    fails(client_frame(OP_CLOSE, b"\x03\xe8ok\xe2\x82"), 1007)


# -- protocol errors


def test_unmasked_client_frames() -> None:
    fails(client_frame(OP_TEXT, b"hi", mask=None), 1002)
    fails(client_frame(OP_PING, b"", mask=None), 1002)


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits(rsv: int) -> None:
    fails(client_frame(OP_TEXT, b"hi", rsv=rsv), 1002)
    fails(client_frame(OP_PING, b"", rsv=rsv), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_unknown_opcodes(opcode: int) -> None:
    fails(client_frame(opcode, b""), 1002)
    fails(client_frame(opcode, b"x", fin=False), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frames_too_long_or_fragmented(opcode: int) -> None:
    fails(header_only(opcode, 126), 1002)  # decided from the header alone
    fails(client_frame(opcode, b"\x03\xe8", fin=False), 1002)


def test_continuation_without_a_message() -> None:
    fails(client_frame(OP_CONTINUATION, b"x"), 1002)
    fails(client_frame(OP_CONTINUATION, b"x", fin=False), 1002)
    fails(client_frame(OP_TEXT, b"a") + client_frame(OP_CONTINUATION, b"b"), 1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_a_new_message_before_the_last_one_ended(second: int) -> None:
    fails(client_frame(OP_BINARY, b"a", fin=False) + client_frame(second, b"b"), 1002)
    fails(client_frame(OP_TEXT, b"a", fin=False) + client_frame(second, b"b", fin=False), 1002)


def test_message_size_limit() -> None:
    assert read_all(client_frame(OP_BINARY, b"x" * 10), max_message_size=10) == [(OP_BINARY, b"x" * 10)]
    assert read_all(client_frame(OP_TEXT, "é".encode() * 5), max_message_size=10) == [(OP_TEXT, "é" * 5)]
    fails(client_frame(OP_BINARY, b"x" * 11), 1009, max_message_size=10)
    fails(client_frame(OP_TEXT, "é".encode() * 5 + b"x"), 1009, max_message_size=10)
    fragments = client_frame(OP_TEXT, b"x" * 6, fin=False) + client_frame(OP_CONTINUATION, b"y" * 4)
    assert read_all(fragments, max_message_size=10) == [(OP_TEXT, "x" * 6 + "y" * 4)]
    fails(fragments + client_frame(OP_BINARY, b"1" * 10, fin=False) + client_frame(OP_CONTINUATION, b"2"), 1009, 10)
    # Control frames count for no message.
    between = client_frame(OP_TEXT, b"x" * 10, fin=False) + client_frame(OP_PING, b"p" * 20)
    assert read_all(between + client_frame(OP_CONTINUATION, b""), max_message_size=10) == [
        (OP_PING, b"p" * 20),
        (OP_TEXT, "x" * 10),
    ]


@pytest.mark.parametrize("length", [1001, 0x10000, 2**32, 2**62, 2**63 - 1])
def test_a_too_big_message_fails_from_its_header(length: int) -> None:
    fails(header_only(OP_BINARY, length), 1009, max_message_size=1000)
    fails(client_frame(OP_TEXT, b"x" * 500, fin=False) + header_only(OP_CONTINUATION, length - 500), 1009, 1000)


def test_a_64_bit_length_with_the_top_bit_set_is_refused() -> None:
    first = bytes((0x82, 0xFF)) + (2**63).to_bytes(8, "big")
    fails(first, 1002)
    fails(bytes((0x82, 0xFF)) + b"\xff" * 8 + MASK, 1002)


def test_a_header_still_arriving_is_waited_for() -> None:
    reader = FrameReader(1 << 20)
    frame = client_frame(OP_BINARY, b"z" * 70000)
    for cut in (1, 2, 5, 9, 13):
        assert FrameReader(1 << 20).feed(frame[:cut]) == []
    assert reader.feed(frame[:1]) == []
    assert reader.feed(frame[1:9]) == []
    assert reader.feed(frame[9:30000]) == []
    assert reader.feed(frame[30000:-1]) == []
    assert reader.feed(frame[-1:] + client_frame(OP_PING, b"")) == [(OP_BINARY, b"z" * 70000), (OP_PING, b"")]


def test_an_error_hands_over_the_messages_before_it() -> None:
    error = fails(client_frame(OP_TEXT, b"first") + client_frame(OP_PING, b"") + client_frame(3, b""), 1002)
    assert error.messages == [(OP_TEXT, "first"), (OP_PING, b"")]
    error = fails(client_frame(OP_BINARY, b"b") + client_frame(OP_TEXT, b"\xff"), 1007)
    assert error.messages == [(OP_BINARY, b"b")]


# -- server frames


def test_server_frame_headers() -> None:
    assert encode_text("") == b"\x81\x00"
    assert encode_text("Hello") == b"\x81\x05Hello"
    assert encode_binary(b"\x00" * 125) == b"\x82\x7d" + b"\x00" * 125
    assert encode_binary(b"\x00" * 126) == b"\x82\x7e\x00\x7e" + b"\x00" * 126
    assert encode_text("a" * 65535)[:4] == b"\x81\x7e\xff\xff"
    assert encode_binary(b"a" * 65536)[:10] == b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"
    assert encode_frame(OP_PING, b"hb") == b"\x89\x02hb"
    assert encode_frame(OP_PONG, b"") == b"\x8a\x00"
    assert encode_frame(OP_TEXT, b"x" * 300) == encode_text("x" * 300)


def test_server_frames_read_back() -> None:
    reader = FrameReader(1 << 20, require_mask=False)
    big = "✓" * 30000
    frames = [encode_text("é"), encode_text(big), encode_binary(b"\x00\xff"), encode_frame(OP_PONG, b"p")]
    assert reader.feed(b"".join(frames)) == [(OP_TEXT, "é"), (OP_TEXT, big), (OP_BINARY, b"\x00\xff"), (OP_PONG, b"p")]


def test_encode_frame_refuses_what_cannot_be_one_frame() -> None:
    with pytest.raises(ValueError):
        encode_frame(OP_PING, b"x" * 126)
    with pytest.raises(ValueError):
        encode_frame(OP_CLOSE, b"x" * 200)
    with pytest.raises(ValueError):
        encode_frame(OP_CONTINUATION, b"x")
    with pytest.raises(ValueError):
        encode_frame(3, b"x")


def test_encode_text_refuses_lone_surrogates() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_text("\ud800")


def test_close_frames_written() -> None:
    assert encode_close(1000) == b"\x88\x02\x03\xe8"
    assert encode_close(3000, "Go away!") == b"\x88\x0a\x0b\xb8Go away!"
    assert encode_close(1005, "ignored") == b"\x88\x00"
    for code in (999, 1004, 1006, 1015, 2999, 5000):
        with pytest.raises(ValueError):
            encode_close(code)


@pytest.mark.parametrize("reason", ["a" * 200, "é" * 100, "€" * 60, "x" + "😀" * 40, "a" * 123, "\ud800" + "b"])
def test_close_reasons_are_cut_on_a_character_boundary(reason: str) -> None:
    frame = encode_close(1001, reason)
    assert frame[1] == len(frame) - 2 <= 125
    ((opcode, (code, read_reason)),) = FrameReader(100, require_mask=False).feed(frame)
    assert (opcode, code) == (OP_CLOSE, 1001)
    whole = reason.replace("\ud800", "?")  # a lone surrogate cannot be sent
    assert whole.startswith(read_reason)
    if len(whole.encode()) <= 123:
        assert read_reason == whole
    else:
        assert 123 - 4 < len(read_reason.encode()) <= 123  # only a partial character was dropped


# -- unmasking


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 7, 8, 100, 2047, 2048, 2049, 2050, 2051, 5000, 65536 + 3])
def test_unmask_is_xor_with_the_repeated_mask(length: int) -> None:
    payload = random.Random(length).randbytes(length)
    assert unmask(MASK, payload) == naive_xor(MASK, payload)
    assert unmask(MASK, unmask(MASK, payload)) == payload


@given(mask=st.binary(min_size=4, max_size=4), payload=st.binary(max_size=300), pad=st.integers(0, 3000))
def test_unmask_property(mask: bytes, payload: bytes, pad: int) -> None:
    payload = payload + bytes(pad)
    assert unmask(mask, payload) == naive_xor(mask, payload)


# -- any split gives the same messages


def _payloads() -> st.SearchStrategy[tuple[int, bytes]]:
    text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60).map(lambda s: (OP_TEXT, s.encode()))
    binary = st.binary(max_size=60).map(lambda b: (OP_BINARY, b))
    big = st.tuples(st.integers(2000, 9000), st.integers(0, 2**32)).map(
        lambda n_seed: (OP_BINARY, random.Random(n_seed[1]).randbytes(n_seed[0]))
    )
    return st.one_of(text, binary, big)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(_payloads(), max_size=6), data=st.data())
def test_any_fragmentation_and_any_chunking_read_the_same_messages(
    messages: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    wire = bytearray()
    expected: list[tuple[int, Any]] = []
    for opcode, payload in messages:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=4)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            mask = data.draw(st.binary(min_size=4, max_size=4))
            wire += client_frame(OP_CONTINUATION if index else opcode, piece, fin=last, mask=mask)
            if not last and data.draw(st.booleans()):
                ping = data.draw(st.binary(max_size=125))
                wire += client_frame(OP_PING, ping, mask=mask)
                expected.append((OP_PING, ping))
        expected.append((opcode, payload.decode() if opcode == OP_TEXT else payload))
    wire += client_frame(OP_CLOSE, b"\x03\xe8bye")
    expected.append((OP_CLOSE, (1000, "bye")))

    bounds = sorted(set(data.draw(st.lists(st.integers(0, len(wire)), max_size=20))))
    reader = FrameReader(1 << 20)
    got: list[tuple[int, Any]] = []
    for a, b in zip([0, *bounds], [*bounds, len(wire)]):
        got += reader.feed(bytes(wire[a:b]))
    assert got == expected
    assert FrameReader(1 << 20).feed(bytes(wire)) == expected
