"""What a STOMP server counts, and how its figures become Prometheus metrics.

Registered with :func:`sockjs_server.runtime.stats.register_handler_figures`
when the server module loads, so :mod:`sockjs_server.metrics` reports an
endpoint's STOMP figures under ``stomp`` without importing STOMP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sockjs_server.runtime.stats import MAX_ERROR_MESSAGES, Figures

__all__ = ["StompCounters", "stomp_families"]


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


def stomp_families(rows: list[tuple[list[str], Figures]], gauge: Callable[..., Any], counter: Callable[..., Any]) -> list[Any]:
    """The ``sockjs_stomp_*`` metric families of every endpoint's ``stomp`` figures."""
    s_conn = gauge("sockjs_stomp_connections", "Open STOMP connections by transport.", ["transport"])
    s_opened = counter("sockjs_stomp_connections_opened", "STOMP connections accepted.")
    s_subs = gauge("sockjs_stomp_subscriptions", "Live STOMP subscriptions.")
    s_frames = counter("sockjs_stomp_frames_in", "Client STOMP frames carried out, by command.", ["command"])
    s_msgs = counter("sockjs_stomp_messages_out", "MESSAGE frames queued for clients.")
    s_errors = counter("sockjs_stomp_errors", "ERROR frames sent, by message.", ["message"])
    s_slow = counter("sockjs_stomp_slow_consumer_closes", "STOMP clients closed as slow consumers.")
    depth = gauge("sockjs_stomp_broker_queue_depth", "Messages waiting in a broker queue.", ["queue"])
    state = gauge("sockjs_stomp_broker_state", "The broker relay's state (1 for the current one).", ["state"])
    reconnects = counter("sockjs_stomp_broker_reconnections", "Reconnections of the relay's shared connections.")
    broker_gauges: dict[str, Any] = {}
    for e, stomp in rows:
        for transport, n in sorted(stomp["connections"].items()):
            s_conn.add_metric([*e, transport], n)
        s_opened.add_metric(e, stomp["connections_opened"])
        s_subs.add_metric(e, stomp["subscriptions"])
        for command, n in sorted(stomp["frames_in"].items()):
            s_frames.add_metric([*e, command], n)
        s_msgs.add_metric(e, stomp["messages_out"])
        for message, n in sorted(stomp["errors"].items()):
            s_errors.add_metric([*e, message], n)
        s_slow.add_metric(e, stomp["slow_consumer_closes"])
        # The broker's own stats(): whatever it reports. Queue depths per queue, the
        # relay's state and reconnections by name, any other number as a gauge
        # (a relay that adds e.g. "unconfirmed_frames" shows up without a change here).
        for key, value in sorted(stomp["broker"].items()):
            if key == "queues" and isinstance(value, Mapping):
                for queue, n in sorted(value.items()):
                    depth.add_metric([*e, str(queue)], n)
            elif key == "state" and isinstance(value, str):
                for name in _relay_states(value):
                    state.add_metric([*e, name], 1 if name == value else 0)
            elif key == "reconnects" and isinstance(value, int):
                reconnects.add_metric(e, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                family = broker_gauges.get(key)
                if family is None:
                    family = broker_gauges[key] = gauge(
                        f"sockjs_stomp_broker_{_metric_word(key)}", f"The broker's {key.replace('_', ' ')}."
                    )
                family.add_metric(e, value)
    return [s_conn, s_opened, s_subs, s_frames, s_msgs, s_errors, s_slow, depth, state, reconnects, *broker_gauges.values()]


def _relay_states(current: str) -> list[str]:
    from .relay import RelayState

    names = [state.value for state in RelayState]
    return names if current in names else [*names, current]


def _metric_word(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in key.lower())
