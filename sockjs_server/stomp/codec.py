"""Sans-I/O STOMP codec: an incremental parser and a serializer.

The parser is fed bytes in arbitrary pieces (several frames in one SockJS
message, one frame split over many) and returns whole frames. It never buffers
more than the configured limits allow: a frame that cannot fit is rejected as
soon as that is known, before its bytes arrive.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from .errors import FrameTooLarge, ProtocolError, frame_error
from .frames import Command, Frame, Version

__all__ = [
    "FrameParser",
    "serialize",
    "message_head",
    "message_tail",
    "subscription_line",
    "encode_header",
    "decode_header",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_LINE",
    "HEARTBEAT",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_SIZE = 1024 * 1024
DEFAULT_MAX_HEADERS = 100
DEFAULT_MAX_HEADER_LINE = 10 * 1024

#: What a peer sends when it has nothing else to say: one EOL.
HEARTBEAT = b"\n"

_COMMANDS = {c.value: c for c in Command}
# "The CONNECT and CONNECTED frames do not escape the carriage return, line feed
# or colon octets in order to remain backward compatible with STOMP 1.0."
_UNESCAPED_COMMANDS = frozenset({Command.CONNECT, Command.STOMP, Command.CONNECTED})
_BODY_COMMANDS = frozenset({Command.SEND, Command.MESSAGE, Command.ERROR})

_ESCAPE_12 = str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"})
_ESCAPE_11 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"})
# STOMP 1.0 has no escaping at all: what would break the framing is replaced.
_SANITIZE_10_VALUE = str.maketrans({"\r": " ", "\n": " "})
_SANITIZE_10_NAME = str.maketrans({"\r": " ", "\n": " ", ":": "_"})
_UNESCAPE_12 = {"\\\\": "\\", "\\r": "\r", "\\n": "\n", "\\c": ":"}
# RabbitMQ also reads \r in 1.1 headers (1.1 defines only \\, \n and \c).
_UNESCAPE_11 = _UNESCAPE_12
_ESCAPE_RE = re.compile(r"\\.?", re.DOTALL)
_DIGITS = re.compile(r"[0-9]{1,18}")


def encode_header(text: str, version: Version | None, command: Command = Command.MESSAGE, *, name: bool = False) -> str:
    """Escape one header name or value for ``version`` ("the reverse transformation")."""
    if command in _UNESCAPED_COMMANDS or version is None:
        return text.translate(_SANITIZE_10_NAME if name else _SANITIZE_10_VALUE)
    if version is Version.V1_2:
        return text.translate(_ESCAPE_12)
    if version is Version.V1_1:
        return text.translate(_ESCAPE_11)
    return text.translate(_SANITIZE_10_NAME if name else _SANITIZE_10_VALUE)


def decode_header(text: str, version: Version | None, command: Command | None = None) -> str:
    """Undo header escaping for ``version``.

    "Undefined escape sequences such as \\t (octet 92 and 116) MUST be treated
    as a fatal protocol error."
    """
    if "\\" not in text or version is None or version is Version.V1_0 or command in _UNESCAPED_COMMANDS:
        return text
    table = _UNESCAPE_12 if version is Version.V1_2 else _UNESCAPE_11

    def replace(match: re.Match[str]) -> str:
        seq = match.group(0)
        try:
            return table[seq]
        except KeyError:
            # Fatal, as the spec says (RabbitMQ closes without an ERROR; we say why).
            raise ProtocolError("Invalid header", f"undefined escape sequence {seq!r} in header") from None

    return _ESCAPE_RE.sub(replace, text)


def serialize(frame: Frame, version: Version | None = Version.V1_2) -> bytes:
    """Encode a frame for a peer speaking ``version``.

    ``content-length`` is always computed here (any given one is dropped) for
    frames that may carry a body, so bodies with NUL octets survive: "If the
    frame body contains NULL octets, the frame MUST include a content-length".
    """
    command = frame.command
    parts = [command.value, "\n"]
    for name, value in frame.headers:
        if name == "content-length":
            continue
        parts += (encode_header(name, version, command, name=True), ":", encode_header(value, version, command), "\n")
    if command in _BODY_COMMANDS:
        parts += ("content-length:", str(len(frame.body)), "\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8") + frame.body + b"\x00"


def serialize_headers(pairs: Iterable[tuple[str, str]], version: Version | None) -> bytes:
    """Encode header lines only (used to pre-render the shared part of MESSAGE frames)."""
    out: list[str] = []
    for name, value in pairs:
        out += (encode_header(name, version, name=True), ":", encode_header(value, version), "\n")
    return "".join(out).encode("utf-8")


# MESSAGE frames: built in two parts, so that a fan-out serializes the shared part once.
#
#   MESSAGE                 \
#   subscription:<id>        |  message_head: per delivery (the subscription line is
#   message-id:<id>          |  rendered once per subscription by subscription_line)
#   ack:<id>                 |  (STOMP 1.2, client acknowledgement modes)
#   redelivered:<bool>      /
#   destination:<dest>      \
#   <message headers>        |  message_tail: per message (and version), shared by
#   content-length:<n>       |  every subscriber; no content-length for an empty
#                            |  body, as RabbitMQ
#   <body>NUL               /

_NEEDS_ESCAPE = re.compile(r"[\\:\r\n]").search


def subscription_line(subscription: str, version: Version | None) -> bytes:
    """The ``subscription`` header line of MESSAGE frames (rendered once per subscription)."""
    return b"subscription:%b\n" % encode_header(subscription, version).encode("utf-8")


def message_head(subscription: bytes, message_id: str, version: Version | None, *, ack: bool, redelivered: bool) -> bytes:
    """The start of one delivery's MESSAGE frame, up to :func:`message_tail`.

    ``subscription`` is the line from :func:`subscription_line`; ``ack`` adds
    the ack header (the message id), which 1.2 requires on deliveries that
    need an explicit acknowledgement.
    """
    mid = message_id.encode("utf-8") if not _NEEDS_ESCAPE(message_id) else encode_header(message_id, version).encode("utf-8")
    flag = b"true" if redelivered else b"false"
    if ack:
        return b"MESSAGE\n%bmessage-id:%b\nack:%b\nredelivered:%b\n" % (subscription, mid, mid, flag)
    return b"MESSAGE\n%bmessage-id:%b\nredelivered:%b\n" % (subscription, mid, flag)


def message_tail(destination: str, headers: Iterable[tuple[str, str]], body: bytes, version: Version | None, *, text: bool = False) -> bytes:
    """The part of a MESSAGE frame every subscriber shares, from the destination header to the NUL.

    ``text`` makes the body valid UTF-8 (invalid bytes replaced) for
    transports that can only carry text, keeping content-length right.
    """
    if text:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            body = body.decode("utf-8", "replace").encode("utf-8")
    pairs = [("destination", destination), *headers]
    if body:
        pairs.append(("content-length", str(len(body))))
    return serialize_headers(pairs, version) + b"\n" + body + b"\x00"


class FrameParser:
    """Incremental parser: ``feed(bytes)`` returns the frames completed so far.

    Limits (from the spec's "Size Limits": "the number of frame headers allowed
    in a single frame, the maximum length of header lines, the maximum size of
    a frame body") are checked as bytes arrive; going over raises
    :class:`FrameTooLarge`. Any other malformed input raises
    :class:`ProtocolError`. After an error the parser is unusable.
    """

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_line: int = DEFAULT_MAX_HEADER_LINE,
        version: Version | None = None,
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_headers = max_headers
        self.max_header_line = max_header_line
        #: Escaping rules in force; set by the connection once CONNECTED.
        self.version = version
        self._buf = bytearray()
        self._pos = 0
        self._reset_frame()
        self._failed = False
        #: Number of bare EOLs (heart-beats) seen; informative only.
        self.heartbeats = 0

    def _reset_frame(self) -> None:
        self._command: str | None = None
        self._lines: list[str] = []
        self._head_size = 0
        self._body_length: int | None = None
        self._in_body = False
        self._scanned = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf) - self._pos

    def receive(self, data: bytes) -> None:
        """Append bytes; call :meth:`next_frame` until it returns None."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None when more bytes are needed."""
        if self._failed:
            raise ProtocolError("Parser closed", "a previous error ended this stream")
        try:
            return self._next()
        except ProtocolError as exc:
            if exc.fatal:
                self._failed = True
                self._buf.clear()
                self._pos = 0
            raise

    def feed(self, data: bytes) -> list[Frame]:
        """``receive`` then every complete frame."""
        self.receive(data)
        frames: list[Frame] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def _too_large(self) -> FrameTooLarge:
        return FrameTooLarge(
            "Frame too large", f"frames are limited to {self.max_frame_size} bytes", receipt_id=self._raw_receipt()
        )

    def _raw_receipt(self) -> str | None:
        """The receipt header of the frame being read, for its ERROR (undecoded: best effort)."""
        for line in self._lines:
            if line.startswith("receipt:"):
                return line[8:]
        return None

    def _next(self) -> Frame | None:
        buf = self._buf
        n = len(buf)
        if not self._in_body:
            if self._command is None:
                # "The NULL octet can be optionally followed by multiple EOLs";
                # EOLs between frames are heart-beats. Stray NULs there are
                # skipped too, as RabbitMQ does.
                pos = self._pos
                while pos < n:
                    c = buf[pos]
                    if c == 10:
                        self.heartbeats += 1
                        pos += 1
                    elif c == 0:
                        pos += 1
                    elif c == 13:
                        if pos + 1 >= n:
                            break
                        if buf[pos + 1] != 10:
                            raise ProtocolError("Bad frame", "carriage return not followed by line feed")
                        self.heartbeats += 1
                        pos += 2
                    else:
                        break
                self._pos = pos
                if pos >= n:
                    return None
                if self._fast_head(buf, pos, n):
                    return self._read_body()
            # Header section, one line at a time.
            while True:
                pos = self._pos
                end = buf.find(b"\n", pos)
                if end < 0:
                    if n - pos > self.max_header_line:
                        raise FrameTooLarge("Header line too long", f"header lines are limited to {self.max_header_line} bytes")
                    if self._head_size + n - pos > self.max_frame_size:
                        raise self._too_large()
                    return None
                if end - pos > self.max_header_line:
                    raise FrameTooLarge("Header line too long", f"header lines are limited to {self.max_header_line} bytes")
                # "EOL = [CR] LF": an optional carriage return before the line feed.
                stop = end - 1 if end > pos and buf[end - 1] == 13 else end
                raw = bytes(buf[pos:stop])
                self._head_size += end + 1 - pos
                self._pos = end + 1
                if self._head_size > self.max_frame_size:
                    raise self._too_large()
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("Bad frame", "frame head is not valid UTF-8") from None
                if self._command is None:
                    self._command = line
                    continue
                if line:
                    if len(self._lines) >= self.max_headers:
                        raise FrameTooLarge("Too many headers", f"frames are limited to {self.max_headers} headers")
                    self._lines.append(line)
                    continue
                break
            self._in_body = True
            self._body_length = self._content_length()
            self._scanned = 0
        return self._read_body()

    def _fast_head(self, buf: bytearray, pos: int, n: int) -> bool:
        """Take a whole frame head at once when it is all here, small, LF-only and valid
        UTF-8 (the usual case); anything else is left to the line-by-line reader,
        which also produces every error."""
        limit = self.max_header_line
        end = buf.find(b"\n\n", pos, min(n, pos + limit + 2))
        if end < 0 or buf.find(b"\r", pos, end) >= 0:
            return False
        size = end + 2 - pos
        if size > self.max_frame_size:
            return False
        try:
            lines = buf[pos:end].decode("utf-8").split("\n")
        except UnicodeDecodeError:
            return False
        if len(lines) > self.max_headers + 1:
            return False
        self._command = lines[0]
        del lines[0]
        self._lines = lines
        self._head_size = size
        self._pos = end + 2
        self._in_body = True
        self._body_length = self._content_length()
        self._scanned = 0
        return True

    def _content_length(self) -> int | None:
        for line in self._lines:
            if line.startswith("content-length:"):
                # "only the first header entry SHOULD be used"
                value = line[15:]
                if not _DIGITS.fullmatch(value):
                    raise ProtocolError(
                        "Invalid content-length",
                        f"content-length must be a non-negative integer, got {value[:40]!r}",
                        receipt_id=self._raw_receipt(),
                    )
                length = int(value)
                if self._head_size + length + 1 > self.max_frame_size:
                    raise self._too_large()
                return length
        return None

    def _read_body(self) -> Frame | None:
        buf = self._buf
        pos = self._pos
        length = self._body_length
        if length is not None:
            # "If a content-length header is included, this number of octets
            # MUST be read, regardless of whether or not there are NULL octets
            # in the body. The frame still needs to be terminated with a NULL octet."
            if len(buf) - pos < length + 1:
                return None
            if buf[pos + length] != 0:
                raise ProtocolError(
                    "Bad frame", "frame body is not followed by a NULL octet at content-length", receipt_id=self._raw_receipt()
                )
            body = bytes(buf[pos : pos + length])
            self._pos = pos + length + 1
        else:
            end = buf.find(b"\x00", pos + self._scanned)
            if end < 0:
                self._scanned = len(buf) - pos
                if self._head_size + len(buf) - pos > self.max_frame_size:
                    raise self._too_large()
                return None
            if self._head_size + end - pos + 1 > self.max_frame_size:
                raise self._too_large()
            body = bytes(buf[pos:end])
            self._pos = end + 1
        return self._build(body)

    def _build(self, body: bytes) -> Frame:
        name = self._command or ""
        lines = self._lines
        self._reset_frame()
        command = _COMMANDS.get(name)
        version = self.version
        headers: list[tuple[str, str]] = []
        receipt: str | None = None
        for line in lines:
            key, sep, value = line.partition(":")
            if not sep:
                # RabbitMQ cannot read the frame and closes (without an ERROR; we say why).
                raise ProtocolError("Invalid header", f"header line without a colon: {line[:80]!r}", receipt_id=receipt)
            if "\\" in line:
                key = decode_header(key, version, command)
                value = decode_header(value, version, command)
            if receipt is None and key == "receipt":
                receipt = value
            headers.append((key, value))
        if command is None:
            raise frame_error("Bad command", f'Could not interpret command "{name[:40]}"\n', receipt_id=receipt)
        return Frame(command, tuple(headers), body)
