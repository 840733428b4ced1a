"""Mounting an endpoint in an aiohttp app: :func:`add_endpoint` and the URL layout.

Every path is registered once with a method dispatcher, so wrong methods get
the protocol's bare 405 (an ``Allow`` header, no body) instead of aiohttp's.
This module knows the :class:`~sockjs_server.runtime.endpoint.Endpoint` and the
transports; neither of them imports it back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..core import static
from ..core.dispatch import IFRAME_PATH, SESSION_PATH, Page, SendKind, fixed_page, raw_websocket_refusal, session_action
from ..core.envelopes import Envelope
from ..core.options import Options, WebsocketProfile
from ..runtime.endpoint import Endpoint, checked_handler
from ..runtime.session import Handler
from ..runtime.stats import EndpointCounters
from . import transports, websocket

__all__ = ["ENDPOINTS", "add_endpoint", "register_routes"]

ENDPOINTS: web.AppKey[list[Endpoint]] = web.AppKey("sockjs_server.endpoints", list)
"""Every endpoint mounted on an application, in mounting order."""

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]

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
    websocket_profile = checked_handler(handler, websocket_profile)
    if app.frozen:
        raise RuntimeError("cannot add a SockJS endpoint to an application that is already running")
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
    iframe_page = static.IframePage(options)

    def page(kind: Page) -> Route:
        async def serve_page(request: web.Request) -> web.StreamResponse:
            return transports.response(fixed_page(kind, request, options, iframe_page))

        return serve_page

    async def raw_websocket(request: web.Request) -> web.StreamResponse:
        refusal = raw_websocket_refusal(request, options)
        if refusal is not None:
            return transports.response(refusal)
        return await websocket.raw_websocket(request, endpoint)

    async def session_url(request: web.Request) -> web.StreamResponse:
        match = request.match_info
        action = session_action(request, options, match["transport"])
        if isinstance(action, Envelope):
            return await transports.receive(request, endpoint, match["session"], action)
        if action is SendKind.XHR_SEND or action is SendKind.JSONP_SEND:
            return await transports.send(request, endpoint, match["session"], form=action is SendKind.JSONP_SEND)
        if action is SendKind.WEBSOCKET:
            return await websocket.websocket(request, endpoint, match["session"])
        return transports.response(action)

    counters = endpoint.counters

    def add(method: str, path: str, route: Route) -> None:
        app.router.add_route(method, path, _counting_errors(route, counters))

    # The session URL first: aiohttp tries the resources under one prefix in
    # registration order, and session requests are the hot path.
    add("*", prefix + SESSION_PATH, session_url)
    if prefix:
        add("*", prefix, page(Page.GREETING))
    add("*", prefix + "/", page(Page.GREETING))
    add("*", prefix + "/info", page(Page.INFO))
    add("*", prefix + IFRAME_PATH, page(Page.IFRAME))
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
