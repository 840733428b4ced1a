"""HTTP headers and answers every SockJS response shares: CORS, caching, cookies, errors.

Written once here, free of any web framework, so that neither the aiohttp
layer nor the ASGI layer grows its own copy: both read a request through
:class:`RequestHead` and turn an :class:`Answer` into their own response.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.cookies import SimpleCookie
from typing import Protocol

from .options import Options

__all__ = [
    "NO_CACHE",
    "NOSNIFF",
    "NOT_FOUND",
    "ON_DISCONNECT",
    "WEBSOCKET_PUSH",
    "WEBSOCKET_WRITE",
    "WRITE_ROOM",
    "TEXT_PLAIN",
    "Answer",
    "RequestHead",
    "cached_for_a_year",
    "cors_headers",
    "error_answer",
    "method_not_allowed",
    "origin_allowed",
    "preflight_answer",
    "session_cookie",
]

ONE_YEAR = 31536000

NO_CACHE: dict[str, str] = {"Cache-Control": "no-store, no-cache, no-transform, must-revalidate, max-age=0"}
"""sockjs-protocol: private data requested with GET must never be cached."""

NOSNIFF: dict[str, str] = {"X-Content-Type-Options": "nosniff"}
"""On script and HTML responses: a browser must not guess another type for what a client controls."""

TEXT_PLAIN = "text/plain; charset=UTF-8"

ON_DISCONNECT = "sockjs_server.on_disconnect"
"""An ASGI extension the built-in server offers: ``scope["extensions"][ON_DISCONNECT](callback)``
calls ``callback()`` when the client goes away before the answer ends and returns the function that
stops watching; it spares a pending poll the task that would wait for ``http.disconnect``."""

WEBSOCKET_PUSH = "sockjs_server.websocket_push"
"""An ASGI extension the built-in server offers on websockets, once accepted:
``scope["extensions"][WEBSOCKET_PUSH](on_message, on_close)``. From then on the server calls
``on_message(text_or_bytes)`` for each message as it arrives, in order, instead of queuing
``websocket.receive`` events, and ``on_close(code)`` once when the websocket is over instead of
``websocket.disconnect``; the application no longer calls ``receive()``. ``on_message`` returns
``None``, or an awaitable while the application can take no more: the server reads nothing from that
client until it is done (back-pressure). It spares every message the wake-up of a task that waits
in ``receive()``."""

WEBSOCKET_WRITE = "sockjs_server.websocket_write"
"""An ASGI extension the built-in server offers on websockets: ``scope["extensions"][WEBSOCKET_WRITE](data)``
writes a text (``str``) or binary (``bytes``) message at once, as ``websocket.send`` would, and returns
``None``, or an awaitable to wait on before the next write while the client is not reading. It raises
``ConnectionResetError`` once the websocket is closed. It spares each message an ASGI event and its coroutine."""

WRITE_ROOM = "sockjs_server.write_room"
"""An ASGI extension the built-in server offers on HTTP requests: ``scope["extensions"][WRITE_ROOM](size)``
tells whether ``size`` more bytes of the answer go out without waiting for the client (its connection's
buffer stays below the high-water mark). A streaming transport uses it to write a reply from the
sender's task only when that cannot block it."""


class RequestHead(Protocol):
    """What the shared code reads of a request: aiohttp's ``web.Request`` is one as it is,
    the ASGI layer builds one per request."""

    @property
    def method(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def scheme(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete response (status, headers, body) that each web layer writes its own way.

    ``body`` empty means no body and no content type (the protocol's bare 405 and 204).
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


NOT_FOUND = Answer(404, {"Content-Type": "text/plain; charset=utf-8"}, b"404: Not Found")
"""A SockJS URL of a disabled transport, or no SockJS URL at all."""


def cached_for_a_year() -> dict[str, str]:
    """Headers of responses the protocol wants strongly cached (iframe page, preflights)."""
    return {
        "Cache-Control": f"public, max-age={ONE_YEAR}",
        "Expires": formatdate(time.time() + ONE_YEAR, usegmt=True),
    }


def origin_allowed(request: RequestHead, options: Options) -> bool:
    """Whether the request's Origin may talk to this endpoint (always, unless ``allowed_origins`` is set).

    Requests without an Origin header are not cross-site browser requests,
    and the server's own origin (the iframe transports) is always allowed.
    """
    allowed = options.allowed_origins
    if allowed is None:
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    return origin == f"{request.scheme}://{request.host}"


def cors_headers(request: RequestHead, options: Options) -> dict[str, str]:
    """CORS headers for a response to ``request``.

    sockjs-protocol: with an Origin, echo it and allow credentials so that
    JSESSIONID cookies can fly; without one, answer ``*``. An origin outside
    ``allowed_origins`` gets no CORS headers, so the browser refuses the reply.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return {"Access-Control-Allow-Origin": "*"}
    if not origin_allowed(request, options):
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def preflight_answer(request: RequestHead, options: Options, methods: str) -> Answer:
    """Answer a CORS preflight: cacheable for a year, requested headers echoed."""
    headers = cors_headers(request, options)
    headers.update(cached_for_a_year())
    headers["Access-Control-Max-Age"] = str(ONE_YEAR)
    headers["Access-Control-Allow-Methods"] = methods
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    return Answer(204, headers)


def session_cookie(request: RequestHead, options: Options) -> str | None:
    """sockjs-protocol, JsessionidCookie: the ``Set-Cookie`` value echoing JSESSIONID
    (or setting ``dummy``) when ``cookie_needed``, else ``None``."""
    if not options.cookie_needed:
        return None
    cookie: SimpleCookie = SimpleCookie()
    cookie["JSESSIONID"] = request.cookies.get("JSESSIONID") or "dummy"
    cookie["JSESSIONID"]["path"] = "/"
    return cookie["JSESSIONID"].OutputString()


def error_answer(request: RequestHead, options: Options, status: int, text: str, *, cors: bool = True) -> Answer:
    """A plain-text error the client can read (CORS headers included so browsers show it)."""
    headers = cors_headers(request, options) if cors else {}
    headers.update(NO_CACHE)
    headers["Content-Type"] = TEXT_PLAIN
    return Answer(status, headers, text.encode())


def method_not_allowed(allow: str) -> Answer:
    """sockjs-protocol: 405 with an ``Allow`` header and neither body nor content type."""
    return Answer(405, {"Allow": allow})
