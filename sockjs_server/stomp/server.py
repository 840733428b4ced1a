"""StompServer: the asyncio layer between client connections and the broker.

One :class:`StompServer` serves SockJS sessions (it is an ordinary session
handler: ``add_endpoint(app, "/stomp", stomp)``) and TCP streams
(:meth:`StompServer.handle_stream`, see :mod:`.tcp`), all sharing one broker,
one set of /app handlers and one registry of users.

Per connection, frames are processed one at a time, in order: each request
from the sans-I/O :class:`~.connection.StompConnection` is awaited (broker
operations may wait for an upstream broker) before its RECEIPT is sent and
the next frame is read. Deliveries from the broker are rendered (by the
codec: :func:`~.codec.message_head` and the message's shared tail) and
queued synchronously; a SockJS session takes each frame at once and writes
what a loop turn queued as one SockJS frame, a TCP stream gets one write per
event-loop turn. A publisher's burst is
paced by its SockJS subscribers: once a delivery leaves one above its
high-water mark, the publisher's next frame waits until that subscriber's
client took its queue, so a subscriber that reads is never dropped for a
burst; one that takes nothing is closed by its session after the SockJS
``send_timeout``. TCP subscribers pace publishers the same way; one that
takes nothing for ``slow_consumer_timeout`` gets ERROR and is closed. A
client whose unsent bytes still exceed the hard limit (``max_pending_bytes``)
gets ERROR and is closed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union

from sockjs_server.core.options import WebsocketProfile
from sockjs_server.core.state import CLOSE_REASONS, CloseCode
from sockjs_server.runtime.session import SessionClosed
from sockjs_server.runtime.stats import register_handler_figures

from .auth import Authenticator, Authorizer, ConnectInfo, ConnectionInfo, Principal
from .broker import Broker, BrokerClient, Message
from .codec import message_head, subscription_line
from .connection import (
    SERVER_SET_HEADERS,
    AbortRequest,
    AckRequest,
    BeginRequest,
    CommitRequest,
    ConnectRequest,
    DisconnectRequest,
    Event,
    SendRequest,
    State,
    StompConnection,
    StompOptions,
    SubscribeRequest,
    Subscription,
    UnsubscribeRequest,
)
from .destinations import check_destination
from .errors import AccessDenied, ProtocolError, StompError, frame_error
from .frames import AckMode, Command, Version
from .handlers import AppHandlers, AppMessage, Handler, Reply, encode_body
from .memory import MemoryBroker
from .stats import StompCounters, stomp_families
from .presence import Presence, PresenceHook
from .registry import PresenceEvent

if TYPE_CHECKING:
    from sockjs_server.runtime.session import Session

__all__ = ["StompServer", "ConnectionHook"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``on_connect`` / ``on_disconnect`` hooks; may be async.
ConnectionHook = Callable[[ConnectionInfo], Union[None, Awaitable[None]]]

#: Prefix of ack ids of messages answered by @subscribe handlers (nothing to acknowledge).
_APP_ACK_PREFIX = "app@@"
#: Seconds a closing TCP connection may take to flush before it is aborted.
_CLOSE_GRACE = 5.0
#: Unsent bytes of a TCP client above which a publisher waits for it (or max_pending_bytes / 4).
_TCP_HIGH_WATER = 256 * 1024
#: Seconds between two looks at whether a TCP client a publisher waits for took bytes.
_PROGRESS_STEP = 0.05


def _unknown_app_destination(what: str, destination: str) -> StompError:
    """A SEND or SUBSCRIBE no handler takes: a mistake in that frame only, so the
    connection stays open, as for any other unknown destination."""
    return frame_error("Unknown destination", f"{what} {destination[:200]}")


def _carried(principal: Principal) -> dict[str, str]:
    """The principal's string attributes, which the registry carries to the other nodes."""
    return {k: v for k, v in principal.attributes.items() if isinstance(v, str)}


async def _maybe_await(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


class _Log(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['session']}] {msg}", kwargs  # type: ignore[index]


class _Link(Protocol):
    """The transport under one STOMP connection."""

    name: str
    #: Whether only valid UTF-8 text can be carried (SockJS).
    text: bool
    #: Pending bytes the transport itself tolerates, if it has a limit of its own.
    capacity: int | None
    #: Pending bytes above which a publisher waits for this client (:meth:`drain`); None: never.
    high_water: int | None
    #: Whether the transport gathers what one loop turn writes into one write of its own (a
    #: SockJS session: its flush writes every message queued meanwhile as one frame). Frames go
    #: to such a link as they are made; to any other the peer writes once per loop turn.
    batches: bool

    def write(self, data: bytes) -> None: ...

    def pending(self) -> int:
        """Bytes written but not yet sent to the client."""
        ...

    def close(self) -> None: ...

    async def drain(self) -> bool:
        """Wait while more than ``high_water`` bytes are pending and the client is taking them;
        ``False``: it took nothing for too long (a slow consumer, to be closed by the caller)."""
        ...


