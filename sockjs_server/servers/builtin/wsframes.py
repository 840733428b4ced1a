"""RFC 6455 websocket frames, server side (sans-I/O).

:class:`FrameReader` turns the bytes a client sends into whole messages and
control frames; the ``encode_*`` functions build the server's frames (FIN
set, unmasked). No extension is ever negotiated, so no RSV bit is valid.

Limits and answers (a :class:`WebsocketError` carries the close code to answer with):

- A message (the sum of its fragments; UTF-8 bytes for text) may be
  ``max_message_size`` bytes; one byte more is 1009, decided from the frame
  header before any of its payload is waited for.
- Unmasked client frames (unless ``require_mask=False``), RSV bits, unknown
  opcodes, control frames over 125 bytes or fragmented, a continuation with no
  message started, a new data message before the last one ended, a 1-byte close
  payload, a close code not allowed on the wire (allowed: 1000-1003, 1007-1014,
  3000-4999) and a 64-bit length with its top bit set are 1002.
- Invalid UTF-8 in a text message or a close reason is 1007. A fragmented text
  message is checked fragment by fragment, so it fails at the first bad
  fragment; a single frame is checked once its payload is complete.
- Non-minimal length encodings are accepted (they cost nothing to read).
- A close frame without payload reads as ``(1005, "")``; :func:`encode_close`
  answers 1005 with an empty close payload, as RFC 6455 5.5.1 allows.
- After a close frame or an error the reader is finished: further feeds return
  ``[]`` and any bytes after the close frame are ignored. An error's
  ``messages`` are those the same feed completed before it (deliver, then close).
- Memory: the reader holds at most one unfinished frame and one unfinished
  message, each within ``max_message_size`` (plus the caller's last chunk).
- :func:`encode_text` raises UnicodeEncodeError on a lone surrogate (UTF-8
  cannot carry it); :func:`encode_close` replaces them with ``?``.

Speed: payloads are unmasked by XOR through Python integers (one
``int.from_bytes`` / ``to_bytes`` round trip) up to a few KiB, and above that by
``bytes.translate`` on each fourth byte, whose cost stays linear where big
integers get slower per byte.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from typing import Any, Final

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "WebsocketError",
    "accept_key",
    "close_code_allowed",
    "encode_binary",
    "encode_close",
    "encode_frame",
    "encode_text",
    "unmask",
]

OP_CONTINUATION: Final = 0
OP_TEXT: Final = 1
OP_BINARY: Final = 2
OP_CLOSE: Final = 8
OP_PING: Final = 9
OP_PONG: Final = 10

PROTOCOL_ERROR: Final = 1002
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009
NO_STATUS: Final = 1005

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_CONTROL: Final = 125


class WebsocketError(Exception):
    """A protocol violation by the peer; carries the close code and reason the server answers with.

    ``messages`` holds what the same :meth:`FrameReader.feed` call completed
    before the violation, in order, for a caller that delivers them before closing.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.messages: list[tuple[int, Any]] = []


