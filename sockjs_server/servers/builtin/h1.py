"""HTTP/1.1 requests read and responses written, without I/O: the built-in server's protocol.

Strict where leniency lets requests be read two ways (request smuggling):
a request with both ``Transfer-Encoding`` and ``Content-Length``, several
differing lengths, a transfer coding other than ``chunked``, folded or
malformed header lines, or bare CR/LF all get 400; a head larger than
``max_head`` bytes or with more than ``max_headers`` fields gets 431; an
HTTP version other than 1.0/1.1 gets 505. Each refusal is an
:class:`HttpError` carrying its status and a one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "MAX_HEAD",
    "MAX_HEADERS",
    "ChunkedReader",
    "HttpError",
    "RequestHead",
    "encode_fields",
    "encode_head",
    "error_response",
    "find_head_end",
    "parse_head",
    "status_line",
]

MAX_HEAD = 16384
"""Default limit of a request's line and header fields together, in bytes (431 above it)."""
MAX_HEADERS = 100
"""Default limit of header fields in one request (431 above it)."""

_REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 204: b"No Content", 301: b"Moved Permanently",
    302: b"Found", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden",
    404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout", 411: b"Length Required",
    413: b"Content Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    426: b"Upgrade Required", 429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway", 503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}  # fmt: skip

