"""Plain counters for operations: what endpoints count as they run, and a registry where
parts with counters of their own (STOMP) say how to read and report them.

The hot path only adds to slotted ``int`` fields (or, for rare events such as
a session closing or an error answer, to a small dict keyed by a code it
already holds): no locks, no label objects, no metrics library. Gauges
(open sessions, queued bytes, subscriptions) are computed when someone asks,
from what the endpoint or server holds anyway. :mod:`sockjs_server.metrics`
turns all of it into ``stats()`` dicts and Prometheus text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

__all__ = ["EndpointCounters", "MAX_ERROR_MESSAGES", "HANDLER_FIGURES", "register_handler_figures"]

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


# --- figures of handlers that count for themselves (STOMP registers its own) ----------------

Figures = Mapping[str, Any]
#: ``read(handler)``: the handler's figures, or None when it is not of the kind.
ReadFigures = Callable[[object], Union[Figures, None]]
#: ``build(rows, gauge, counter)``: Prometheus metric families from ``rows``, one
#: (endpoint label values, figures) per endpoint; ``gauge(name, doc, labels)`` and
#: ``counter(...)`` make families labelled with ``endpoint`` first.
BuildFamilies = Callable[[list[tuple[list[str], Figures]], Callable[..., Any], Callable[..., Any]], list[Any]]

HANDLER_FIGURES: dict[str, tuple[ReadFigures, Union[BuildFamilies, None]]] = {}
"""Key in an endpoint's stats -> how to read it from a handler and turn it into metrics."""


def register_handler_figures(key: str, read: ReadFigures, families: BuildFamilies | None = None) -> None:
    """Called by a part of the package whose session handlers keep figures of their own (STOMP),
    so that :mod:`sockjs_server.metrics` reports them under ``key`` without knowing that part."""
    HANDLER_FIGURES[key] = (read, families)
