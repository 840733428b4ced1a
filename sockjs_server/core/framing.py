"""SockJS frames and JSON payloads (sans-I/O).

The server sends four kinds of frames: ``o`` (open), ``h`` (heartbeat),
``a[...]`` (an array of messages) and ``c[code,"reason"]`` (close). Clients
send a JSON array of strings (or, on websocket, a single JSON string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from json.encoder import encode_basestring

__all__ = [
    "OPEN_FRAME",
    "HEARTBEAT_FRAME",
    "PayloadError",
    "TooManyMessages",
    "close_frame",
    "decode_payload",
    "encode_message",
    "message_frame",
    "messages_frame",
]

OPEN_FRAME = "o"
HEARTBEAT_FRAME = "h"

# sockjs-protocol, "JSON Unicode Encoding": the server must escape these
# because browsers mangle them on some transports; lone surrogates cannot be
# sent as UTF-8 at all, so they are escaped too.
_ESCAPABLE = re.compile(
    "[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ud800-\udfff\ufff0-\uffff]"
)


def _escape_char(match: re.Match[str]) -> str:
    return "\\u%04x" % ord(match.group())


def encode_message(message: str) -> str:
    """JSON-encode one message as the protocol requires (once, reusable for many sessions)."""
    encoded = encode_basestring(message)
    if message.isascii():
        # The only escapable ASCII characters (\x00-\x1f) are escaped by JSON already.
        return encoded
    if _ESCAPABLE.search(encoded) is not None:
        encoded = _ESCAPABLE.sub(_escape_char, encoded)
    return encoded


def messages_frame(encoded: Iterable[str]) -> str:
    """Build an ``a[...]`` frame from messages already passed through :func:`encode_message`."""
    return "a[" + ",".join(encoded) + "]"


def message_frame(message: str) -> str:
    """Build an ``a[...]`` frame carrying one message."""
    return "a[" + encode_message(message) + "]"


def close_frame(code: int, reason: str) -> str:
    """Build a ``c[code,"reason"]`` frame."""
    return "c[%d,%s]" % (code, encode_message(reason))


EMPTY_PAYLOAD = "Payload expected."
BROKEN_JSON = "Broken JSON encoding."
TOO_MANY_MESSAGES = "Too many messages."


class PayloadError(ValueError):
    """A client payload the protocol refuses, carrying its answer (as h11's errors carry
    ``error_status_hint``): ``str(error)`` is the text, ``status_hint`` the HTTP status
    for the sending transports, ``close_code_hint``/``close_reason`` the websocket close.
    """

    def __init__(
        self, message: str, *, status_hint: int = 500, close_code_hint: int = 3000, close_reason: str = "Broken framing."
    ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.close_code_hint = close_code_hint
        self.close_reason = close_reason


class TooManyMessages(PayloadError):
    """More messages in one payload than the endpoint accepts: 413, or websocket close 1009."""

    def __init__(self) -> None:
        super().__init__(TOO_MANY_MESSAGES, status_hint=413, close_code_hint=1009, close_reason=TOO_MANY_MESSAGES)

_json_loads = json.JSONDecoder().decode


def decode_payload(data: str, *, allow_single: bool = False, max_messages: int | None = None) -> list[str]:
    """Decode a client payload into messages.

    HTTP transports send a JSON array of strings; websocket clients may also
    send one JSON string (``allow_single``). Anything else - broken JSON, a
    number, an object, an array holding non-strings - is rejected as
    ``Broken JSON encoding.`` rather than being coerced.
    """
    if not data:
        raise PayloadError(EMPTY_PAYLOAD)
    try:
        value = _json_loads(data)
    except (ValueError, RecursionError):
        raise PayloadError(BROKEN_JSON) from None
    if isinstance(value, list):
        if max_messages is not None and len(value) > max_messages:
            raise TooManyMessages()
        for item in value:
            if not isinstance(item, str):
                raise PayloadError(BROKEN_JSON)
        return value
    if allow_single and isinstance(value, str):
        return [value]
    raise PayloadError(BROKEN_JSON)
