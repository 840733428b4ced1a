"""A SockJS endpoint: its options, handler and sessions, whatever web layer serves it."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Collection, Iterator

from multidict import CIMultiDictProxy

from ..core.framing import encode_message
from ..core.options import Options, WebsocketProfile
from ..core.state import CLOSE_REASONS, CloseCode
from .session import FlushQueue, Handler, Session, push_to_all
from .stats import EndpointCounters

__all__ = ["Endpoint", "checked_handler", "session_log"]

logger = logging.getLogger(__name__)

session_log = logging.getLogger("sockjs_server.sessions")
"""One INFO line per session opened and closed; set its level to WARNING to switch them off."""

LIVENESS_INTERVAL = 1.0
"""How often attached HTTP receivers are checked for clients that went away silently."""


def checked_handler(handler: Handler, websocket_profile: WebsocketProfile | None) -> WebsocketProfile | None:
    """Check that ``handler`` is callable; the profile given, else the one it declares (if any)."""
    if not callable(handler):
        raise TypeError("handler must be an async callable taking a Session")
    if websocket_profile is None:
        declared = getattr(handler, "websocket_profile", None)
        if declared is not None and not isinstance(declared, WebsocketProfile):
            raise TypeError("handler.websocket_profile must be a WebsocketProfile")
        websocket_profile = declared
    return websocket_profile


class Endpoint:
    """The sessions and settings of one SockJS URL prefix.

    Created by :func:`~sockjs_server.aiohttp.routes.add_endpoint`; server code uses it
    to iterate sessions, broadcast and close everything. It is the
    :class:`~sockjs_server.runtime.session.SessionOwner` of its sessions.
    """

    def __init__(
        self, prefix: str, handler: Handler, options: Options, name: str, websocket_profile: WebsocketProfile | None = None
    ) -> None:
        self.prefix = prefix
        self.handler = handler
        self.options = options
        self.name = name
        #: What the handler speaks on the raw websocket (subprotocols, binary messages).
        self.websocket_profile = websocket_profile or WebsocketProfile()
        self._by_id: dict[str, Session] = {}
        self._live: dict[Session, None] = {}
        self._receivers: set[Session] = set()
        self._flush_queue: FlushQueue | None = None
        self._shutting_down = False
        self._checks: asyncio.Task[None] | None = None
        #: Totals since creation (see :meth:`stats` for these with the current gauges).
        self.counters = EndpointCounters()

    def __repr__(self) -> str:
        return f"<Endpoint {self.prefix!r} sessions={len(self._live)}>"

    # -- public ------------------------------------------------------------

    @property
    def sessions(self) -> Collection[Session]:
        """Open sessions (a snapshot-safe view: iterate freely while sessions come and go)."""
        return _SessionsView(self._live)

    async def broadcast(self, message: str, *, exclude: Collection[Session] = ()) -> None:
        """Send ``message`` to every open session; it is JSON-encoded once for all of them."""
        self.broadcast_nowait(message, exclude=exclude)

    def broadcast_nowait(self, message: str, *, exclude: Collection[Session] = ()) -> None:
        """Synchronous :meth:`broadcast`."""
        encoded = encode_message(message)
        sessions = list(self._live)
        if exclude:
            sessions = [session for session in sessions if session not in exclude]
        push_to_all(sessions, encoded, message, self.counters)

    def stats(self) -> dict[str, object]:
        """Counters and gauges of this endpoint, as plain data (see :mod:`sockjs_server.metrics`)."""
        open_by_transport: dict[str, int] = {}
        queued = 0
        for session in list(self._live):
            open_by_transport[session.transport] = open_by_transport.get(session.transport, 0) + 1
            queued += session.queued_bytes
        c = self.counters
        return {
            "prefix": self.prefix,
            "name": self.name,
            "sessions_open": open_by_transport,
            "sessions_opened": dict(c.sessions_opened),
            "sessions_closed": dict(c.sessions_closed),
            "messages_in": c.messages_in,
            "bytes_in": c.bytes_in,
            "messages_out": c.messages_out,
            "bytes_out": c.bytes_out,
            "queued_bytes": queued,
            "queued_bytes_high_water": c.queued_bytes_high_water,
            "slow_consumer_closes": c.slow_consumer_closes,
            "slow_consumer_closes_by_limit": {
                "max_queue": c.queue_overflow_closes,
                "send_timeout": c.send_timeout_closes,
            },
            "request_errors": dict(c.request_errors),
        }

    async def close_all(
        self, code: int = CloseCode.GO_AWAY, reason: str = CLOSE_REASONS[CloseCode.GO_AWAY]
    ) -> None:
        """Close every open session with ``c[code,"reason"]``."""
        for session in list(self._live):
            session.close_nowait(code, reason)

    # -- registry (used by transports) ----------------------------------------

    @property
    def flush_queue(self) -> FlushQueue:
        """Where this endpoint's websocket receivers wait to be written (made on first use)."""
        queue = self._flush_queue
        if queue is None:
            queue = self._flush_queue = FlushQueue()
        return queue

    def get_session(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def new_session(
        self,
        session_id: str,
        transport: str,
        *,
        remote: str | None,
        headers: CIMultiDictProxy[str],
        query_string: str,
        addressable: bool = True,
        raw: bool = False,
        subprotocol: str | None = None,
    ) -> Session:
        """Create and register a session opened by a request from ``remote`` with
        ``headers`` and (undecoded) ``query_string``.

        Websocket sessions are not addressable by id (sockjs-protocol: "it is
        correct to have two separate sessions sharing the same session_id").
        Raw websocket sessions carry bytes when the handler's profile says so;
        their URL names no session, so they get an id of their own (``raw-<hex>``),
        which their log lines show.
        """
        if not session_id:
            session_id = f"raw-{secrets.token_hex(6)}"
        session = Session(
            self,
            session_id,
            transport,
            remote=remote,
            headers=headers,
            query_string=query_string,
            raw=raw,
            binary=raw and self.websocket_profile.binary,
            subprotocol=subprotocol,
        )
        self._live[session] = None
        if addressable:
            self._by_id[session_id] = session
        self.counters.opened(transport)
        if session_log.isEnabledFor(logging.INFO):
            session_log.info("%s session %s opened (%s from %s)", self.prefix, session_id, transport, session.remote)
        return session

    # -- SessionOwner (called by sessions) -------------------------------------

    def watch_receiver(self, session: Session) -> None:
        self._receivers.add(session)

    def unwatch_receiver(self, session: Session) -> None:
        self._receivers.discard(session)

    def session_closing(self, session: Session) -> None:
        self._live.pop(session, None)
        # Once per session: its close code is known from here on.
        code = session.close_code or 0
        self.counters.closed(code)
        if session_log.isEnabledFor(logging.INFO):
            duration = asyncio.get_running_loop().time() - session.opened_at
            session_log.info(
                "%s session %s closed: %s %s (%s from %s, %.1f s)",
                self.prefix, session.id, code, session.close_reason or "", session.transport, session.remote, duration,
            )  # fmt: skip

    def session_ended(self, session: Session) -> None:
        self._live.pop(session, None)
        if self._by_id.get(session.id) is session:
            del self._by_id[session.id]

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    # -- lifecycle -----------------------------------------------------------

    async def _check_receivers(self) -> None:
        """Notice HTTP clients that went away while their receiving request was idle."""
        while True:
            await asyncio.sleep(LIVENESS_INTERVAL)
            for session in list(self._receivers):
                if not session.receiver_alive():
                    session.poke()

    async def run(self, app: object = None) -> AsyncIterator[None]:
        """Background checks for as long as the server runs (an aiohttp ``cleanup_ctx`` entry)."""
        self.start()
        try:
            yield
        finally:
            self.stop()

    def start(self) -> None:
        """Start the background checks (when the server starts)."""
        self._checks = asyncio.get_running_loop().create_task(self._check_receivers())

    def stop(self) -> None:
        """Stop the background checks and end every session (when the server has stopped)."""
        if self._checks is not None:
            self._checks.cancel()
            self._checks = None
        for session in list(self._live):
            session.transport_closed(CloseCode.GOING_AWAY)

    async def shutdown(self, app: object = None) -> None:
        """``on_shutdown``: every session gets a close frame and streaming responses end
        before the server cancels request handlers."""
        self._shutting_down = True
        await self.close_all(CloseCode.GOING_AWAY, CLOSE_REASONS[CloseCode.GOING_AWAY])
        # Let attached receivers write the close frame and finish their responses.
        for _ in range(10):
            if not any(s.receiver_attached for s in list(self._by_id.values())):
                break
            await asyncio.sleep(0.05)


class _SessionsView(Collection[Session]):
    __slots__ = ("_live",)

    def __init__(self, live: dict[Session, None]) -> None:
        self._live = live

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._live))

    def __contains__(self, item: object) -> bool:
        return item in self._live