def accept_key(key: str) -> str | None:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key, or None when the key is not base64 of 16 bytes."""
    key = key.strip(" \t")
    if len(key) != 24:
        return None
    try:
        raw = key.encode("ascii")
        if len(base64.b64decode(raw, validate=True)) != 16:
            return None
    except (UnicodeEncodeError, binascii.Error):
        return None
    return base64.b64encode(hashlib.sha1(raw + _GUID).digest()).decode("ascii")


def close_code_allowed(code: int) -> bool:
    """Whether a close frame may carry ``code`` on the wire (RFC 6455 7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


# Payloads up to this many bytes are unmasked through one big integer; above it,
# big-integer conversions stop being linear and four translations win.
_INT_UNMASK_MAX: Final = 2048

_IDENTITY: Final = int.from_bytes(bytes(range(256)), "little")
_XOR_TABLES: Final = tuple(
    (_IDENTITY ^ int.from_bytes(bytes((k,)) * 256, "little")).to_bytes(256, "little") for k in range(256)
)
"""``_XOR_TABLES[k]`` maps each byte to itself XOR ``k``, for ``bytes.translate``."""


def _unmask_large(src: bytes | bytearray, start: int, stop: int, mask: bytes | bytearray) -> bytearray:
    """``src[start:stop]`` XOR the repeated ``mask``, one translation per mask byte."""
    out = bytearray(stop - start)
    tables = _XOR_TABLES
    out[0::4] = src[start:stop:4].translate(tables[mask[0]])
    out[1::4] = src[start + 1 : stop : 4].translate(tables[mask[1]])
    out[2::4] = src[start + 2 : stop : 4].translate(tables[mask[2]])
    out[3::4] = src[start + 3 : stop : 4].translate(tables[mask[3]])
    return out


def unmask(mask: bytes, payload: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``mask`` (masking and unmasking are the same)."""
    length = len(payload)
    if length > _INT_UNMASK_MAX:
        return bytes(_unmask_large(payload, 0, length, mask))
    if not length:
        return b""
    return (
        int.from_bytes(payload, "little") ^ int.from_bytes((mask * ((length + 3) >> 2))[:length], "little")
    ).to_bytes(length, "little")


class FrameReader:
    """Reassembles a client's frames into messages (see the module docstring for the limits)."""

    __slots__ = ("_buffer", "_need", "_opcode", "_message", "_decoder", "_finished", "_max", "_require_mask")

    def __init__(self, max_message_size: int, *, require_mask: bool = True) -> None:
        self._buffer = bytearray()
        self._need = 0  # bytes the buffer must hold before a frame can complete
        self._opcode = 0  # OP_TEXT or OP_BINARY while a fragmented message is unfinished
        self._message = bytearray()  # its fragments so far
        self._decoder: codecs.IncrementalDecoder | None = None  # checks a fragmented text message's UTF-8
        self._finished = False
        self._max = max_message_size
        self._require_mask = require_mask

    @property
    def finished(self) -> bool:
        """Whether a close frame or an error ended the reading."""
        return self._finished

    def feed(self, data: bytes | bytearray) -> list[tuple[int, Any]]:
        """Complete messages and control frames in the data fed so far, in order.

        ``(OP_TEXT, str)``, ``(OP_BINARY, bytes)``, ``(OP_PING, bytes)``,
        ``(OP_PONG, bytes)``, ``(OP_CLOSE, (code, reason))``. Raises
        :class:`WebsocketError` on a protocol violation.
        """
        if self._finished:
            return []
        buffer = self._buffer
        src: bytes | bytearray = data
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return []
            src = buffer
        out: list[tuple[int, Any]] = []
        end = len(src)
        pos = 0
        try:
            while True:
                if end - pos < 2:
                    need = 2
                    break
                b0 = src[pos]
                b1 = src[pos + 1]
                length = b1 & 0x7F
                start = pos + 2
                if length >= 126:
                    if length == 126:
                        start += 2
                        if start > end:
                            need = 4
                            break
                        length = (src[pos + 2] << 8) | src[pos + 3]
                    else:
                        start += 8
                        if start > end:
                            need = 10
                            break
                        length = int.from_bytes(src[pos + 2 : start], "big")
                        if length >> 63:
                            raise WebsocketError(PROTOCOL_ERROR, "Invalid frame length.")
                masked = b1 & 0x80
                if masked:
                    start += 4
                elif self._require_mask:
                    raise WebsocketError(PROTOCOL_ERROR, "Unmasked client frame.")
                if b0 & 0x70:
                    raise WebsocketError(PROTOCOL_ERROR, "Reserved bits set.")
                opcode = b0 & 0x0F
                fin = b0 & 0x80
                if opcode >= OP_CLOSE:
                    if opcode > OP_PONG:
                        raise WebsocketError(PROTOCOL_ERROR, "Unknown opcode.")
                    if not fin:
                        raise WebsocketError(PROTOCOL_ERROR, "Fragmented control frame.")
                    if length > _MAX_CONTROL:
                        raise WebsocketError(PROTOCOL_ERROR, "Control frame too long.")
                elif opcode:
                    if opcode > OP_BINARY:
                        raise WebsocketError(PROTOCOL_ERROR, "Unknown opcode.")
                    if self._opcode:
                        raise WebsocketError(PROTOCOL_ERROR, "New message before the last one ended.")
                    if length > self._max:
                        raise WebsocketError(MESSAGE_TOO_BIG, "Message too big.")
                else:
                    if not self._opcode:
                        raise WebsocketError(PROTOCOL_ERROR, "Continuation frame without a message.")
                    if len(self._message) + length > self._max:
                        raise WebsocketError(MESSAGE_TOO_BIG, "Message too big.")
                stop = start + length
                if stop > end:
                    need = stop - pos
                    break
                payload: bytes | bytearray
                if not masked:
                    payload = src[start:stop]
                elif length <= _INT_UNMASK_MAX:
                    if length:
                        payload = (
                            int.from_bytes(src[start:stop], "little")
                            ^ int.from_bytes((src[start - 4 : start] * ((length + 3) >> 2))[:length], "little")
                        ).to_bytes(length, "little")
                    else:
                        payload = b""
                else:
                    payload = _unmask_large(src, start, stop, src[start - 4 : start])
                pos = stop

                if opcode == OP_TEXT:
                    if fin:
                        out.append((OP_TEXT, payload.decode("utf-8")))
                    else:
                        self._start(OP_TEXT, payload)
                elif opcode == OP_BINARY:
                    if fin:
                        out.append((OP_BINARY, payload if type(payload) is bytes else bytes(payload)))
                    else:
                        self._start(OP_BINARY, payload)
                elif not opcode:
                    message = self._continue(payload, fin)
                    if message is not None:
                        out.append(message)
                elif opcode == OP_CLOSE:
                    out.append((OP_CLOSE, _read_close(payload)))
                    self._finish()
                    return out
                else:
                    out.append((opcode, payload if type(payload) is bytes else bytes(payload)))
        except UnicodeDecodeError:
            error = WebsocketError(INVALID_DATA, "Invalid UTF-8.")
            error.messages = out
            self._finish()
            raise error from None
        except WebsocketError as error:
            error.messages = out
            self._finish()
            raise
        # Keep the unread tail for the next feed.
        if src is buffer:
            if pos == end:
                self._buffer = bytearray()  # frees a big message's bytes
            elif pos:
                del buffer[:pos]
        elif pos < end:
            buffer += memoryview(data)[pos:]
        self._need = need
        return out

    def _start(self, opcode: int, payload: bytes | bytearray) -> None:
        """The first fragment of a message."""
        self._opcode = opcode
        self._message += payload
        if opcode == OP_TEXT:
            self._decoder = decoder = _utf8_decoder()
            decoder.decode(payload)

    def _continue(self, payload: bytes | bytearray, fin: int) -> tuple[int, Any] | None:
        """A continuation fragment; the message once it is the last one."""
        message = self._message
        message += payload
        opcode = self._opcode
        if not fin:
            if opcode == OP_TEXT and payload:
                assert self._decoder is not None
                self._decoder.decode(payload)
            return None
        self._opcode = 0
        self._decoder = None
        # The decoder's pieces were dropped (one-byte fragments would cost a str
        # each): the whole message is decoded here, which also refuses a partial
        # last character.
        value: str | bytes = message.decode("utf-8") if opcode == OP_TEXT else bytes(message)
        self._message = bytearray()
        return opcode, value

    def _finish(self) -> None:
        self._finished = True
        self._buffer = bytearray()
        self._message = bytearray()
        self._decoder = None
        self._opcode = 0


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _read_close(payload: bytes | bytearray) -> tuple[int, str]:
    """The code and reason of a close frame's payload."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) < 2:
        raise WebsocketError(PROTOCOL_ERROR, "Invalid close frame.")
    code = (payload[0] << 8) | payload[1]
    if not close_code_allowed(code):
        raise WebsocketError(PROTOCOL_ERROR, "Invalid close code.")
    return code, payload[2:].decode("utf-8")


_HEADERS: Final = {
    opcode: tuple(bytes((0x80 | opcode, length)) for length in range(126))
    for opcode in (OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)
}
_TEXT_HEADERS: Final = _HEADERS[OP_TEXT]
_BINARY_HEADERS: Final = _HEADERS[OP_BINARY]


def _long_header(first: int, length: int) -> bytes:
    if length < 0x10000:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: FIN set, unmasked. Control frames over 125 bytes raise ValueError."""
    length = len(payload)
    headers = _HEADERS.get(opcode)
    if headers is None:
        raise ValueError(f"not an opcode for a whole frame: {opcode}")
    if length < 126:
        return headers[length] + payload
    if opcode >= OP_CLOSE:
        raise ValueError(f"a control frame carries at most 125 bytes, not {length}")
    return _long_header(0x80 | opcode, length) + payload


def encode_text(text: str) -> bytes:
    """A text frame (a lone surrogate, which UTF-8 cannot carry, raises UnicodeEncodeError)."""
    data = text.encode("utf-8")
    length = len(data)
    if length < 126:
        return _TEXT_HEADERS[length] + data
    return _long_header(0x81, length) + data


def encode_binary(data: bytes) -> bytes:
    """A binary frame."""
    length = len(data)
    if length < 126:
        return _BINARY_HEADERS[length] + data
    return _long_header(0x82, length) + data


def encode_close(code: int, reason: str = "") -> bytes:
    """A close frame; ``reason`` is cut to 123 bytes on a UTF-8 boundary.

    1005 (the peer gave no code) is answered with an empty payload; any other
    code not allowed on the wire raises ValueError.
    """
    if code == NO_STATUS:
        return _HEADERS[OP_CLOSE][0]
    if not close_code_allowed(code):
        raise ValueError(f"close code {code} is not allowed on the wire")
    data = reason.encode("utf-8", "replace")
    if len(data) > _MAX_CONTROL - 2:
        # Only the cut can leave a partial character, at the end: drop it.
        data = data[: _MAX_CONTROL - 2].decode("utf-8", "ignore").encode("utf-8")
    payload = code.to_bytes(2, "big") + data
    return _HEADERS[OP_CLOSE][len(payload)] + payload
