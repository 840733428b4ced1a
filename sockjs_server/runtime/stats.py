"""Plain counters for operations: what endpoints and STOMP servers count as they run.

The hot path only adds to slotted ``int`` fields (or, for rare events such as
a session closing or an error answer, to a small dict keyed by a code it
already holds): no locks, no label objects, no metrics library. Gauges
(open sessions, queued bytes, subscriptions) are computed when someone asks,
from what the endpoint or server holds anyway. :mod:`sockjs_server.metrics`
turns all of it into ``stats()`` dicts and Prometheus text.
"""

from __future__ import annotations

__all__ = ["EndpointCounters", "StompCounters", "MAX_ERROR_MESSAGES"]

MAX_ERROR_MESSAGES = 100
"""Distinct ERROR messages counted one by one; later new ones count as ``(other)``."""


class EndpointCounters:
    """Totals of one SockJS endpoint since it was created."""

    __slots__ = (
        "sessions_opened",
        "sessions_closed",
        "messages_in",
        "bytes_in",
        "messages_out",
        "bytes_out",
        "queued_bytes_high_water",
        "queue_overflow_closes",
        "send_timeout_closes",
        "request_errors",
    )

    def __init__(self) -> None:
        #: Sessions created, by transport name.
        self.sessions_opened: dict[str, int] = {}
        #: Sessions gone, by close code.
        self.sessions_closed: dict[int, int] = {}
        #: Client messages received, and their size as received (JSON text of the
        #: websocket message or ``xhr_send``/``jsonp_send`` body; bytes on binary ones).
        self.messages_in = 0
        self.bytes_in = 0
        #: Messages queued for clients (a broadcast counts once per session) and their
        #: encoded size (characters of the JSON-encoded text; bytes of binary messages).
        self.messages_out = 0
        self.bytes_out = 0
        #: The most bytes any one session has held queued for its client.
        self.queued_bytes_high_water = 0
        #: Sessions closed as slow consumers (code 3001), by the limit their client ran into:
        #: ``"Send queue overflow"`` (``max_queue_bytes``/``max_queue_messages``, reached through
        #: ``send_nowait`` and broadcasts) and ``"Slow consumer"`` (nothing taken for ``send_timeout``).
        self.queue_overflow_closes = 0
        self.send_timeout_closes = 0
        #: Error answers (HTTP status >= 400) by status.
        self.request_errors: dict[int, int] = {}

    @property
    def slow_consumer_closes(self) -> int:
        """Every 3001 close, both kinds: what an operator watches for clients that do not keep up."""
        return self.queue_overflow_closes + self.send_timeout_closes

    def opened(self, transport: str) -> None:
        opened = self.sessions_opened
        opened[transport] = opened.get(transport, 0) + 1

    def closed(self, code: int) -> None:
        closed = self.sessions_closed
        closed[code] = closed.get(code, 0) + 1

    def request_error(self, status: int) -> None:
        errors = self.request_errors
        errors[status] = errors.get(status, 0) + 1


class StompCounters:
    """Totals of one STOMP server since it was created."""

    __slots__ = ("connections_opened", "frames_in", "messages_out", "errors", "slow_consumer_closes")

    def __init__(self) -> None:
        #: Client connections accepted (every transport, TCP included).
        self.connections_opened = 0
        #: Client frames carried out, by command (CONNECT, SEND, SUBSCRIBE, ...).
        self.frames_in: dict[str, int] = {}
        #: MESSAGE frames queued for clients.
        self.messages_out = 0
        #: ERROR frames sent, by their ``message`` header.
        self.errors: dict[str, int] = {}
        #: Connections closed because the client fell more than ``max_pending_bytes`` behind.
        self.slow_consumer_closes = 0

    def frame(self, command: str) -> None:
        frames = self.frames_in
        frames[command] = frames.get(command, 0) + 1

    def error(self, message: str) -> None:
        errors = self.errors
        if message not in errors and len(errors) >= MAX_ERROR_MESSAGES:
            message = "(other)"  # handlers and brokers choose messages: keep the label set bounded
        errors[message] = errors.get(message, 0) + 1
