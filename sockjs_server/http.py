"""HTTP headers every SockJS response shares: CORS, caching, cookies, errors.

Written once here so that no transport grows its own copy.
"""

from __future__ import annotations

import socket
import struct
import time
from email.utils import formatdate

from aiohttp import web

from .options import Options

__all__ = [
    "NO_CACHE",
    "NOSNIFF",
    "abort_connection",
    "cached_for_a_year",
    "cors_headers",
    "error_response",
    "method_not_allowed",
    "origin_allowed",
    "preflight_response",
    "set_session_cookie",
]

ONE_YEAR = 31536000

NO_CACHE: dict[str, str] = {"Cache-Control": "no-store, no-cache, no-transform, must-revalidate, max-age=0"}
"""sockjs-protocol: private data requested with GET must never be cached."""

NOSNIFF: dict[str, str] = {"X-Content-Type-Options": "nosniff"}
"""On script and HTML responses: a browser must not guess another type for what a client controls."""

TEXT_PLAIN = "text/plain; charset=UTF-8"


def cached_for_a_year() -> dict[str, str]:
    """Headers of responses the protocol wants strongly cached (iframe page, preflights)."""
    return {
        "Cache-Control": f"public, max-age={ONE_YEAR}",
        "Expires": formatdate(time.time() + ONE_YEAR, usegmt=True),
    }


def origin_allowed(request: web.BaseRequest, options: Options) -> bool:
    """Whether the request's Origin may talk to this endpoint (always, unless ``allowed_origins`` is set).

    Requests without an Origin header are not cross-site browser requests,
    and the server's own origin (the iframe transports) is always allowed.
    """
    allowed = options.allowed_origins
    origin = request.headers.get("Origin")
    if allowed is None or origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    return origin == f"{request.scheme}://{request.host}"


def cors_headers(request: web.BaseRequest, options: Options) -> dict[str, str]:
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


def preflight_response(request: web.BaseRequest, options: Options, methods: str) -> web.Response:
    """Answer a CORS preflight: cacheable for a year, requested headers echoed."""
    headers = cors_headers(request, options)
    headers.update(cached_for_a_year())
    headers["Access-Control-Max-Age"] = str(ONE_YEAR)
    headers["Access-Control-Allow-Methods"] = methods
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    return web.Response(status=204, headers=headers)


def set_session_cookie(response: web.StreamResponse, request: web.BaseRequest, options: Options) -> None:
    """sockjs-protocol, JsessionidCookie: echo JSESSIONID (or set ``dummy``) when ``cookie_needed``."""
    if options.cookie_needed:
        response.set_cookie("JSESSIONID", request.cookies.get("JSESSIONID") or "dummy", path="/")


def error_response(
    request: web.BaseRequest, options: Options, status: int, text: str, *, cors: bool = True
) -> web.Response:
    """A plain-text error the client can read (CORS headers included so browsers show it)."""
    headers = cors_headers(request, options) if cors else {}
    headers.update(NO_CACHE)
    headers["Content-Type"] = TEXT_PLAIN
    return web.Response(status=status, text=text, headers=headers)


def method_not_allowed(allow: str) -> web.Response:
    """sockjs-protocol: 405 with an ``Allow`` header and neither body nor content type."""
    return web.Response(status=405, headers={"Allow": allow})


def abort_connection(request: web.BaseRequest) -> None:
    """Drop the request's connection without flushing (its client stopped reading).

    With a zero linger the kernel resets the connection instead of still
    trickling what its send buffer holds to a client that does not read.
    """
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
