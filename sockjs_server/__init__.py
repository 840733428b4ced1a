"""SockJS-compatible real-time server for aiohttp.

Mount an endpoint with :func:`add_endpoint`; your handler gets one
:class:`Session` per SockJS session, whatever transport the client uses.
"""

from __future__ import annotations

from .aiohttp.routes import ENDPOINTS, add_endpoint
from .core.options import TRANSPORTS, Options, WebsocketProfile
from .core.state import CloseCode
from .runtime.endpoint import Endpoint
from .runtime.session import Handler, Session, SessionClosed

__all__ = [
    "ENDPOINTS",
    "TRANSPORTS",
    "CloseCode",
    "Endpoint",
    "Handler",
    "Options",
    "Session",
    "SessionClosed",
    "WebsocketProfile",
    "add_endpoint",
]

__version__ = "0.1.0"
