"""Mounting an endpoint in an aiohttp app: :func:`add_endpoint` and the URL layout.

Every path is registered once with a method dispatcher, so wrong methods get
the protocol's bare 405 (an ``Allow`` header, no body) instead of aiohttp's.
This module knows the :class:`~sockjs_server.endpoint.Endpoint` and the
transports; neither of them imports it back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from . import static, transports, websocket
from .endpoint import ENDPOINTS, Endpoint
from .envelopes import ENVELOPES
from .http import error_response, method_not_allowed, origin_allowed, preflight_response
from .options import Options, WebsocketProfile
from .session import Handler
from .stats import EndpointCounters

__all__ = ["add_endpoint", "register_routes"]

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]

# URL segment -> transport names that need it (a sending URL serves several receivers).
_SEND_USERS = {
    "xhr_send": ("xhr-polling", "xhr-streaming", "eventsource", "htmlfile"),
    "jsonp_send": ("jsonp-polling",),
}


def add_endpoint(
    app: web.Application,
    prefix: str,
    handler: Handler,
    *,
    options: Options | None = None,
    name: str | None = None,
    websocket_profile: WebsocketProfile | None = None,
) -> Endpoint:
    """Serve a SockJS endpoint at ``prefix`` in ``app`` and return it.

    ``handler(session)`` runs once per session. Works in sub-applications
    too; several endpoints per app are isolated from each other.
    ``websocket_profile`` (default: the handler's ``websocket_profile``
    attribute, if any) says which subprotocols and whether binary messages
    the handler speaks on the raw ``/websocket``.
    """
    if not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
        raise ValueError(f"prefix must start with '/' and not end with '/': {prefix!r}")
    if not callable(handler):
        raise TypeError("handler must be an async callable taking a Session")
    if app.frozen:
        raise RuntimeError("cannot add a SockJS endpoint to an application that is already running")
    if websocket_profile is None:
        declared = getattr(handler, "websocket_profile", None)
        if declared is not None and not isinstance(declared, WebsocketProfile):
            raise TypeError("handler.websocket_profile must be a WebsocketProfile")
        websocket_profile = declared
    endpoint = Endpoint(prefix.rstrip("/"), handler, options or Options(), name or prefix, websocket_profile)
    endpoints = app.get(ENDPOINTS)
    if endpoints is None:
        endpoints = []
        app[ENDPOINTS] = endpoints
    if any(e.prefix == endpoint.prefix for e in endpoints):
        raise ValueError(f"a SockJS endpoint is already mounted at {prefix!r}")
    endpoints.append(endpoint)
    register_routes(app, endpoint)
    websocket.quiet_hixie76_refusals()
    app.cleanup_ctx.append(endpoint.run)
    app.on_shutdown.append(endpoint.shutdown)
    return endpoint


def register_routes(app: web.Application, endpoint: Endpoint) -> None:
    """Register ``endpoint``'s URLs (one route per path, dispatching on the method)."""
    prefix = endpoint.prefix
    options = endpoint.options
    iframe_page = static.IframePage(options.sockjs_url)

    async def greeting(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        return await static.greeting(request, endpoint)

    async def info(request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return preflight_response(request, options, "OPTIONS, GET")
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("OPTIONS, GET")
        return await static.info(request, endpoint)

    async def iframe(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if options.allowed_origins is not None:
            response = iframe_page.response(request)
            # Only allowed origins may embed the page that relays for them.
            ancestors = " ".join(["'self'", *sorted(o for o in options.allowed_origins if o != "*")])
            if "*" not in options.allowed_origins:
                response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
            return response
        return iframe_page.response(request)

    async def raw_websocket(request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return method_not_allowed("GET")
        if not options.transport_enabled("websocket-raw"):
            raise web.HTTPNotFound()
        return await websocket.raw_websocket(request, endpoint)

    async def session_url(request: web.Request) -> web.StreamResponse:
        match = request.match_info
        segment = match["transport"]
        session_id = match["session"]
        method = request.method
        if method != "OPTIONS" and not origin_allowed(request, options):
            # Refuse, not just withhold CORS headers: a no-cors request would
            # still open a session and deliver messages with the user's cookies.
            return error_response(request, options, 403, "Origin not allowed.", cors=False)
        if segment == "websocket":
            if not options.transport_enabled("websocket"):
                raise web.HTTPNotFound()
            if method != "GET":
                return method_not_allowed("GET")
            return await websocket.websocket(request, endpoint, session_id)
        envelope = ENVELOPES.get(segment)
        if envelope is not None:
            if not options.transport_enabled(envelope.name):
                raise web.HTTPNotFound()
            allowed = "GET" if segment in ("jsonp", "eventsource", "htmlfile") else "POST"
            if method == "OPTIONS" and allowed == "POST":
                return preflight_response(request, options, "OPTIONS, POST")
            if method != allowed:
                return method_not_allowed(allowed)
            return await transports.receive(request, endpoint, session_id, envelope)
        users = _SEND_USERS.get(segment)
        if users is None or not any(options.transport_enabled(name) for name in users):
            raise web.HTTPNotFound()
        if method == "OPTIONS":
            return preflight_response(request, options, "OPTIONS, POST")
        if method != "POST":
            return method_not_allowed("OPTIONS, POST")
        return await transports.send(request, endpoint, session_id, form=segment == "jsonp_send")

    counters = endpoint.counters

    def add(method: str, path: str, route: Route) -> None:
        app.router.add_route(method, path, _counting_errors(route, counters))

    # The session URL first: aiohttp tries the resources under one prefix in
    # registration order, and session requests are the hot path.
    add("*", prefix + r"/{server:[^/.]+}/{session:[^/.]+}/{transport:[a-z_]+}", session_url)
    if prefix:
        add("*", prefix, greeting)
    add("*", prefix + "/", greeting)
    add("*", prefix + "/info", info)
    add("*", prefix + r"/{iframe:iframe[0-9A-Za-z._-]*\.html}", iframe)
    add("*", prefix + "/websocket", raw_websocket)


def _counting_errors(route: Route, counters: EndpointCounters) -> Route:
    """``route``, adding every error answer (status >= 400) to ``counters.request_errors``."""

    async def counted(request: web.Request) -> web.StreamResponse:
        try:
            response = await route(request)
        except web.HTTPException as error:
            if error.status >= 400:
                counters.request_error(error.status)
            raise
        if response.status >= 400:
            counters.request_error(response.status)
        return response

    return counted
