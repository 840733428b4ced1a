"""Codec: parser and serializer, with hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_server.stomp.codec import FrameParser, decode_header, encode_header, serialize
from sockjs_server.stomp.errors import FrameTooLarge, ProtocolError
from sockjs_server.stomp.frames import Command, Frame, Version


def parse_all(data: bytes, **kwargs) -> list[Frame]:
    return FrameParser(**kwargs).feed(data)


def test_simple_frame_and_heartbeats():
    p = FrameParser()
    assert p.feed(b"\n\r\n") == []
    assert p.heartbeats == 2
    [f] = p.feed(b"SEND\ndestination:/topic/a\n\nhello\x00\n\n")
    assert f.command is Command.SEND
    assert f.get("destination") == "/topic/a"
    assert f.body == b"hello"
    assert p.heartbeats == 4


def test_content_length_body_may_contain_nul():
    [f] = parse_all(b"SEND\ndestination:/q\ncontent-length:5\n\na\x00b\x00c\x00")
    assert f.body == b"a\x00b\x00c"


def test_content_length_must_end_with_nul():
    with pytest.raises(ProtocolError, match="NULL"):
        parse_all(b"SEND\ncontent-length:2\n\nabc\x00")


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", ""])
def test_bad_content_length(value):
    with pytest.raises(ProtocolError) as info:
        parse_all(f"SEND\ncontent-length:{value}\n\n\x00".encode())
    assert info.value.message == "Invalid content-length"


def test_first_repeated_header_wins():
    [f] = parse_all(b"MESSAGE\nfoo:World\nfoo:Hello\n\n\x00")
    assert f.get("foo") == "World"
    assert f.headers == (("foo", "World"), ("foo", "Hello"))


def test_crlf_line_endings():
    [f] = parse_all(b"SEND\r\ndestination:/q/a\r\nreceipt:r\r\n\r\nbody\x00\r\n")
    assert f.get("destination") == "/q/a" and f.get("receipt") == "r" and f.body == b"body"


def test_several_frames_in_one_chunk_and_split_frames():
    data = b"SEND\ndestination:a\n\n1\x00SEND\ndestination:b\n\n2\x00\nSEND\ndestination:c\ncontent-length:1\n\n3\x00"
    p = FrameParser()
    frames = []
    for i in range(len(data)):
        frames += p.feed(data[i : i + 1])
    assert [f.body for f in frames] == [b"1", b"2", b"3"]
    assert [f.body for f in parse_all(data)] == [b"1", b"2", b"3"]


def test_escaping_depends_on_version():
    raw = b"SEND\nx-a:a\\cb\\nc\\\\d\\re\n\n\x00"
    assert parse_all(raw, version=Version.V1_2)[0].get("x-a") == "a:b\nc\\d\re"
    # \r is not a 1.1 escape, but RabbitMQ reads it in 1.1 too.
    assert parse_all(raw, version=Version.V1_1)[0].get("x-a") == "a:b\nc\\d\re"
    with pytest.raises(ProtocolError, match="escape") as raised:
        parse_all(b"SEND\nx-a:a\\tb\n\n\x00", version=Version.V1_1)
    assert raised.value.fatal  # "MUST be treated as a fatal protocol error"
    assert parse_all(raw, version=Version.V1_0)[0].get("x-a") == "a\\cb\\nc\\\\d\\re"
    # CONNECT is never unescaped.
    [f] = parse_all(b"CONNECT\nlogin:a\\cb\n\n\x00", version=Version.V1_2)
    assert f.get("login") == "a\\cb"


def test_undefined_escape_is_fatal():
    with pytest.raises(ProtocolError) as info:
        parse_all(b"SEND\nx:\\t\nreceipt:r\n\n\x00", version=Version.V1_2)
    assert info.value.message == "Invalid header"


def test_unknown_command_keeps_receipt():
    with pytest.raises(ProtocolError) as info:
        parse_all(b"send\nreceipt:r9\n\n\x00")
    assert info.value.message == "Bad command"
    assert info.value.receipt_id == "r9"


def test_header_without_colon():
    with pytest.raises(ProtocolError, match="colon"):
        parse_all(b"SEND\nnocolon\n\n\x00")


def test_invalid_utf8_in_head():
    with pytest.raises(ProtocolError):
        parse_all(b"SEND\nx:\xff\xfe\n\n\x00")


def test_limits():
    with pytest.raises(FrameTooLarge, match="Too many headers"):
        parse_all(b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(11)) + b"\n\x00", max_headers=10)
    with pytest.raises(FrameTooLarge, match="Header line too long"):
        parse_all(b"SEND\nx:" + b"v" * 200 + b"\n\n\x00", max_header_line=100)
    # A declared content-length over the limit is refused before the body arrives.
    p = FrameParser(max_frame_size=1000)
    with pytest.raises(FrameTooLarge, match="Frame too large"):
        p.feed(b"SEND\ncontent-length:5000\n\n")
    # A NUL-terminated body is refused once it goes over the limit.
    p = FrameParser(max_frame_size=1000)
    p.feed(b"SEND\n\n" + b"x" * 900)
    with pytest.raises(FrameTooLarge):
        p.feed(b"x" * 200)
    # A never-ending header line is refused without buffering it all.
    p = FrameParser(max_header_line=100)
    with pytest.raises(FrameTooLarge):
        for _ in range(100):
            p.feed(b"y" * 10)
    assert p.buffered == 0


def test_parser_is_dead_after_a_framing_error():
    p = FrameParser()
    with pytest.raises(ProtocolError):
        p.feed(b"SEND\ncontent-length:x\n\n\x00")
    with pytest.raises(ProtocolError):
        p.feed(b"SEND\n\n\x00")


def test_parser_goes_on_after_a_bad_command_and_skips_nuls():
    # A whole frame with an unknown command is refused on its own (as RabbitMQ does);
    # NULs and EOLs between frames are skipped.
    p = FrameParser()
    with pytest.raises(ProtocolError, match="Bad command") as info:
        p.feed(b"BOGUS\n\n\x00\x00\n\x00SEND\n\n\x00")
    assert not info.value.fatal
    [frame] = p.feed(b"")
    assert frame.command is Command.SEND


def test_serialize_adds_content_length_and_escapes():
    data = serialize(Frame.make(Command.MESSAGE, [("x", "a:b\nc"), ("content-length", "99")], b"a\x00b"), Version.V1_2)
    assert data == b"MESSAGE\nx:a\\cb\\nc\ncontent-length:3\n\na\x00b\x00"
    data = serialize(Frame.make(Command.CONNECTED, {"version": "1.2", "x": "a:b"}), Version.V1_2)
    assert data == b"CONNECTED\nversion:1.2\nx:a:b\n\n\x00"
    data = serialize(Frame.make(Command.RECEIPT, {"receipt-id": "r\r"}), Version.V1_1)
    assert data == b"RECEIPT\nreceipt-id:r\r\n\n\x00"
    # 1.0 cannot escape: line breaks are neutralised so framing survives.
    assert serialize(Frame.make(Command.MESSAGE, {"x": "a\nb"}), Version.V1_0) == b"MESSAGE\nx:a b\ncontent-length:0\n\n\x00"


def test_encode_decode_header_pairs():
    for version in (Version.V1_1, Version.V1_2):
        text = "a\\b:c\nd"
        assert decode_header(encode_header(text, version), version) == text


# --- properties ------------------------------------------------------------

header_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
header_pairs = st.lists(st.tuples(header_text.filter(bool), header_text), max_size=8)
bodies = st.binary(max_size=200)
server_commands = st.sampled_from([Command.SEND, Command.MESSAGE, Command.ERROR, Command.SUBSCRIBE, Command.ACK])


@given(server_commands, header_pairs, bodies)
@settings(deadline=None)
def test_round_trip_1_2(command, headers, body):
    if command not in (Command.SEND, Command.MESSAGE, Command.ERROR):
        body = body.replace(b"\x00", b"")  # no content-length: a NUL would end the frame
    frame = Frame(command, tuple(h for h in headers if h[0] != "content-length"), body)
    data = serialize(frame, Version.V1_2)
    [parsed] = FrameParser(version=Version.V1_2).feed(data)
    assert parsed.command is command
    expected = frame.headers + ((("content-length", str(len(body))),) if command in (Command.SEND, Command.MESSAGE, Command.ERROR) else ())
    assert parsed.headers == expected
    if command in (Command.SEND, Command.MESSAGE, Command.ERROR):
        assert parsed.body == body


@given(header_pairs, bodies, st.data())
@settings(max_examples=60, deadline=None)
def test_split_anywhere_parses_the_same(headers, body, data):
    frames = [
        Frame(Command.SEND, tuple(h for h in headers if h[0] != "content-length"), body),
        Frame(Command.ACK, (("id", "1"),)),
    ]
    stream = b"\n".join(serialize(f, Version.V1_2) for f in frames) + b"\r\n"
    whole = FrameParser(version=Version.V1_2).feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    p = FrameParser(version=Version.V1_2)
    parsed = []
    last = 0
    for cut in [*cuts, len(stream)]:
        parsed += p.feed(stream[last:cut])
        last = cut
    assert parsed == whole
    assert len(parsed) == 2


def test_every_split_point():
    stream = serialize(Frame(Command.SEND, (("destination", "/q/a:b"), ("x", "\\")), b"x\x00y"), Version.V1_2) * 2
    whole = FrameParser(version=Version.V1_2).feed(stream)
    for cut in range(len(stream) + 1):
        p = FrameParser(version=Version.V1_2)
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == whole


@given(st.binary(max_size=300), st.sampled_from([None, Version.V1_0, Version.V1_1, Version.V1_2]))
@settings(max_examples=300, deadline=None)
def test_garbage_only_raises_protocol_errors(data, version):
    p = FrameParser(version=version, max_frame_size=128, max_headers=4, max_header_line=64)
    try:
        p.feed(data)
    except ProtocolError:
        pass
    assert p.buffered <= 128 + 64


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=40))
@settings(max_examples=100, deadline=None)
def test_buffering_is_bounded(chunks):
    p = FrameParser(max_frame_size=256, max_header_line=64)
    for chunk in chunks:
        try:
            p.feed(chunk)
        except ProtocolError:
            return
        assert p.buffered <= 256 + 64


def _outcome(chunks: list[bytes], version: Version | None) -> tuple[list[Frame], tuple[str, str, str | None] | None]:
    """Frames parsed from ``chunks`` (fed one by one) until the first error, and that error."""
    p = FrameParser(version=version, max_frame_size=200, max_headers=4, max_header_line=40)
    frames: list[Frame] = []
    for chunk in chunks:
        try:
            p.receive(chunk)
            while (frame := p.next_frame()) is not None:
                frames.append(frame)
        except ProtocolError as exc:
            return frames, (type(exc).__name__, exc.message, exc.receipt_id)
    return frames, None


_PIECES = st.sampled_from(
    [b"SEND\n", b"MESSAGE\n", b"BOGUS\n", b"destination:/q/a\n", b"receipt:r1\n", b"content-length:3\n",
     b"content-length:x\n", b"x:a\\cb\n", b"x:\\t\n", b"nocolon\n", b"h:" + b"v" * 45 + b"\n", b"\n", b"\r\n",
     b"\r", b"abc", b"\x00", b"\xc3\xa9", b"\xff", b"\n\n"]
)


@given(st.lists(_PIECES, max_size=30), st.sampled_from([None, Version.V1_0, Version.V1_1, Version.V1_2]))
@settings(max_examples=500, deadline=None)
def test_whole_heads_parse_as_line_by_line(pieces, version):
    """Heads taken at once (all bytes here) give the same frames and errors as heads
    read line by line (one byte at a time)."""
    data = b"".join(pieces)
    assert _outcome([data], version) == _outcome([data[i : i + 1] for i in range(len(data))], version)