class _SessionLink:
    """A SockJS session: each write (the frames a peer made since its last one) is one
    SockJS message; the session writes what a loop turn queued as one SockJS frame.

    On the raw websocket (a binary session) a write that is valid UTF-8 goes
    out as a text message, anything else (a binary body) as a binary message:
    text clients see what RabbitMQ Web-STOMP sends by default, and binary
    bodies arrive intact as with its ``ws_frame = binary``.
    """

    batches = True

    def __init__(self, session: Session) -> None:
        self.session = session
        self.name = session.transport
        self.binary = session.binary
        self.text = not self.binary
        # Fail with a STOMP ERROR well before the SockJS queue limit closes the
        # session with a bare close frame (JSON escaping can inflate the bytes).
        options = session.endpoint.options
        self.capacity: int | None = options.max_queue_bytes // 2
        self.high_water: int | None = min(options.send_high_water, options.max_queue_bytes // 4)

    def write(self, data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if not self.binary:
                raise
            self.session.send_bytes_nowait(data)
            return
        self.session.send_nowait(text)

    def pending(self) -> int:
        return self.session.queued_bytes

    def close(self) -> None:
        if self.session.transport == "websocket-raw":
            # A plain websocket whose STOMP connection ended closes normally, as Web-STOMP's do.
            self.session.close_nowait(CloseCode.NORMAL, CLOSE_REASONS[CloseCode.NORMAL])
        else:
            self.session.close_nowait()

    async def drain(self) -> bool:
        # A session that takes nothing closes itself after the SockJS send_timeout.
        if self.high_water is not None:
            await self.session.drain(self.high_water)
        return True


class _StreamLink:
    """A TCP stream. A publisher waits while this client's unsent bytes are above
    ``high_water`` and it keeps taking them; ``stuck_after`` seconds without a byte
    taken make it a slow consumer."""

    name = "tcp"
    text = False
    capacity: int | None = None
    batches = False  # each write is a send() on the socket

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, options: StompOptions) -> None:
        self.reader = reader
        self.writer = writer
        self.high_water: int | None = min(_TCP_HIGH_WATER, options.max_pending_bytes // 4)
        self.stuck_after = options.slow_consumer_timeout

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def pending(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def drain(self) -> bool:
        high_water = self.high_water
        assert high_water is not None
        transport = self.writer.transport
        loop = asyncio.get_running_loop()
        last = transport.get_write_buffer_size()
        deadline = loop.time() + self.stuck_after
        while last > high_water and not transport.is_closing():
            # Progress is looked at in short steps: any byte taken restarts the clock.
            await asyncio.sleep(min(_PROGRESS_STEP, max(deadline - loop.time(), 0.0)))
            now = transport.get_write_buffer_size()
            if now < last:
                last, deadline = now, loop.time() + self.stuck_after
            elif loop.time() >= deadline:
                return False
        return True

    def close(self) -> None:
        if self.writer.is_closing():
            return
        # The transport closes once what was written is flushed; the read
        # loop ends now (whatever the client still sends is ignored).
        self.writer.close()
        self.reader.feed_eof()
        # A client that does not read would keep the socket open forever.
        asyncio.get_running_loop().call_later(_CLOSE_GRACE, self.writer.transport.abort)


_COMMANDS: dict[type, str] = {
    ConnectRequest: "CONNECT",
    SendRequest: "SEND",
    SubscribeRequest: "SUBSCRIBE",
    UnsubscribeRequest: "UNSUBSCRIBE",
    AckRequest: "ACK",  # or NACK
    BeginRequest: "BEGIN",
    CommitRequest: "COMMIT",
    AbortRequest: "ABORT",
    DisconnectRequest: "DISCONNECT",
}
"""Client frames carried out, for :attr:`StompCounters.frames_in` (SEND/ACK/NACK of a
transaction count when it commits)."""


class _Peer:
    """One client connection: implements BrokerClient for the broker."""

    def __init__(self, server: StompServer, link: _Link, info: ConnectionInfo) -> None:
        self.server = server
        self.link = link
        self.session_id = info.session_id
        self.info = info
        self.loop = asyncio.get_running_loop()
        self.conn = StompConnection(server.options, now=self.loop.time())
        self.principal: Principal | None = None
        self.log = _Log(logger, {"session": info.session_id})
        self.counters = server.counters
        self.registered = False  # known to the broker
        self.hooked = False  # on_connect ran, so on_disconnect is due
        #: Subscription key -> destination shown in MESSAGE frames, for user destinations.
        self.display: dict[str, str] = {}
        #: Subscription key -> user destination suffix ("/queue/x") it listens to.
        self.user_subs: dict[str, str] = {}
        self.app_subs: set[str] = set()
        #: Presence subscriptions: key -> the destination watched ("" for every user).
        self.presence_subs: dict[str, str] = {}
        #: Subscriptions whose SUBSCRIBE is being carried out -> deliveries held until its RECEIPT.
        self._held: dict[str, list[bytes]] = {}
        self._app_ids = 0
        self._unflushed = 0
        self._dirty = False  # queued in the server's flush batch
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.close_reason = "transport closed"

    # --- BrokerClient --------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self.session_id

    def deliver(self, subscription: str, message: Message, message_id: str, redelivered: bool = False) -> None:
        conn = self.conn
        if conn.state is not State.CONNECTED:
            return
        sub = conn.subscriptions.get(subscription)
        if sub is None:
            if not subscription.startswith("/temp-queue/"):
                return  # unsubscribed meanwhile
            # A reply to this client's reply-to:/temp-queue/x: RabbitMQ delivers it
            # under subscription "/temp-queue/x" without any SUBSCRIBE.
            sub = Subscription(subscription, subscription, subscription, AckMode.AUTO, subscription_line(subscription, conn.version))
        version = conn.version
        # "If the message is received from a subscription that requires explicit
        # acknowledgment ... the MESSAGE frame MUST also contain an ack header" (1.2).
        ack = sub.ack is not AckMode.AUTO and version is Version.V1_2
        frame = message_head(sub.header_line, message_id, version, ack=ack, redelivered=redelivered) + message.tail(
            version, text=self.link.text, destination=self.display.get(subscription)
        )
        self.counters.messages_out += 1
        held = self._held.get(subscription) if self._held else None
        if held is not None:
            held.append(frame)
            return
        self._queue(frame)

    def broker_lost(self, error: StompError) -> None:
        self.fail(error)

    # --- output ------------------------------------------------------------

    def _queue(self, data: bytes) -> None:
        size = len(data)
        limit = self.server.options.max_pending_bytes
        capacity = self.link.capacity
        if capacity is not None and capacity < limit:
            limit = capacity
        if self._unflushed + size + self.link.pending() > limit:
            self.slow(f"the client fell more than {limit} bytes behind")
            return
        self._unflushed += size
        self.conn.send_data(data, self.loop.time())
        self._flush_soon()
        high_water = self.link.high_water
        if high_water is not None and self._unflushed + self.link.pending() >= high_water:
            self.server._congested[self] = None

    def slow(self, detail: str) -> None:
        """Close as a slow consumer (``detail``: how it fell behind)."""
        if self.conn.state is State.CLOSED:
            return
        self.log.warning("slow consumer: %s, disconnecting", detail)
        self.counters.slow_consumer_closes += 1
        self.fail(ProtocolError("Slow consumer", detail))

    def _flush_soon(self) -> None:
        """Hand what is queued to the link: at once to a link that batches a loop turn's writes
        itself (one batcher between STOMP and a SockJS session), else with every other
        peer's output once per loop turn (one callback for a whole fan-out)."""
        if self.link.batches:
            self.flush()
        elif not self._dirty:
            self._dirty = True
            self.server._flush_later(self)

    def flush(self) -> None:
        self._dirty = False
        data = self.conn.data_to_send()
        self._unflushed = 0
        if data:
            self.link.write(data)
        if self.conn.closing:
            self.link.close()
        else:
            self._arm_timer()

    def fail(self, error: StompError) -> None:
        """Send ERROR, and close if the error is fatal (at most once)."""
        if self.conn.state is State.CLOSED:
            return
        self.counters.error(error.message)
        self.conn.fail(error, self.loop.time())
        if self.conn.closing:
            self.close_reason = f"ERROR {error.message}"
        self.flush()

    # --- timers ------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.conn.next_deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # Lazily re-armed: a later deadline is picked up when the timer fires.
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        conn = self.conn
        conn.on_timer(self.loop.time())
        if conn.closing:
            self.close_reason = f"ERROR {conn.error.message if conn.error else 'timeout'}"
        self.flush()

    # --- input -------------------------------------------------------------

    async def serve(self, chunks: AsyncIterator[bytes]) -> None:
        """Run the connection until it ends, whichever side ends it."""
        self.log.info("STOMP connection opened (transport %s, remote %s)", self.link.name, self.info.remote)
        self.server._peers[self] = None
        self.counters.connections_opened += 1
        self._arm_timer()
        try:
            async for data in chunks:
                self.conn.receive_data(data, self.loop.time())
                await self._process()
                if self.conn.state is State.CLOSED or self.conn.state is State.DISCONNECTING:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self._finish()

    async def _process(self) -> None:
        conn = self.conn
        while conn.state is State.AWAITING_CONNECT or conn.state is State.CONNECTED:
            receipt: str | None = None
            try:
                event = conn.next_event()
                if event is None:
                    break
                receipt = getattr(event, "receipt", None)
                command = _COMMANDS.get(type(event))
                if command is not None:
                    self.counters.frame("NACK" if command == "ACK" and event.nack else command)  # type: ignore[union-attr]
                await self._execute(event)
                if self.server._congested:
                    # This frame's deliveries left subscribers behind: wait for them.
                    await self.server._relieve()
            except StompError as exc:
                if exc.error_after_receipt:
                    self.conn.receipt(receipt, self.loop.time())
                elif exc.receipt_id is None:
                    exc.receipt_id = receipt
                self.log.debug("ERROR %s: %s", exc.message, exc.detail)
                self.fail(exc)
                if conn.closing:
                    return
            except Exception:
                self.log.exception("failed to process a frame")
                self.fail(StompError("Internal error", "the server failed to process the frame", receipt_id=receipt))
                return
        self._flush_soon()

    async def _execute(self, event: Event) -> None:
        now = self.loop.time
        if isinstance(event, ConnectRequest):
            await self._connect(event)
            return
        if isinstance(event, SendRequest):
            await self._send(event)
        elif isinstance(event, SubscribeRequest):
            key = event.subscription.key
            # Deliveries for the new subscription wait for its RECEIPT: a client
            # must learn that it is subscribed before it gets the first MESSAGE.
            self._held[key] = []
            try:
                await self._subscribe(event.subscription, event.headers)
            except BaseException:
                # Not subscribed after all: the id is free again.
                del self._held[key]
                self.conn.subscriptions.pop(key, None)
                self.display.pop(key, None)
                self.user_subs.pop(key, None)
                self.app_subs.discard(key)
                self.server._unwatch(self, key)
                raise
            self.conn.receipt(event.receipt, now())
            for data in self._held.pop(key, ()):
                self._queue(data)
            if self.principal is not None and key not in self.presence_subs:
                self.server.presence.subscribed(self.session_id, event.subscription.destination)
            return
        elif isinstance(event, AckRequest):
            await self._ack(event)
        elif isinstance(event, UnsubscribeRequest):
            await self._unsubscribe(event.subscription, event.headers)
        elif isinstance(event, CommitRequest):
            # As RabbitMQ: the COMMIT's RECEIPT first, then the transaction's
            # frames carried out in order, each SEND confirmed as it is done.
            self.conn.receipt(event.receipt, now())
            for op in event.operations:
                self.counters.frame("SEND" if isinstance(op, SendRequest) else "NACK" if op.nack else "ACK")
                if isinstance(op, SendRequest):
                    await self._send(op)
                else:
                    await self._ack(op)
                if op.receipt is not None:
                    await self.server.broker.confirmed(self)
                self.conn.receipt(op.receipt, now())
            return
        elif isinstance(event, DisconnectRequest):
            self.close_reason = "DISCONNECT"
            if event.receipt is not None:
                await self.server.broker.confirmed(self)
            self.conn.receipt(event.receipt, now())
            self.flush()
            return
        # BEGIN, ABORT and frames buffered in a transaction need only their receipt.
        if event.receipt is not None:
            # A broker may still be confirming earlier SENDs (the relay pipelines them).
            await self.server.broker.confirmed(self)
        self.conn.receipt(event.receipt, now())

    async def _connect(self, event: ConnectRequest) -> None:
        server = self.server
        info = self.info
        principal: Principal | None = None
        if server.authenticate is not None:
            request = ConnectInfo(event.login, event.passcode, event.host, MappingProxyType(dict(event.frame.header_map)), info)
            result = await _maybe_await(server.authenticate(request))
            if result is None:
                raise AccessDenied("Bad CONNECT", "Access refused")
            principal = Principal(result) if isinstance(result, str) else result
        self.principal = principal
        self.info = info = ConnectionInfo(
            info.session_id, info.transport, info.remote, info.http_headers, info.cookies, principal, event.version
        )
        await server.broker.connect(self, principal)
        self.registered = True
        if principal is not None:
            server._users.setdefault(principal.name, {})[self] = None
            server.presence.connected(self.session_id, principal.name, time.time(), _carried(principal))
        if server.on_connect is not None:
            await _maybe_await(server.on_connect(self.info))
        self.hooked = True
        self.conn.accept(self.session_id, self.loop.time())
        self.log.debug(
            "CONNECTED version %s, user %s", event.version.value, principal.name if principal else "(anonymous)"
        )

    async def _authorize(self, command: Command, destination: str) -> None:
        authorize = self.server.authorize
        if authorize is not None and not await _maybe_await(authorize(self.principal, command, destination)):
            raise AccessDenied("Access refused", f"not allowed to {command.value} {destination[:200]}")

    def _check_destination(self, command: Command, destination: str) -> None:
        """RabbitMQ's destination rules; a user destination's own part follows them too
        (``/queue/x`` of ``/user/queue/x``), application destinations are the handlers' to judge."""
        server = self.server
        if server._app_path(destination) is not None:
            return
        if server._presence_path(destination) is not None:
            if command is Command.SEND:
                raise frame_error("Unknown destination", f"presence destinations are read-only: {destination[:200]}")
            return
        prefix = server.user_prefix
        if destination.startswith(prefix + "/"):
            if command is Command.SEND:
                target = server._user_target(destination)  # raises when malformed
                suffix = target[1] if target is not None else destination
            else:
                found = server._user_subscription(destination)
                if found is None:
                    raise frame_error("Unknown destination", f"user subscriptions look like {prefix}/queue/<name>")
                suffix = found
            check_destination(suffix)
            return
        check_destination(destination)

    async def _send(self, req: SendRequest) -> None:
        server = self.server
        destination = req.destination
        self._check_destination(Command.SEND, destination)
        await self._authorize(Command.SEND, destination)
        path = server._app_path(destination)
        if path is not None:
            await self._app_message(req, path)
            return
        headers = req.headers
        if self.principal is not None:
            # A client cannot forge user-id: it was removed and is set here,
            # for every destination a client can reach.
            headers = (*headers, ("user-id", self.principal.name))
        user_target = server._user_target(destination)
        if user_target is not None:
            user, suffix = user_target
            await server._send_to_user(user, suffix, req.body, headers)
            return
        await server.broker.publish(destination, req.body, headers, sender=self)

    async def _subscribe(self, sub: Subscription, headers: Mapping[str, str]) -> None:
        server = self.server
        version = self.conn.version
        destination = sub.destination
        self._check_destination(Command.SUBSCRIBE, destination)
        await self._authorize(Command.SUBSCRIBE, destination)
        if sub.client_id is not None:
            sub.header_line = subscription_line(sub.client_id, version)
        path = server._app_path(destination)
        if path is not None:
            self.app_subs.add(sub.key)
            await self._app_subscribe(sub, path)
            return
        watched = server._presence_path(destination)
        if watched is not None:
            await server._watch(self, sub, watched)
            return
        suffix = server._user_subscription(destination)
        if suffix is not None:
            # Each session of a user gets its own broker destination, as
            # Spring does: /user/queue/x -> /queue/x-user<session>.
            broker_destination = f"{suffix}-user{self.session_id}"
            self.user_subs[sub.key] = suffix
            self.display[sub.key] = destination
            extra = dict(headers)
            extra["auto-delete"] = "true"
            await server.broker.subscribe(self, sub.key, broker_destination, sub.ack, extra)
            return
        await server.broker.subscribe(self, sub.key, destination, sub.ack, headers)

    async def _unsubscribe(self, sub: Subscription, headers: Mapping[str, str]) -> None:
        server = self.server
        if sub.key in self.presence_subs:
            server._unwatch(self, sub.key)
            return
        if sub.key in self.app_subs:
            self.app_subs.discard(sub.key)
        else:
            self.user_subs.pop(sub.key, None)
            self.display.pop(sub.key, None)
            await server.broker.unsubscribe(self, sub.key, headers)
        if self.principal is not None:
            server.presence.unsubscribed(self.session_id, sub.destination)

    async def _ack(self, req: AckRequest) -> None:
        if req.ack_id.startswith(_APP_ACK_PREFIX):
            return
        broker = self.server.broker
        try:
            if req.nack:
                await broker.nack(self, req.ack_id, subscription=req.subscription, requeue=req.requeue)
            else:
                await broker.ack(self, req.ack_id, subscription=req.subscription)
        except ProtocolError as exc:
            if exc.message == "Invalid header" and self.conn.version is not Version.V1_2:
                # STOMP 1.0 and 1.1 name the message by its message-id (RabbitMQ's words).
                exc.detail = exc.detail.replace('"id" header', '"message-id" header')
            raise

    # --- /app handlers -----------------------------------------------------

    async def _call_handler(self, handler: Handler, message: AppMessage) -> Any:
        try:
            return await _maybe_await(handler(message))
        except StompError:
            raise
        except Exception:
            self.log.exception("application handler for %s failed", message.destination)
            raise StompError("Handler error", f"the application failed to process {message.destination[:200]}") from None

    async def _app_message(self, req: SendRequest, path: str) -> None:
        server = self.server
        found = server.handlers.match_message(path)
        if found is None:
            raise _unknown_app_destination("no handler for", req.destination)
        route, params = found
        message = AppMessage(
            req.destination,
            path,
            MappingProxyType(params),
            MappingProxyType(dict(req.headers)),
            req.body,
            self.info,
            responder=_PeerResponder(self),
        )
        result = await self._call_handler(route.handler, message)
        if result is None:
            return
        body, headers, target = server._reply(result)
        if target is None:
            if route.send_to is not None:
                target = route.send_to.format_map(params)
            elif route.reply_to is not None:
                # Only this session: its subscriptions of <user_prefix><reply_to>.
                await self.send_user_message(route.reply_to, body, headers)
                return
            else:
                target = f"/topic{path}"
        await server._publish(target, body, headers)

    async def _app_subscribe(self, sub: Subscription, path: str) -> None:
        found = self.server.handlers.match_subscribe(path)
        if found is None:
            raise _unknown_app_destination("no subscribe handler for", sub.destination)
        route, params = found
        message = AppMessage(
            sub.destination,
            path,
            MappingProxyType(params),
            MappingProxyType({}),
            b"",
            self.info,
            subscription=sub.client_id,
            responder=_PeerResponder(self),
        )
        result = await self._call_handler(route.handler, message)
        if result is None:
            return
        body, headers, _target = self.server._reply(result)
        self._app_ids += 1
        # Straight to this subscription, not through the broker (like @SubscribeMapping).
        self.deliver(sub.key, Message(sub.destination, body, headers), f"{_APP_ACK_PREFIX}{self._app_ids}")

    async def send_user_message(self, suffix: str, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        """Publish to this session's subscriptions of ``<user_prefix><suffix>``, if any."""
        if suffix in self.user_subs.values():
            await self.server.broker.publish(f"{suffix}-user{self.session_id}", body, headers)

    # --- end ---------------------------------------------------------------

    async def _finish(self) -> None:
        server = self.server
        self.flush()
        if self.conn.state is not State.CLOSED:
            self.conn.connection_lost()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.link.close()
        server._peers.pop(self, None)
        server._congested.pop(self, None)
        for key in list(self.presence_subs):
            server._unwatch(self, key)
        if self.principal is not None:
            peers = server._users.get(self.principal.name)
            if peers is not None:
                peers.pop(self, None)
                if not peers:
                    del server._users[self.principal.name]
            server.presence.disconnected(self.session_id)
        if self.registered:
            self.registered = False
            try:
                await server.broker.connection_lost(self)
            except Exception:
                self.log.exception("broker failed to release the connection")
            if self.hooked and server.on_disconnect is not None:
                try:
                    await _maybe_await(server.on_disconnect(self.info))
                except Exception:
                    self.log.exception("on_disconnect hook failed")
        self.log.info("STOMP connection closed (transport %s, %s)", self.link.name, self.close_reason)


class _PeerResponder:
    """Lets a handler answer its sender or publish (AppMessage.reply / .publish)."""

    __slots__ = ("peer",)

    def __init__(self, peer: _Peer) -> None:
        self.peer = peer

    async def reply(self, destination: str, body: Any, headers: Mapping[str, str] | None) -> None:
        data, pairs = self.peer.server._encode(body, headers, None)
        await self.peer.send_user_message(destination, data, pairs)

    async def publish(self, destination: str, body: Any, headers: Mapping[str, str] | None) -> None:
        await self.peer.server.publish(destination, body, headers)


class StompServer:
    """STOMP 1.0/1.1/1.2 over SockJS sessions, the raw websocket and TCP streams.

    On the endpoint's raw ``/websocket`` it selects the subprotocols
    ``v12.stomp``, ``v11.stomp``, ``v10.stomp`` (highest offered first, as
    RabbitMQ Web-STOMP does) and takes binary websocket messages as STOMP bytes.

    ::

        stomp = StompServer(broker=MemoryBroker(), app_prefix="/app", user_prefix="/user")
        add_endpoint(app, "/stomp", stomp)

    :param broker: where messages are routed; a :class:`MemoryBroker` by default.
    :param options: per-connection limits and timers (:class:`StompOptions`).
    :param app_prefix: SEND/SUBSCRIBE under this prefix go to :attr:`handlers`.
    :param user_prefix: ``<user_prefix>/queue/x`` subscriptions receive what
        :meth:`send_to_user` sends to ``/queue/x`` for their user.
    :param authenticate: ``authenticate(ConnectInfo)`` -> Principal | user name
        | None (refuse); may be async. Without it every client is anonymous.
    :param authorize: ``authorize(principal, command, destination)`` -> bool for
        SEND and SUBSCRIBE; may be async. Without it everything is allowed.
    :param handlers: an :class:`AppHandlers` registry (a new one by default;
        decorate with :meth:`message` and :meth:`subscribe`).
    :param on_connect: called with the :class:`ConnectionInfo` once a client is
        CONNECTED (an exception refuses the client with ERROR); may be async.
    :param on_disconnect: called with the :class:`ConnectionInfo` when a
        connected client is gone, whatever the reason (exceptions are logged);
        may be async. Use it to clean up presence and the like.
    """

    #: Read by ``add_endpoint``: the STOMP websocket subprotocols, and binary messages.
    websocket_profile = WebsocketProfile(("v12.stomp", "v11.stomp", "v10.stomp"), binary=True)

    def __init__(
        self,
        broker: Broker | None = None,
        *,
        options: StompOptions | None = None,
        app_prefix: str = "/app",
        user_prefix: str = "/user",
        authenticate: Authenticator | None = None,
        authorize: Authorizer | None = None,
        handlers: AppHandlers | None = None,
        on_connect: ConnectionHook | None = None,
        on_disconnect: ConnectionHook | None = None,
        presence_prefix: str | None = "/presence",
        on_presence: PresenceHook | None = None,
    ) -> None:
        prefixes = [("app_prefix", app_prefix), ("user_prefix", user_prefix)]
        if presence_prefix is not None:
            prefixes.append(("presence_prefix", presence_prefix))
        for name, prefix in prefixes:
            if not prefix.startswith("/") or prefix.endswith("/"):
                raise ValueError(f"{name} must start with '/' and not end with it: {prefix!r}")
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.options = options or StompOptions()
        self.app_prefix = app_prefix
        self.user_prefix = user_prefix
        self.authenticate = authenticate
        self.authorize = authorize
        self.handlers = handlers if handlers is not None else AppHandlers()
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.presence_prefix = presence_prefix
        #: The cluster-wide registry of users (this node only on a broker without a registry transport).
        self.presence = Presence(self.broker.registry_transport(), self._presence_events)
        self.presence.on_presence = on_presence
        #: Watched destination ("" for every user) -> presence subscriptions (peer, key).
        self._watchers: dict[str, dict[tuple[_Peer, str], None]] = {}
        self._presence_ids = 0
        self._peers: dict[_Peer, None] = {}
        #: Subscribers a delivery left above their high-water mark (see :meth:`_relieve`).
        self._congested: dict[_Peer, None] = {}
        self._users: dict[str, dict[_Peer, None]] = {}
        # Peers on links that do not batch (TCP) with queued output, flushed together
        # once per event-loop turn (one callback for a whole fan-out, not one per subscriber).
        self._dirty: list[_Peer] = []
        self._flush_handle: asyncio.Handle | None = None
        #: Totals since creation (see :meth:`stats`).
        self.counters = StompCounters()

    # --- decorators --------------------------------------------------------

    def message(self, pattern: str, *, send_to: str | None = None, reply_to: str | None = None) -> Any:
        """Decorator: handle SEND to ``<app_prefix><pattern>`` (see :meth:`AppHandlers.message`)."""
        return self.handlers.message(pattern, send_to=send_to, reply_to=reply_to)

    def subscribe(self, pattern: str) -> Any:
        """Decorator: answer SUBSCRIBE to ``<app_prefix><pattern>`` once (see :meth:`AppHandlers.subscribe`)."""
        return self.handlers.subscribe(pattern)

    # --- entry points --------------------------------------------------------

    async def __call__(self, session: Session) -> None:
        """SockJS session handler: one STOMP connection per SockJS session."""
        info = ConnectionInfo(
            secrets.token_hex(8),
            session.transport,
            session.remote,
            session.headers,  # case-insensitive, read-only
            MappingProxyType(dict(session.cookies)),
        )

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                try:
                    data = await session.receive_data()
                except SessionClosed:
                    return
                if isinstance(data, bytes):  # a binary websocket message (raw websocket)
                    yield data
                else:
                    # A lone surrogate (valid JSON, not UTF-8) must reach the parser as bad bytes, not crash.
                    yield data.encode("utf-8", "surrogatepass")

        await _Peer(self, _SessionLink(session), info).serve(chunks())

    async def handle_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """``asyncio.start_server`` callback: one STOMP connection per TCP stream."""
        peername = writer.get_extra_info("peername")
        remote = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) and len(peername) >= 2 else None
        info = ConnectionInfo(secrets.token_hex(8), "tcp", remote)

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                yield data

        await _Peer(self, _StreamLink(reader, writer, self.options), info).serve(chunks())

    # --- server-side API -----------------------------------------------------

    async def publish(
        self,
        destination: str,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
    ) -> None:
        """Publish from server code. ``body`` is str, bytes, or JSON-able.

        ``<user_prefix>/<user>/queue/x`` sends to that user (:meth:`send_to_user`).
        """
        data, pairs = self._encode(body, headers, content_type)
        await self._publish(destination, data, pairs)

    async def send_to_user(
        self,
        user: str,
        destination: str,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
    ) -> None:
        """Send to every session of ``user`` subscribed to ``<user_prefix><destination>``."""
        data, pairs = self._encode(body, headers, content_type)
        await self._send_to_user(user, destination, data, pairs)

    @property
    def connections(self) -> list[ConnectionInfo]:
        """The live connections."""
        return [peer.info for peer in self._peers]

    async def users(self) -> list[str]:
        """Names of the authenticated users connected to any node (this one on the MemoryBroker), sorted."""
        return await self.presence.users()

    async def subscribers(self, destination: str) -> list[str]:
        """Users with a session subscribed to ``destination`` (as clients name it), on any node, sorted."""
        return await self.presence.subscribers(destination)

    def close_connection(self, session_id: str, message: str, detail: str = "") -> bool:
        """End one connection of this node with ``ERROR message:<message>``; False if there is none."""
        for peer in self._peers:
            if peer.session_id == session_id:
                peer.fail(StompError(message, detail))
                return True
        return False

    def stats(self) -> dict[str, object]:
        """Counters and gauges of this server and its broker, as plain data (see :mod:`sockjs_server.metrics`).

        ``broker`` holds the broker's own ``stats()`` when it has one (queue
        depths of the MemoryBroker; state, reconnections, ... of the relay).
        """
        connections: dict[str, int] = {}
        subscriptions = 0
        for peer in list(self._peers):
            connections[peer.link.name] = connections.get(peer.link.name, 0) + 1
            subscriptions += len(peer.conn.subscriptions)
        c = self.counters
        broker_stats = getattr(self.broker, "stats", None)
        return {
            "connections": connections,
            "connections_opened": c.connections_opened,
            "subscriptions": subscriptions,
            "frames_in": dict(c.frames_in),
            "messages_out": c.messages_out,
            "errors": dict(c.errors),
            "slow_consumer_closes": c.slow_consumer_closes,
            "broker": dict(broker_stats()) if callable(broker_stats) else {},
        }

    async def close(self) -> None:
        """Send ERROR "Server shutting down" to every client and close them."""
        for peer in list(self._peers):
            peer.fail(StompError("Server shutting down"))

    # --- internals ---------------------------------------------------------

    async def _relieve(self) -> None:
        """Back-pressure on a publisher: flush the subscribers its deliveries left behind and
        wait while their clients take their queues (one that is not reading is closed by its
        SockJS session after ``send_timeout``, a TCP one after ``slow_consumer_timeout``)."""
        while self._congested:
            # All at once: several subscribers that take nothing cost one timeout, not one each.
            peers = list(self._congested)
            self._congested.clear()
            for peer in peers:
                if peer._dirty:
                    peer.flush()
            taken = await asyncio.gather(*(peer.link.drain() for peer in peers))
            stuck = self.options.slow_consumer_timeout
            for peer, ok in zip(peers, taken):
                if not ok:
                    peer.slow(f"the client took none of its {peer.link.pending()} unsent bytes in {stuck:g} s")

    def _flush_later(self, peer: _Peer) -> None:
        self._dirty.append(peer)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for peer in dirty:
            if peer._dirty:
                peer.flush()

    def _encode(self, body: Any, headers: Mapping[str, str] | None, content_type: str | None) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        data, default_type = encode_body(body)
        pairs = [(k, v) for k, v in (headers or {}).items() if k not in SERVER_SET_HEADERS]
        ctype = content_type or default_type
        if ctype is not None and not any(k == "content-type" for k, _ in pairs):
            pairs.append(("content-type", ctype))
        return data, tuple(pairs)

    def _reply(self, result: Any) -> tuple[bytes, tuple[tuple[str, str], ...], str | None]:
        if isinstance(result, Reply):
            data, pairs = self._encode(result.body, result.headers, None)
            return data, pairs, result.destination
        data, pairs = self._encode(result, None, None)
        return data, pairs, None

    async def _publish(self, destination: str, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        if self._app_path(destination) is not None:
            raise ValueError(f"cannot publish to an application destination: {destination!r}")
        target = self._user_target(destination)
        if target is not None:
            await self._send_to_user(target[0], target[1], body, headers)
            return
        await self.broker.publish(destination, body, headers)

    async def _send_to_user(self, user: str, destination: str, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        routed = self.broker.user_destination(user, destination)
        if routed is not None:
            # The broker reaches the user's sessions on every node.
            await self.broker.publish(routed, body, headers)
            return
        for peer in list(self._users.get(user, ())):
            await peer.send_user_message(destination, body, headers)

    def _app_path(self, destination: str) -> str | None:
        prefix = self.app_prefix
        if destination.startswith(prefix) and destination[len(prefix) : len(prefix) + 1] == "/":
            return destination[len(prefix) :]
        return None

    def _presence_path(self, destination: str) -> str | None:
        """``/presence`` -> "" (every user); ``/presence/topic/x`` -> "/topic/x"; else None."""
        prefix = self.presence_prefix
        if prefix is None or not destination.startswith(prefix):
            return None
        rest = destination[len(prefix) :]
        if rest == "" or (rest.startswith("/") and len(rest) > 1):
            return rest
        return None

    async def _watch(self, peer: _Peer, sub: Subscription, watched: str) -> None:
        """A presence subscription: the current users first, then their arrivals and departures."""
        peer.presence_subs[sub.key] = watched
        self._watchers.setdefault(watched, {})[(peer, sub.key)] = None
        await self.presence.ready()
        if watched:
            body: dict[str, Any] = {"type": "snapshot", "destination": watched, "users": self.presence.registry.subscribers(watched)}
        else:
            body = {"type": "snapshot", "users": self.presence.registry.users()}
        self._presence_deliver(((peer, sub.key),), watched, body)

    def _unwatch(self, peer: _Peer, key: str) -> None:
        watched = peer.presence_subs.pop(key, None)
        if watched is None:
            return
        watchers = self._watchers.get(watched)
        if watchers is not None:
            watchers.pop((peer, key), None)
            if not watchers:
                del self._watchers[watched]

    def _presence_events(self, events: list[PresenceEvent]) -> None:
        """Registry events -> MESSAGEs to the presence subscriptions (user-level changes only)."""
        for event in events:
            if not (event.joined or event.left) or not self._watchers:
                continue
            watched = event.destination or ""
            watchers = self._watchers.get(watched)
            if not watchers:
                continue
            body: dict[str, Any] = {"type": "joined" if event.joined else "left", "user": event.user}
            if event.destination is not None:
                body["destination"] = event.destination
            if event.reason is not None:
                body["reason"] = event.reason
            self._presence_deliver(list(watchers), watched, body)

    def _presence_deliver(self, targets: Any, watched: str, body: dict[str, Any]) -> None:
        data, pairs = self._encode(body, None, None)
        message = Message(f"{self.presence_prefix}{watched}", data, pairs)
        for peer, key in targets:
            self._presence_ids += 1
            peer.deliver(key, message, f"{_APP_ACK_PREFIX}p{self._presence_ids}")

    def _user_subscription(self, destination: str) -> str | None:
        """``/user/queue/x`` -> ``/queue/x`` (a subscription to the caller's own destination)."""
        prefix = self.user_prefix
        if destination.startswith(prefix + "/") and destination[len(prefix) :].startswith(("/queue/", "/topic/")):
            return destination[len(prefix) :]
        return None

    def _user_target(self, destination: str) -> tuple[str, str] | None:
        """``/user/<name>/queue/x`` -> ("name", "/queue/x") (sending to another user)."""
        prefix = self.user_prefix + "/"
        if not destination.startswith(prefix):
            return None
        name, sep, rest = destination[len(prefix) :].partition("/")
        if not sep or not name or not ("/" + rest).startswith(("/queue/", "/topic/")):
            raise frame_error("Unknown destination", f"user destinations look like {prefix}<user>/queue/<name>")
        return name, "/" + rest


def _stomp_figures(handler: object) -> Mapping[str, object] | None:
    return handler.stats() if isinstance(handler, StompServer) else None


register_handler_figures("stomp", _stomp_figures, stomp_families)
