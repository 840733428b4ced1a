"""SockJS-compatible real-time server for aiohttp.

Mount an endpoint with :func:`add_endpoint`; your handler gets one
:class:`Session` per SockJS session, whatever transport the client uses.
"""

from __future__ import annotations

from .endpoint import ENDPOINTS, Endpoint
from .options import TRANSPORTS, Options, WebsocketProfile
from .routes import add_endpoint
from .session import Handler, Session, SessionClosed
from .state import CloseCode

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
