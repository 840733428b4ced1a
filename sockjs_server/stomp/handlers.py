"""Application destinations: Python handlers for SEND and SUBSCRIBE under ``/app``.

Like Spring's ``@MessageMapping`` / ``@SubscribeMapping``::

    handlers = AppHandlers()

    @handlers.message("/chat.{room}", send_to="/topic/chat.{room}")
    async def chat(msg: AppMessage) -> dict[str, str]:
        return {"from": msg.user or "anonymous", "text": msg.text}

    @handlers.subscribe("/rooms/{room}/history")
    async def history(msg: AppMessage) -> list[str]:
        return load_history(msg.params["room"])

Patterns are matched against the destination with the application prefix
removed; ``{name}`` captures one path segment (anything but ``/``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from .auth import ConnectionInfo, Principal

__all__ = ["AppHandlers", "AppMessage", "Reply", "Responder", "HandlerResult", "Handler", "encode_body"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer with explicit headers or destination.

    ``destination`` (message handlers only) overrides the decorator's target
    and is published through the broker as-is.
    """

    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    destination: str | None = None


#: What a handler may return: nothing, a body (str, bytes, or JSON-able
#: dict/list), or a Reply.
HandlerResult = Union[None, str, bytes, dict[str, Any], list[Any], Reply]


class Responder(Protocol):
    """What the server lends a handler to answer with."""

    async def reply(self, destination: str, body: Any, headers: Mapping[str, str] | None) -> None: ...

    async def publish(self, destination: str, body: Any, headers: Mapping[str, str] | None) -> None: ...


@dataclass(frozen=True, slots=True)
class AppMessage:
    """What a handler receives: the frame's content and who sent it."""

    #: Full destination, e.g. "/app/chat.room1".
    destination: str
    #: Destination without the application prefix, e.g. "/chat.room1".
    path: str
    #: Values captured by ``{name}`` placeholders.
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    connection: ConnectionInfo
    #: The subscription id for SUBSCRIBE handlers, None for SEND handlers.
    subscription: str | None = None
    #: How the handler answers beyond its return value (set by the server).
    responder: Responder | None = field(default=None, repr=False, compare=False)

    async def reply(self, destination: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send to the sender's session only: its ``<user_prefix><destination>``
        subscriptions (e.g. ``await msg.reply("/queue/errors", {"error": ...})``)."""
        if self.responder is None:
            raise RuntimeError("this message has no connection to reply to")
        await self.responder.reply(destination, body, headers)

    async def publish(self, destination: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Publish anywhere (like ``StompServer.publish``)."""
        if self.responder is None:
            raise RuntimeError("this message has no server to publish with")
        await self.responder.publish(destination, body, headers)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """Body parsed as JSON (raises ValueError on bad input)."""
        return json.loads(self.body)

    @property
    def principal(self) -> Principal | None:
        return self.connection.principal

    @property
    def user(self) -> str | None:
        """Name of the authenticated user, if any."""
        p = self.connection.principal
        return p.name if p is not None else None


Handler = Callable[[AppMessage], Union[HandlerResult, Awaitable[HandlerResult]]]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"handler patterns start with '/': {pattern!r}")
    parts: list[str] = []
    pos = 0
    names: set[str] = set()
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[pos : m.start()]))
        name = m.group(1)
        if name in names:
            raise ValueError(f"placeholder {{{name}}} repeated in {pattern!r}")
        names.add(name)
        parts.append(f"(?P<{name}>[^/]+)")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    send_to: str | None = None
    reply_to: str | None = None


class AppHandlers:
    """Registry of message and subscribe handlers, matched in registration order."""

    def __init__(self) -> None:
        self._messages: list[_Route] = []
        self._subscribes: list[_Route] = []

    def message(
        self, pattern: str, *, send_to: str | None = None, reply_to: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Handle SEND frames to ``<app_prefix><pattern>``.

        The handler's result (if not None) is published to ``send_to`` (which
        may use the pattern's ``{name}`` placeholders), or, with ``reply_to``
        (e.g. "/queue/replies"), sent to the sender's session only, to its
        subscriptions of ``<user_prefix><reply_to>``. With neither, it goes to
        ``/topic<path>`` as Spring does.
        """
        if send_to is not None and reply_to is not None:
            raise ValueError("give send_to or reply_to, not both")
        regex = _compile(pattern)

        def register(handler: Handler) -> Handler:
            self._messages.append(_Route(pattern, regex, handler, send_to, reply_to))
            return handler

        return register

    def subscribe(self, pattern: str) -> Callable[[Handler], Handler]:
        """Answer SUBSCRIBE to ``<app_prefix><pattern>`` once, straight to that subscription."""
        regex = _compile(pattern)

        def register(handler: Handler) -> Handler:
            self._subscribes.append(_Route(pattern, regex, handler))
            return handler

        return register

    @staticmethod
    def _match(routes: list[_Route], path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in routes:
            m = route.regex.fullmatch(path)
            if m is not None:
                return route, m.groupdict()
        return None

    def match_message(self, path: str) -> tuple[_Route, dict[str, str]] | None:
        return self._match(self._messages, path)

    def match_subscribe(self, path: str) -> tuple[_Route, dict[str, str]] | None:
        return self._match(self._subscribes, path)

    def __len__(self) -> int:
        return len(self._messages) + len(self._subscribes)


def encode_body(value: Any) -> tuple[bytes, str | None]:
    """Turn a handler or ``publish`` body into bytes and a default content-type."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), None
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain;charset=utf-8"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), "application/json"
