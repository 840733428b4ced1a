"""Which SockJS URL a request is for, and what to do with it, whatever the web framework.

Both web layers ask here: the aiohttp layer registers one route per URL
shape and calls :func:`session_action` and friends; the ASGI layer also
matches the path with :func:`match_path`. The answers (405 with ``Allow``,
CORS preflights, 403 for a foreign origin, 404 for a disabled transport) are
decided once, so the two layers cannot drift apart.
"""

from __future__ import annotations

import re
from enum import Enum

from .envelopes import ENVELOPES, CallbackError, Envelope, validate_callback
from .http import (
    NO_CACHE,
    NOSNIFF,
    NOT_FOUND,
    Answer,
    RequestHead,
    cors_headers,
    error_answer,
    method_not_allowed,
    origin_allowed,
    preflight_answer,
    session_cookie,
)
from .options import Options
from .static import IframePage, greeting, info

__all__ = [
    "IFRAME_PATH",
    "Page",
    "SESSION_PATH",
    "SendKind",
    "fixed_page",
    "match_path",
    "raw_websocket_refusal",
    "receive_refusal",
    "receive_headers",
    "session_action",
    "websocket_refusal",
]


class Page(Enum):
    """The URLs below an endpoint's prefix."""

    GREETING = "greeting"
    INFO = "info"
    IFRAME = "iframe"
    RAW_WEBSOCKET = "websocket"
    SESSION = "session"


class SendKind(Enum):
    """The session URLs that are not receiving transports."""

    WEBSOCKET = "websocket"
    XHR_SEND = "xhr_send"
    JSONP_SEND = "jsonp_send"


SESSION_PATH = r"/{server:[^/.]+}/{session:[^/.]+}/{transport:[a-z_]+}"
"""The session URL below the prefix, in aiohttp's route syntax."""

IFRAME_PATH = r"/{iframe:iframe[0-9A-Za-z._-]*\.html}"

_PATH = re.compile(r"/?|/(info)|/(iframe[0-9A-Za-z._-]*\.html)|/(websocket)|/([^/.]+)/([^/.]+)/([a-z_]+)")

# URL segment -> transport names that need it (a sending URL serves several receivers).
_SEND_USERS = {
    "xhr_send": ("xhr-polling", "xhr-streaming", "eventsource", "htmlfile"),
    "jsonp_send": ("jsonp-polling",),
}

_GET_ONLY = frozenset(("jsonp", "eventsource", "htmlfile"))


def match_path(path: str) -> tuple[Page, str, str] | None:
    """``(page, session id, transport segment)`` for a path below the prefix, or ``None`` (404)."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    if match.group(6) is not None:
        return Page.SESSION, match.group(5), match.group(6)
    if match.group(1) is not None:
        return Page.INFO, "", ""
    if match.group(2) is not None:
        return Page.IFRAME, "", ""
    if match.group(3) is not None:
        return Page.RAW_WEBSOCKET, "", ""
    return Page.GREETING, "", ""


def fixed_page(page: Page, request: RequestHead, options: Options, iframe: IframePage) -> Answer:
    """The answer for the greeting, ``/info`` and the iframe page (methods checked)."""
    method = request.method
    if page is Page.INFO:
        if method == "OPTIONS":
            return preflight_answer(request, options, "OPTIONS, GET")
        if method not in ("GET", "HEAD"):
            return method_not_allowed("OPTIONS, GET")
        return info(request, options)
    if method not in ("GET", "HEAD"):
        return method_not_allowed("GET, HEAD")
    if page is Page.IFRAME:
        return iframe.answer(request)
    return greeting()


def raw_websocket_refusal(request: RequestHead, options: Options) -> Answer | None:
    """Why ``/websocket`` cannot be served to ``request`` (before the handshake), or ``None``."""
    if request.method != "GET":
        return method_not_allowed("GET")
    if not options.transport_enabled("websocket-raw"):
        return NOT_FOUND
    return None


def session_action(request: RequestHead, options: Options, segment: str) -> Answer | Envelope | SendKind:
    """What a request to ``/<server>/<session>/<segment>`` becomes: an answer at once,
    a receiving transport (its envelope), or a sending or websocket one."""
    method = request.method
    if method != "OPTIONS" and not origin_allowed(request, options):
        # Refuse, not just withhold CORS headers: a no-cors request would
        # still open a session and deliver messages with the user's cookies.
        return error_answer(request, options, 403, "Origin not allowed.", cors=False)
    if segment == "websocket":
        if not options.transport_enabled("websocket"):
            return NOT_FOUND
        if method != "GET":
            return method_not_allowed("GET")
        return SendKind.WEBSOCKET
    envelope = ENVELOPES.get(segment)
    if envelope is not None:
        if not options.transport_enabled(envelope.name):
            return NOT_FOUND
        allowed = "GET" if segment in _GET_ONLY else "POST"
        if method == "OPTIONS" and allowed == "POST":
            return preflight_answer(request, options, "OPTIONS, POST")
        if method != allowed:
            return method_not_allowed(allowed)
        return envelope
    users = _SEND_USERS.get(segment)
    if users is None or (options.disabled_transports and not any(options.transport_enabled(name) for name in users)):
        return NOT_FOUND
    if method == "OPTIONS":
        return preflight_answer(request, options, "OPTIONS, POST")
    if method != "POST":
        return method_not_allowed("OPTIONS, POST")
    return SendKind.JSONP_SEND if segment == "jsonp_send" else SendKind.XHR_SEND


def receive_refusal(
    request: RequestHead, options: Options, envelope: Envelope, callback: str | None, shutting_down: bool
) -> Answer | str:
    """The callback name of a receiving request (``""`` when it needs none), or the answer refusing it.

    ``callback`` is the request's ``c`` query parameter.
    """
    name = ""
    if envelope.needs_callback:
        try:
            name = validate_callback(callback)
        except CallbackError as error:
            return error_answer(request, options, 500, str(error))
    if shutting_down:
        return error_answer(request, options, 503, "Server shutting down.")
    return name


def receive_headers(request: RequestHead, options: Options, envelope: Envelope) -> dict[str, str]:
    """The headers of a receiving transport's response (with the session cookie when needed)."""
    headers = cors_headers(request, options)
    headers.update(NO_CACHE)
    headers.update(NOSNIFF)
    headers["Content-Type"] = envelope.content_type
    cookie = session_cookie(request, options)
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    return headers


def websocket_refusal(request: RequestHead, options: Options, shutting_down: bool) -> Answer | None:
    """The answer to a websocket handshake that must be refused, or ``None``."""
    if not origin_allowed(request, options):
        # Cross-site websocket hijacking: browsers always send Origin on websocket handshakes.
        return error_answer(request, options, 403, "Origin not allowed.", cors=False)
    if shutting_down:
        return error_answer(request, options, 503, "Server shutting down.", cors=False)
    return None
