"""Endpoint options: every limit and timeout, with its documented default."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

__all__ = ["Options", "TRANSPORTS", "DEFAULT_SOCKJS_URL", "WebsocketProfile"]

TRANSPORTS: frozenset[str] = frozenset(
    {"websocket", "websocket-raw", "xhr-streaming", "xhr-polling", "eventsource", "htmlfile", "jsonp-polling"}
)
"""Transport names accepted by ``Options.disabled_transports``."""

DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Options:
    """Settings of one SockJS endpoint. Times are in seconds, sizes in bytes."""

    heartbeat_delay: float = 25.0
    """Send an ``h`` frame when nothing was sent to a receiving connection for this long."""
    disconnect_delay: float = 5.0
    """Close a session that has had no receiving connection for this long."""
    response_limit: int = 128 * KIB
    """End a streaming response after this many bytes; the client opens a new one."""
    cookie_needed: bool = False
    """Set ``JSESSIONID`` on session responses (for cookie-based sticky load balancers)."""
    websocket: bool = True
    """Offer the websocket transports (``/info`` reports it)."""
    sockjs_url: str = DEFAULT_SOCKJS_URL
    """Where the iframe page loads sockjs-client from; use a same-origin URL in production."""
    allowed_origins: Collection[str] | None = None
    """Origins (``scheme://host[:port]``) allowed for CORS and websocket handshakes; ``None`` allows any."""
    disabled_transports: Collection[str] = field(default_factory=frozenset)
    """Transport names to refuse with 404 (see :data:`TRANSPORTS`)."""
    max_message_size: int = 1 * MIB
    """Largest websocket message accepted from a client, in bytes; a message of exactly this
    size is accepted, a bigger one closes the websocket with 1009."""
    max_messages_per_frame: int = 100_000
    """Most messages one websocket message (a JSON array) may carry (more: close 1009)."""
    max_request_size: int = 1 * MIB
    """Largest ``xhr_send``/``jsonp_send`` body accepted (bigger: 413)."""
    max_messages_per_request: int = 10_000
    """Most messages one ``xhr_send``/``jsonp_send`` body may carry (more: 413)."""
    max_queue_bytes: int = 1 * MIB
    """Hard limit on the bytes of outgoing messages a session holds; over it (only reachable with
    ``send_nowait`` or broadcasts) the queue is dropped and the session closed with
    ``c[3001,"Send queue overflow"]``."""
    max_queue_messages: int = 10_000
    """Hard limit on the outgoing messages a session holds (same closing rule)."""
    send_high_water: int = 256 * KIB
    """``await session.send()`` waits while this many bytes are queued for the client, until it takes them."""
    send_high_water_messages: int = 1_000
    """``await session.send()`` also waits while this many messages are queued."""
    send_timeout: float = 10.0
    """A client that takes nothing for this long while frames wait for it is not reading: its session
    is closed with ``c[3001,"Slow consumer"]`` and its connection dropped."""
    max_receive_queue: int = 1_000
    """Client messages buffered for a handler that has not read them yet; over it the transport
    stops reading from the client (back-pressure) until the handler catches up."""
    close_timeout: float = 5.0
    """How long a handler may keep running after its session closed before it is cancelled."""

    def __post_init__(self) -> None:
        for name in ("heartbeat_delay", "disconnect_delay", "close_timeout", "send_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in (
            "response_limit",
            "max_message_size",
            "max_request_size",
            "max_messages_per_request",
            "max_messages_per_frame",
            "max_queue_bytes",
            "max_queue_messages",
            "send_high_water",
            "send_high_water_messages",
            "max_receive_queue",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        unknown = set(self.disabled_transports) - TRANSPORTS
        if unknown:
            raise ValueError(f"unknown transports in disabled_transports: {sorted(unknown)}")
        if isinstance(self.allowed_origins, str):
            raise TypeError("allowed_origins must be a collection of origins, not a string")

    def transport_enabled(self, name: str) -> bool:
        """Whether transport ``name`` is served."""
        if name.startswith("websocket") and not self.websocket:
            return False
        return name not in self.disabled_transports


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""RFC 7230 token: what RFC 6455 allows as a subprotocol name."""


@dataclass(frozen=True, slots=True)
class WebsocketProfile:
    """What a handler speaks on the raw ``/websocket`` (SockJS-framed transports are unaffected).

    A handler declares it as its ``websocket_profile`` attribute (a
    :class:`~sockjs_server.stomp.StompServer` declares the STOMP
    subprotocols and binary messages), or ``add_endpoint(..., websocket_profile=...)``
    sets it. Without one, the raw websocket selects no subprotocol and
    closes on binary messages with 1003, as before.
    """

    subprotocols: tuple[str, ...] = ()
    """``Sec-WebSocket-Protocol`` names the handler speaks, most preferred first. The server
    selects the first of these the client offers (RFC 6455 leaves the choice to the server);
    none offered or none in common: the handshake succeeds without a subprotocol."""
    binary: bool = False
    """Binary websocket messages reach the handler as ``bytes`` (:meth:`Session.receive_data`)
    and :meth:`Session.send_bytes` may send binary messages."""

    def __post_init__(self) -> None:
        if isinstance(self.subprotocols, str):
            raise TypeError("subprotocols must be a sequence of names, not a string")
        object.__setattr__(self, "subprotocols", tuple(self.subprotocols))
        for name in self.subprotocols:
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ValueError(f"not a valid websocket subprotocol name: {name!r}")

    def select(self, offered: Iterable[str]) -> str | None:
        """The subprotocol to answer a client offering ``offered`` with, or ``None``."""
        offered_set = {name.strip() for name in offered}
        for name in self.subprotocols:
            if name in offered_set:
                return name
        return None
