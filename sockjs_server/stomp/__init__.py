"""STOMP 1.0/1.1/1.2 over SockJS sessions (and plain TCP), with an in-memory broker.

::

    from sockjs_server import add_endpoint
    from sockjs_server.stomp import MemoryBroker, StompServer

    stomp = StompServer(broker=MemoryBroker())
    add_endpoint(app, "/stomp", stomp)

The codec (:mod:`.codec`) and connection state (:mod:`.connection`) are
sans-I/O; :mod:`.server` is the asyncio layer; :mod:`.broker` is the interface
a broker implements and :mod:`.memory` the embedded one.
"""

from __future__ import annotations

from .auth import Authenticator, Authorizer, ConnectInfo, ConnectionInfo, Principal
from .broker import Broker, BrokerClient, Message
from .codec import FrameParser, serialize
from .connection import StompConnection, StompOptions
from .errors import AccessDenied, BrokerError, FrameTooLarge, ProtocolError, StompError
from .frames import AckMode, Command, Frame, Version
from .handlers import AppHandlers, AppMessage, Reply, Responder
from .memory import MemoryBroker
from .server import ConnectionHook, StompServer
from .tcp import start_tcp_server, tcp_listener

__all__ = [
    "AccessDenied",
    "AckMode",
    "AppHandlers",
    "AppMessage",
    "Authenticator",
    "Authorizer",
    "Broker",
    "BrokerClient",
    "BrokerError",
    "Command",
    "ConnectInfo",
    "ConnectionHook",
    "ConnectionInfo",
    "Frame",
    "FrameParser",
    "FrameTooLarge",
    "MemoryBroker",
    "Message",
    "Principal",
    "ProtocolError",
    "Reply",
    "Responder",
    "StompConnection",
    "StompError",
    "StompOptions",
    "StompServer",
    "Version",
    "serialize",
    "start_tcp_server",
    "tcp_listener",
]
