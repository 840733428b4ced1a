"""How each HTTP transport wraps frames on the wire (sans-I/O).

Every receiving transport is described by one :class:`Envelope`: its content
type, the prelude written before the first frame, and how one frame becomes
bytes. The aiohttp layer only writes what these return.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CallbackError",
    "Envelope",
    "TransportKind",
    "validate_callback",
    "ENVELOPES",
]


class TransportKind(Enum):
    """Whether a receiving request ends after one frame or keeps streaming."""

    POLLING = "polling"
    STREAMING = "streaming"


class CallbackError(ValueError):
    """A missing or unsafe JSONP/htmlfile callback name; ``str(error)`` is the answer's text."""


# sockjs-protocol, HtmlFile/JsonPolling: "Invalid characters are any matching
# the following regexp: [^a-zA-Z0-9-_.]". A full match, so a trailing newline
# never slips through as it would with ``$``.
_CALLBACK = re.compile(r"[a-zA-Z0-9_.\-]+")
MAX_CALLBACK_LENGTH = 64


def validate_callback(callback: str | None) -> str:
    """Return ``callback`` if it is a safe JavaScript name, else raise :class:`CallbackError`."""
    if not callback:
        raise CallbackError('"callback" parameter required')
    if len(callback) > MAX_CALLBACK_LENGTH or _CALLBACK.fullmatch(callback) is None:
        raise CallbackError('invalid "callback" parameter')
    return callback


_HTML_UNSAFE = re.compile("[<>&\u2028\u2029]")


def _html_safe_json(text: str) -> str:
    """JSON string literal that cannot end a ``<script>`` block or break a JS string."""
    encoded = json.dumps(text, ensure_ascii=False)
    return _HTML_UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group()), encoded)


def _js_json(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    # U+2028/U+2029 are line terminators in older JavaScript string literals.
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_HTMLFILE_HEAD = """<!doctype html>
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
  </script>
"""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The wire format of one receiving transport."""

    name: str
    content_type: str
    kind: TransportKind
    needs_callback: bool = False

    def prelude(self, callback: str = "") -> bytes:
        """Bytes written before the first frame."""
        if self.name == "xhr-streaming":
            # sockjs-protocol, XhrStreaming: "The transport must first send
            # 2KiB of `h` bytes as prelude."
            return b"h" * 2048 + b"\n"
        if self.name == "eventsource":
            # "The transport must first send a new line prelude, due to a bug in Opera."
            return b"\r\n"
        if self.name == "htmlfile":
            head = _HTMLFILE_HEAD % callback
            # Old browsers only start rendering after 1 KiB of body.
            padding = " " * max(0, 1025 - len(head))
            return (head + padding + "\r\n\r\n").encode()
        return b""

    def wrap(self, frame: str, callback: str = "") -> bytes:
        """One frame as it goes on the wire."""
        name = self.name
        if name == "xhr-polling" or name == "xhr-streaming":
            return (frame + "\n").encode()
        if name == "eventsource":
            # sockjs-client runs decodeURI() on every event's data, so "%" (and
            # the line breaks the event-stream format would split on) go
            # percent-encoded, as sockjs-node sends them.
            if "%" in frame:
                frame = frame.replace("%", "%25")
            if "\r" in frame or "\n" in frame or "\x00" in frame:
                frame = frame.replace("\r", "%0D").replace("\n", "%0A").replace("\x00", "%00")
            return ("data: " + frame + "\r\n\r\n").encode()
        if name == "htmlfile":
            return ("<script>\np(" + _html_safe_json(frame) + ");\n</script>\r\n").encode()
        # jsonp-polling: "/**/" guards against the Rosetta Flash content-sniffing attack.
        return ("/**/" + callback + "(" + _js_json(frame) + ");\r\n").encode()


_JS = "application/javascript; charset=UTF-8"

ENVELOPES: dict[str, Envelope] = {
    "xhr": Envelope("xhr-polling", _JS, TransportKind.POLLING),
    "xhr_streaming": Envelope("xhr-streaming", _JS, TransportKind.STREAMING),
    "eventsource": Envelope("eventsource", "text/event-stream", TransportKind.STREAMING),
    "htmlfile": Envelope("htmlfile", "text/html; charset=UTF-8", TransportKind.STREAMING, needs_callback=True),
    "jsonp": Envelope("jsonp-polling", _JS, TransportKind.POLLING, needs_callback=True),
}
"""Receiving transports by their URL segment."""
