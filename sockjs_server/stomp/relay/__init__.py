"""Relay to RabbitMQ's STOMP plugin: several server nodes serving one set of destinations.

::

    from sockjs_server.stomp import StompServer
    from sockjs_server.stomp.relay import RabbitRelay

    stomp = StompServer(broker=RabbitRelay("127.0.0.1", 61613, "guest", "guest", "/"))

:mod:`.protocol` is the sans-I/O client side of STOMP 1.2 (built on the
project's codec), :mod:`.upstream` one asyncio connection to the broker, and
:mod:`.rabbit` the :class:`~sockjs_server.stomp.broker.Broker` itself.
"""

from __future__ import annotations

from .rabbit import USER_ID_HEADER, RabbitRelay, RelayState, relay_from_url

__all__ = ["RabbitRelay", "RelayState", "relay_from_url", "USER_ID_HEADER"]
