"""Who is connected: principals, what the hooks are given, and hook types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

from .frames import Command, Version

__all__ = ["Principal", "ConnectionInfo", "ConnectInfo", "Authenticator", "Authorizer"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user. ``name`` is what user destinations address."""

    name: str
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What handlers and hooks may know about a client connection."""

    #: The STOMP session id (the ``session`` header of CONNECTED).
    session_id: str
    #: "websocket", "xhr-streaming", ... for SockJS sessions; "tcp" for the TCP listener.
    transport: str
    remote: str | None = None
    #: HTTP headers of the request that opened the SockJS session (empty over TCP).
    http_headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cookies: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    principal: Principal | None = None
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """Input of the ``authenticate`` hook: the CONNECT frame and its transport."""

    login: str | None
    passcode: str | None
    host: str | None
    #: All CONNECT headers, first value of each.
    headers: Mapping[str, str]
    connection: ConnectionInfo


#: ``authenticate(info)`` returns a Principal, a user name, or None to refuse
#: (it may also raise AccessDenied with its own message). May be async.
Authenticator = Callable[[ConnectInfo], Union[Principal, str, None, Awaitable[Union[Principal, str, None]]]]

#: ``authorize(principal, command, destination)`` returns True to allow a SEND
#: or SUBSCRIBE. May be async.
Authorizer = Callable[[Union[Principal, None], Command, str], Union[bool, Awaitable[bool]]]