_STATUS_LINES: dict[tuple[bytes, int], bytes] = {}
_SPECIAL = frozenset((b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect"))
_NO_TOKENS: frozenset[bytes] = frozenset()
_METHODS = {m.encode(): m for m in ("GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH")}

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP/(\d)\.(\d)")
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
"""Every field line of a head at once: a token, a colon, a value without control characters (tab allowed)."""


class HttpError(Exception):
    """A request the server refuses before the application sees it: ``status`` and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestHead(NamedTuple):
    """A request's line and header fields (names lowercased, values stripped), and how its body ends."""

    method: str
    target: bytes
    version: bytes
    """``b"1.1"`` or ``b"1.0"``, as ASGI's ``http_version`` wants it (decoded)."""
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    content_length: int
    """The body's length; ``-1`` when the body is chunked."""
    upgrade: bool
    """``Connection: upgrade`` with ``Upgrade: websocket`` (that one protocol only): a websocket handshake."""
    expect_continue: bool


def find_head_end(buffer: bytes | bytearray, start: int = 0) -> int:
    """Where the head that starts at ``start`` ends (after its blank line), or -1 when it has not all arrived."""
    end = buffer.find(b"\r\n\r\n", start)
    return -1 if end < 0 else end + 4


def parse_head(head: bytes, max_headers: int = MAX_HEADERS) -> RequestHead:
    """Parse a complete head (request line, fields, blank line); :class:`HttpError` when it is not valid."""
    line_end = head.find(b"\r\n")
    request_line = _REQUEST_LINE.fullmatch(head, 0, line_end)
    if request_line is None:
        if head.startswith(b"PRI * HTTP/2"):
            raise HttpError(505, "HTTP/2 without TLS is not served; use HTTP/1.1.")
        raise HttpError(400, "Malformed request line.")
    method_raw, target, major, minor = request_line.groups()
    if major != b"1" or minor not in (b"0", b"1"):
        raise HttpError(505, "Only HTTP/1.0 and HTTP/1.1 are served.")
    headers: list[tuple[bytes, bytes]] = []
    connection = upgrade = transfer_encoding = expect = b""
    content_length = b""
    lengths = 0
    if line_end + 4 < len(head):
        if _FIELDS.fullmatch(head, line_end + 2, len(head) - 2) is None:
            raise HttpError(400, "Malformed header field.")
        lines = head[line_end + 2 : -4].split(b"\r\n")
        if len(lines) > max_headers:
            raise HttpError(431, f"More than {max_headers} header fields.")
        special = _SPECIAL
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.lower()
            value = value.strip(b" \t")
            headers.append((name, value))
            if name in special:
                if name == b"content-length":
                    if lengths and value != content_length:
                        raise HttpError(400, "Conflicting Content-Length fields.")
                    content_length = value
                    lengths += 1
                elif name == b"transfer-encoding":
                    transfer_encoding = (transfer_encoding + b"," + value) if transfer_encoding else value
                elif name == b"connection":
                    connection = (connection + b"," + value) if connection else value
                elif name == b"upgrade":
                    upgrade = (upgrade + b"," + value) if upgrade else value
                else:
                    expect = value
    version = b"1.1" if minor == b"1" else b"1.0"
    tokens: frozenset[bytes] | set[bytes]
    if connection:
        tokens = {token.strip() for token in connection.lower().split(b",")}
        keep_alive = b"close" not in tokens if minor == b"1" else b"keep-alive" in tokens
    else:
        tokens = _NO_TOKENS
        keep_alive = minor == b"1"
    if transfer_encoding:
        if lengths:
            raise HttpError(400, "Both Transfer-Encoding and Content-Length.")
        if transfer_encoding.lower() != b"chunked" or minor != b"1":
            raise HttpError(501 if minor == b"1" else 400, "Only the chunked transfer coding is understood.")
        length = -1
    elif lengths:
        if not content_length.isdigit() or len(content_length) > 18:
            raise HttpError(400, "Malformed Content-Length.")
        length = int(content_length)
    else:
        length = 0
    method = _METHODS.get(method_raw)
    if method is None:
        method = method_raw.decode("ascii")
    return RequestHead(
        method, target, version, headers, keep_alive, length,
        b"upgrade" in tokens and upgrade.lower() == b"websocket", minor == b"1" and expect.lower() == b"100-continue",
    )  # fmt: skip


def status_line(version: bytes, status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` (kept for the next response with the same status)."""
    key = (version, status)
    line = _STATUS_LINES.get(key)
    if line is None:
        if len(_STATUS_LINES) < 256:
            line = _STATUS_LINES[key] = b"HTTP/%s %d %s\r\n" % (version, status, _REASONS.get(status, b""))
        else:
            line = b"HTTP/%s %d %s\r\n" % (version, status, _REASONS.get(status, b""))
    return line


def encode_head(version: bytes, status: int, headers: Iterable[tuple[bytes, bytes]], extra: bytes = b"") -> bytes:
    """A response's status line and fields, ``extra`` (already encoded fields) and the blank line.

    ValueError when a name or value holds CR or LF (a field that would end the head early).
    """
    parts = [status_line(version, status)]
    for name, value in headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    parts.append(extra)
    parts.append(b"\r\n")
    head = b"".join(parts)
    if head.count(b"\n") != len(parts) - 1 + extra.count(b"\n") or head.count(b"\r") != head.count(b"\n"):
        raise ValueError("a response header holds CR or LF")
    return head


_FIELD_CACHE: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, bool, bool]] = {}


def encode_fields(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bool, bool]:
    """An application's response fields encoded, whether they hold a Content-Length, and whether they
    ask to close the connection; kept for the next response with the same fields (an app answers with
    a few sets). ValueError when a name or value holds CR or LF."""
    key = tuple(headers)
    found = _FIELD_CACHE.get(key)
    if found is not None:
        return found
    parts = []
    length = close = False
    for name, value in key:
        parts.append(b"%s: %s\r\n" % (name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            length = True
        elif lowered == b"connection" and b"close" in value.lower():
            close = True
    fields = b"".join(parts)
    if fields.count(b"\n") != len(parts) or fields.count(b"\r") != len(parts):
        raise ValueError("a response header holds CR or LF")
    if len(_FIELD_CACHE) >= 512:
        _FIELD_CACHE.clear()
    found = _FIELD_CACHE[key] = (fields, length, close)
    return found


def error_response(error: HttpError, version: bytes = b"1.1") -> bytes:
    """The whole answer to a refused request; the connection closes after it."""
    body = (error.reason + "\n").encode("utf-8", "replace")
    return encode_head(
        version if version in (b"1.0", b"1.1") else b"1.1", error.status,
        [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body)), (b"connection", b"close")],
    ) + body  # fmt: skip


class ChunkedReader:
    """A chunked request body, decoded as it arrives: :meth:`feed` returns the data it could decode.

    Chunk extensions are skipped and trailer fields read and dropped; a chunk
    size line or trailer section larger than ``max_line`` bytes is a 400.
    """

    __slots__ = ("_buffer", "_left", "_state", "done", "max_line")

    def __init__(self, max_line: int = 4096) -> None:
        self._buffer = b""
        self._left = 0
        self._state = 0  # 0: size line, 1: data, 2: CRLF after data, 3: trailers
        self.done = False
        self.max_line = max_line

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """The decoded data in ``data``, and what follows the body once it ended (the next request)."""
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        out: list[bytes] = []
        position = 0
        while not self.done:
            if self._state == 1:
                take = buffer[position : position + self._left]
                out.append(take)
                position += len(take)
                self._left -= len(take)
                if self._left:
                    break
                self._state = 2
                continue
            end = buffer.find(b"\r\n", position)
            if end < 0:
                rest = buffer[position:]
                if len(rest) > self.max_line:
                    raise HttpError(400, "Chunk size line or trailer too long.")
                self._buffer = rest
                break
            line = buffer[position:end]
            position = end + 2
            if self._state == 2:
                if line:
                    raise HttpError(400, "Chunk data longer than its size.")
                self._state = 0
            elif self._state == 0:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
                    raise HttpError(400, "Malformed chunk size.")
                self._left = int(size, 16)
                self._state = 1 if self._left else 3
            elif line:  # a trailer field
                if len(line) > self.max_line:
                    raise HttpError(400, "Chunk trailer too long.")
            else:
                self.done = True
        return b"".join(out), (buffer[position:] if self.done else b"")
