"""Sans-I/O STOMP server connection: validates client frames, tracks state.

:class:`StompConnection` is fed bytes (``receive_data``) and pulled for
requests (``next_event``) that the asyncio layer carries out against the
broker; it is told the outcome (``accept``, ``receipt``, ``fail``) and
produces the bytes to send (``data_to_send``). Time is always an argument
(``now``), never read from a clock, so every deadline is testable.

Errors surface at one choke point: ``next_event`` raises a
:class:`~.errors.StompError`; the caller passes it to ``fail``, which queues
the ERROR frame and ends the connection ("it MUST then close the connection
just after sending the ERROR frame").
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .codec import HEARTBEAT, FrameParser, serialize
from .errors import FrameTooLarge, ProtocolError, StompError, frame_error
from .frames import SUPPORTED_VERSIONS, AckMode, Command, Frame, Version

__all__ = [
    "StompOptions",
    "State",
    "StompConnection",
    "Subscription",
    "Event",
    "ConnectRequest",
    "SendRequest",
    "SubscribeRequest",
    "UnsubscribeRequest",
    "AckRequest",
    "BeginRequest",
    "CommitRequest",
    "AbortRequest",
    "DisconnectRequest",
    "Buffered",
    "SERVER_SET_HEADERS",
]

logger = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StompOptions:
    """Per-connection limits and timers. Times are seconds; sizes are bytes.

    Defaults follow trusted brokers: Spring's 64 KiB message size limit
    before CONNECT and 10 s heart-beats with a 3x read tolerance,
    RabbitMQ-sized frames after it, ActiveMQ's 10 KiB header lines.
    """

    #: Largest frame accepted before the client has connected.
    max_connect_frame_size: int = 64 * KiB
    #: Largest frame (head + body) accepted once connected.
    max_frame_size: int = 1 * MiB
    #: Most header lines in one frame.
    max_headers: int = 100
    #: Longest header line (command line included), in bytes.
    max_header_line: int = 10 * KiB
    #: Most live subscriptions per connection.
    max_subscriptions: int = 1000
    #: Most transactions open at once per connection.
    max_transactions: int = 16
    #: Most SEND/ACK/NACK frames held in one transaction until COMMIT.
    max_transaction_frames: int = 1000
    #: Most body bytes buffered across the open transactions of a connection.
    max_transaction_bytes: int = 8 * MiB
    #: Outbound bytes queued for one client before it counts as a slow
    #: consumer and is disconnected with ERROR.
    max_pending_bytes: int = 4 * MiB
    #: A TCP client whose unsent bytes stay above the pacing mark (a quarter of
    #: ``max_pending_bytes``, at most 256 KiB) this many seconds without any
    #: going out is a slow consumer. While it still takes bytes, publishers wait
    #: for it instead: one that reads is never closed for a burst.
    slow_consumer_timeout: float = 10.0
    #: Shortest heart-beat interval granted, seconds. The server honours the
    #: rates a client asks for, as RabbitMQ does, rounded down to a multiple of
    #: this and never below it (RabbitMQ counts whole seconds).
    min_heartbeat: float = 1.0
    #: A client silent for this many agreed intervals is considered dead.
    heartbeat_tolerance: float = 3.0
    #: Seconds a client may take to send CONNECT (and be authenticated).
    connect_timeout: float = 60.0
    #: The ``server`` header of CONNECTED: "name ["/" version]".
    server_name: str = "sockjs-server/0.1"

    def __post_init__(self) -> None:
        for name in (
            "max_connect_frame_size",
            "max_frame_size",
            "max_headers",
            "max_header_line",
            "max_subscriptions",
            "max_transactions",
            "max_transaction_frames",
            "max_transaction_bytes",
            "max_pending_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"StompOptions.{name} must be positive")
        if self.max_pending_bytes < self.max_frame_size:
            # Otherwise one large message would make any subscriber a "slow consumer".
            raise ValueError("StompOptions.max_pending_bytes must be at least max_frame_size")
        if not self.min_heartbeat > 0:
            raise ValueError("StompOptions.min_heartbeat must be positive")
        if self.heartbeat_tolerance < 1:
            raise ValueError("StompOptions.heartbeat_tolerance must be at least 1")
        if self.connect_timeout <= 0:
            raise ValueError("StompOptions.connect_timeout must be positive")
        if not self.slow_consumer_timeout > 0:
            raise ValueError("StompOptions.slow_consumer_timeout must be positive")


class State(enum.Enum):
    """Connection life cycle: every transition is in ``StompConnection``."""

    AWAITING_CONNECT = "awaiting-connect"  # nothing but CONNECT/STOMP is valid
    AUTHENTICATING = "authenticating"  # CONNECT read; waiting for accept() or fail()
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"  # DISCONNECT read; only its RECEIPT goes out
    CLOSED = "closed"  # ERROR sent or transport gone


#: Headers only the server sets on MESSAGE frames; a client cannot forge them.
#: (A SEND's ``receipt`` and ``transaction`` headers travel with the message,
#: as RabbitMQ shows them.)
SERVER_SET_HEADERS = frozenset({"destination", "message-id", "subscription", "ack", "redelivered", "user-id", "content-length"})

#: The versions named in every ERROR frame, as RabbitMQ does.
_SUPPORTED = ",".join(v.value for v in SUPPORTED_VERSIONS)


@dataclass(slots=True)
class Subscription:
    """A client subscription as the connection knows it."""

    key: str  # unique per connection: the id, or the destination for id-less 1.0 subscriptions
    client_id: str | None  # the id the client gave, None for id-less 1.0 subscriptions
    destination: str
    ack: AckMode
    #: Encoded ``subscription:<id>\n`` line for MESSAGE frames, cached once.
    header_line: bytes = b""


# --- events: what the asyncio layer must carry out ---------------------------


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    version: Version
    login: str | None
    passcode: str | None
    host: str | None
    frame: Frame


@dataclass(frozen=True, slots=True)
class SendRequest:
    destination: str
    body: bytes
    #: User headers to pass on (content-type and custom ones), server-set ones removed.
    headers: tuple[tuple[str, str], ...]
    receipt: str | None


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    subscription: Subscription
    #: Other SUBSCRIBE headers (broker-specific options such as prefetch-count).
    headers: Mapping[str, str]
    receipt: str | None


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    subscription: Subscription
    receipt: str | None
    #: Other UNSUBSCRIBE headers (``durable:true`` deletes a durable subscription's queue).
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AckRequest:
    ack_id: str
    subscription: str | None
    receipt: str | None
    nack: bool = False
    #: NACK only: False drops the message instead of redelivering it (RabbitMQ's ``requeue`` header).
    requeue: bool = True


@dataclass(frozen=True, slots=True)
class BeginRequest:
    transaction: str
    receipt: str | None


@dataclass(frozen=True, slots=True)
class CommitRequest:
    transaction: str
    #: The transaction's SEND/ACK/NACK requests, in the order they were sent;
    #: carry them out now, in order.
    operations: tuple[SendRequest | AckRequest, ...]
    receipt: str | None


@dataclass(frozen=True, slots=True)
class Buffered:
    """A SEND/ACK/NACK was added to a transaction: only its receipt is due."""

    transaction: str
    receipt: str | None


@dataclass(frozen=True, slots=True)
class AbortRequest:
    transaction: str
    receipt: str | None


@dataclass(frozen=True, slots=True)
class DisconnectRequest:
    receipt: str | None


Event = (
    ConnectRequest
    | SendRequest
    | SubscribeRequest
    | UnsubscribeRequest
    | AckRequest
    | BeginRequest
    | CommitRequest
    | AbortRequest
    | DisconnectRequest
    | Buffered
)


@dataclass(slots=True)
class _Transaction:
    operations: list[SendRequest | AckRequest] = field(default_factory=list)
    size: int = 0


@dataclass(slots=True)
class _Heartbeat:
    send: float = 0.0  # seconds between our EOLs; 0: none
    receive: float = 0.0  # seconds the client promised between its data; 0: none


def _parse_heartbeat(value: str | None) -> tuple[int, int]:
    # "When used, the heart-beat header MUST contain two positive integers separated by a comma."
    if value is None:
        return 0, 0
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        # RabbitMQ's words for it.
        raise frame_error("Processing error", "Processing error")
    # RabbitMQ reads a negative interval as 0 (none).
    return max(0, int(parts[0])), max(0, int(parts[1]))


def _grant(ms: int, minimum: float) -> int:
    """A heart-beat interval the client asked for, as the server grants it."""
    if ms <= 0:
        return 0
    step = max(1, round(minimum * 1000))
    return max(step, ms // step * step)


def _bad_transaction(name: str) -> ProtocolError:
    return frame_error("Bad transaction", f'Invalid transaction identifier: "{name}"\n')


def _negotiate_version(accept: str | None) -> Version:
    # "If the accept-version header is missing, it means that the client only
    # supports version 1.0 of the protocol."
    if accept is None:
        return Version.V1_0
    offered = {v.strip() for v in accept.split(",")}
    # "the highest protocol version that both the client and server have in common"
    for version in reversed(SUPPORTED_VERSIONS):
        if version.value in offered:
            return version
    # "If the client and server do not share any common protocol versions, then
    # the server MUST respond with an ERROR frame": RabbitMQ then waits for another CONNECT.
    raise frame_error("Version mismatch", f"Supported versions are {_SUPPORTED}\n")


class StompConnection:
    """State of one STOMP connection on the server side; no I/O."""

    def __init__(self, options: StompOptions | None = None, *, now: float = 0.0) -> None:
        self.options = options or StompOptions()
        opts = self.options
        self.state = State.AWAITING_CONNECT
        self.version: Version | None = None
        self.session_id: str | None = None
        self._parser = FrameParser(
            max_frame_size=opts.max_connect_frame_size,
            max_headers=opts.max_headers,
            max_header_line=opts.max_header_line,
        )
        self._parse_error: StompError | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self._transactions: dict[str, _Transaction] = {}
        self._transaction_bytes = 0
        self._outbox: list[bytes] = []
        self._client_heartbeat = (0, 0)
        self.heartbeat = _Heartbeat()
        self.created = now
        self.last_received = now
        self.last_sent = now
        self.error: StompError | None = None

    # --- input ---------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Take bytes from the client. "any new data received over the network
        connection is an indication that the remote end is alive"."""
        if self.state is State.CLOSED or self.state is State.DISCONNECTING:
            return
        self.last_received = now
        if data:
            self._parser.receive(data)

    def next_event(self) -> Event | None:
        """The next request to carry out, or None until more data arrives.

        Raises :class:`StompError` for bad input; pass it to :meth:`fail`.
        """
        while self.state is State.AWAITING_CONNECT or self.state is State.CONNECTED:
            frame = self._parser.next_frame()
            if frame is None:
                return None
            event = self._handle(frame)
            if event is not None:
                return event
        return None

    def _handle(self, frame: Frame) -> Event | None:
        receipt = frame.get("receipt")
        try:
            if self.state is State.AWAITING_CONNECT:
                if frame.command is Command.CONNECT or frame.command is Command.STOMP:
                    return self._on_connect(frame)
                raise frame_error("Illegal command", "You must log in using CONNECT first")
            handler = _HANDLERS.get(frame.command)
            if handler is None:
                if frame.command is Command.CONNECT or frame.command is Command.STOMP:
                    # RabbitMQ closes the connection without a word.
                    raise ProtocolError("Already connected", "CONNECT may only be sent once", silent=True)
                raise frame_error("Bad command", f'Could not interpret command "{frame.command.value}"\n')
            return handler(self, frame, receipt)
        except StompError as exc:
            if exc.receipt_id is None and receipt is not None and exc.receipted:
                exc.receipt_id = receipt
            raise

    def _on_connect(self, frame: Frame) -> ConnectRequest:
        version = _negotiate_version(frame.get("accept-version"))
        # STOMP 1.0 has no heart-beating, but a 1.0 client asking for it gets it (as from RabbitMQ).
        self._client_heartbeat = _parse_heartbeat(frame.get("heart-beat"))
        self.version = version
        self.state = State.AUTHENTICATING
        return ConnectRequest(version, frame.get("login"), frame.get("passcode"), frame.get("host"), frame)

    def _require(self, frame: Frame, name: str) -> str:
        value = frame.get(name)
        if value is None:
            raise frame_error(f"Missing {name}", f"\"{frame.command.value}\" must include a '{name}' header\n")
        return value

    def _transaction_for(self, frame: Frame, size: int) -> _Transaction | None:
        name = frame.get("transaction")
        if name is None:
            return None
        tx = self._transactions.get(name)
        if tx is None:
            raise _bad_transaction(name)
        opts = self.options
        if len(tx.operations) >= opts.max_transaction_frames:
            raise FrameTooLarge("Transaction too large", f"a transaction may hold at most {opts.max_transaction_frames} frames")
        if self._transaction_bytes + size > opts.max_transaction_bytes:
            raise FrameTooLarge(
                "Transaction too large", f"open transactions may buffer at most {opts.max_transaction_bytes} bytes"
            )
        tx.size += size
        self._transaction_bytes += size
        return tx

    def _buffer(self, tx: _Transaction, frame: Frame, request: SendRequest | AckRequest, receipt: str | None) -> Buffered:
        # "any messages sent or acknowledged during a transaction will be
        # processed atomically based on the transaction": held until COMMIT,
        # which also sends their receipts (as RabbitMQ does).
        tx.operations.append(request)
        return Buffered(frame.get("transaction") or "", None)

    def _on_send(self, frame: Frame, receipt: str | None) -> SendRequest | Buffered:
        destination = self._require(frame, "destination")
        if "message-id" in frame:
            raise frame_error("Invalid header", "'message-id' is not allowed on 'SEND'.\n")
        tx = self._transaction_for(frame, len(frame.body))
        seen: set[str] = set()
        headers: list[tuple[str, str]] = []
        for name, value in frame.headers:
            # "User defined headers MUST be passed through in the MESSAGE frame";
            # first of repeated entries only, and never what the server sets.
            if name in SERVER_SET_HEADERS or name in seen:
                continue
            seen.add(name)
            headers.append((name, value))
        if tx is not None:
            return self._buffer(tx, frame, SendRequest(destination, frame.body, tuple(headers), receipt), receipt)
        return SendRequest(destination, frame.body, tuple(headers), receipt)

    def _on_subscribe(self, frame: Frame, receipt: str | None) -> SubscribeRequest:
        _check_durable_id(frame)
        destination = self._require(frame, "destination")
        client_id = frame.get("id")
        # "an id header MUST be included": RabbitMQ accepts an id-less
        # SUBSCRIBE in every version and names it after its destination.
        key = destination if client_id is None else client_id
        if key in self.subscriptions:
            # "Within the same connection, different subscriptions MUST use different subscription identifiers."
            # RabbitMQ names the subscription by its consumer tag, and closes.
            tag = f"Q_{key}" if client_id is None else f"T_{key}"
            raise ProtocolError(
                "Duplicated subscription identifier", f"A subscription identified by '{tag}' already exists.", receipt_after=True
            )
        if len(self.subscriptions) >= self.options.max_subscriptions:
            raise FrameTooLarge("Too many subscriptions", f"a connection may hold at most {self.options.max_subscriptions} subscriptions")
        ack_value = frame.get("ack", "auto")
        try:
            ack = AckMode(ack_value)
        except ValueError:
            raise frame_error("Processing error", "Processing error") from None
        sub = Subscription(key, client_id, destination, ack)
        self.subscriptions[key] = sub
        extra = {k: v for k, v in frame.header_map.items() if k not in ("id", "destination", "ack", "receipt")}
        return SubscribeRequest(sub, extra, receipt)

    def _on_unsubscribe(self, frame: Frame, receipt: str | None) -> UnsubscribeRequest:
        _check_durable_id(frame)
        key = frame.get("id")
        if key is None:
            key = frame.get("destination")
            if key is None:
                raise frame_error("Missing destination or id", "UNSUBSCRIBE must include a 'destination' or 'id' header")
            shown = f"destination='{key}'"
        else:
            shown = f"id='{key}'"
        sub = self.subscriptions.get(key)
        if sub is None:
            # "This header MUST match the subscription identifier of an existing subscription."
            raise frame_error(
                "No subscription found",
                f'UNSUBSCRIBE must refer to an existing subscription.\nSubscription to "{shown}" not found.\n',
            )
        del self.subscriptions[sub.key]
        extra = {k: v for k, v in frame.header_map.items() if k not in ("id", "receipt")}
        return UnsubscribeRequest(sub, receipt, extra)

    def _on_ack(self, frame: Frame, receipt: str | None) -> AckRequest | Buffered:
        nack = frame.command is Command.NACK
        # "The ACK frame MUST include an id header matching the ack header of
        # the MESSAGE" (1.2); message-id before. The subscription header of
        # 1.1 is not checked, as RabbitMQ does not; NACK is accepted in 1.0 too.
        name = "id" if self.version is Version.V1_2 else "message-id"
        ack_id = frame.get(name)
        if ack_id is None:
            raise frame_error("Missing header", f'"{frame.command.value}" must include the "{name}" header\n')
        subscription = frame.get("subscription")
        # RabbitMQ drops the message for "false" and "False" (what stomp.py
        # sends); any other value, "FALSE" included, requeues it.
        requeue = frame.get("requeue") not in ("false", "False")
        tx = self._transaction_for(frame, 0)
        if tx is not None:
            # RabbitMQ confirms an ACK/NACK in a transaction at once (a SEND only at COMMIT).
            self._buffer(tx, frame, AckRequest(ack_id, subscription, None, nack, requeue), receipt)
            return Buffered(frame.get("transaction") or "", receipt)
        return AckRequest(ack_id, subscription, receipt, nack, requeue)

    def _on_begin(self, frame: Frame, receipt: str | None) -> BeginRequest:
        name = self._require(frame, "transaction")
        old = self._transactions.pop(name, None)
        if old is not None:
            # "different transactions MUST use different transaction identifiers":
            # RabbitMQ accepts a repeated BEGIN, which starts the transaction afresh.
            self._transaction_bytes -= old.size
        if len(self._transactions) >= self.options.max_transactions:
            raise FrameTooLarge("Too many transactions", f"a connection may hold at most {self.options.max_transactions} open transactions")
        self._transactions[name] = _Transaction()
        return BeginRequest(name, receipt)

    def _end_transaction(self, frame: Frame) -> tuple[str, _Transaction]:
        name = self._require(frame, "transaction")
        tx = self._transactions.pop(name, None)
        if tx is None:
            raise _bad_transaction(name)
        self._transaction_bytes -= tx.size
        return name, tx

    def _on_commit(self, frame: Frame, receipt: str | None) -> CommitRequest:
        name, tx = self._end_transaction(frame)
        return CommitRequest(name, tuple(tx.operations), receipt)

    def _on_abort(self, frame: Frame, receipt: str | None) -> AbortRequest:
        # The transaction's frames are dropped unprocessed.
        name, _tx = self._end_transaction(frame)
        return AbortRequest(name, receipt)

    def _on_disconnect(self, frame: Frame, receipt: str | None) -> DisconnectRequest:
        # "Any started transactions which have not been committed will be
        # implicitly aborted if the client sends a DISCONNECT frame".
        self._transactions.clear()
        self._transaction_bytes = 0
        self.state = State.DISCONNECTING
        return DisconnectRequest(receipt)

    # --- outcomes ------------------------------------------------------------

    def accept(self, session_id: str, now: float) -> None:
        """CONNECT was authenticated: send CONNECTED and open the session."""
        if self.state is not State.AUTHENTICATING:
            raise RuntimeError(f"accept() in state {self.state.value}")
        assert self.version is not None
        self.state = State.CONNECTED
        self.session_id = session_id
        self._parser.version = self.version
        self._parser.max_frame_size = self.options.max_frame_size
        headers = [("version", self.version.value)]
        cx, cy = self._client_heartbeat
        # "if <cx> is 0 (the client cannot send heart-beats) or <sy> is 0 (the
        # server does not want to receive heart-beats) then there will be none;
        # otherwise, there will be heart-beats every MAX(<cx>,<sy>) milliseconds."
        # Like RabbitMQ the server wants what the client offers and sends what
        # it asks for, within the min_heartbeat bound; CONNECTED always says so,
        # "0,0" included, in every version.
        minimum = self.options.min_heartbeat
        send_ms, receive_ms = _grant(cy, minimum), _grant(cx, minimum)
        self.heartbeat = _Heartbeat(send=send_ms / 1000, receive=receive_ms / 1000)
        headers.append(("heart-beat", f"{send_ms},{receive_ms}"))
        headers += [("session", session_id), ("server", self.options.server_name)]
        self.last_received = now
        self._queue(serialize(Frame(Command.CONNECTED, tuple(headers)), self.version), now)

    def receipt(self, receipt_id: str | None, now: float) -> None:
        """Confirm a processed frame: "A RECEIPT frame MUST include the header receipt-id"."""
        if receipt_id is None or self.state is State.CLOSED:
            return
        self._queue(serialize(Frame(Command.RECEIPT, (("receipt-id", receipt_id),)), self.version), now)

    def fail(self, error: StompError, now: float) -> None:
        """Queue an ERROR frame; a fatal error also closes: nothing more is read or accepted.

        After a non-fatal one (a mistake confined to one frame) the connection
        goes on, as RabbitMQ's does; before CONNECTED it waits for CONNECT again.
        """
        if self.state is State.CLOSED:
            return
        self.error = error
        if not error.silent:
            # RabbitMQ's form: message, a text/plain body, the supported
            # versions, and no receipt-id (the spec's SHOULD leaves room).
            headers: list[tuple[str, str]] = [("message", error.message), ("content-type", "text/plain")]
            headers += [(k, v) for k, v in error.headers if k not in ("content-type", "version")]
            headers.append(("version", _SUPPORTED))
            body = error.detail.encode("utf-8")
            self._queue(serialize(Frame(Command.ERROR, tuple(headers), body), self.version), now)
        if error.receipt_after and error.receipt_id is not None:
            self._queue(serialize(Frame(Command.RECEIPT, (("receipt-id", error.receipt_id),)), self.version), now)
        if error.fatal or self.state is State.DISCONNECTING:
            self.state = State.CLOSED
        elif self.state is State.AUTHENTICATING:
            self.state = State.AWAITING_CONNECT
            self.version = None

    def connection_lost(self) -> None:
        """The transport is gone; nothing more goes in or out."""
        self.state = State.CLOSED
        self._outbox.clear()

    # --- output --------------------------------------------------------------

    def _queue(self, data: bytes, now: float) -> None:
        self._outbox.append(data)
        self.last_sent = now

    def send_data(self, data: bytes, now: float) -> None:
        """Queue already-serialized bytes (MESSAGE frames built by the server)."""
        if self.state is State.CONNECTED or self.state is State.DISCONNECTING:
            self._outbox.append(data)
            self.last_sent = now

    def data_to_send(self) -> bytes:
        """Everything queued since the last call."""
        if not self._outbox:
            return b""
        data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
        self._outbox.clear()
        return data

    @property
    def outbox_size(self) -> int:
        return sum(map(len, self._outbox))

    @property
    def closing(self) -> bool:
        """True once the transport should be closed after flushing."""
        return self.state is State.CLOSED

    # --- timers --------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` next has something to do."""
        if self.state is State.AWAITING_CONNECT or self.state is State.AUTHENTICATING:
            return self.created + self.options.connect_timeout
        if self.state is not State.CONNECTED:
            return None
        deadlines = []
        if self.heartbeat.send:
            deadlines.append(self.last_sent + self.heartbeat.send / 2)
        if self.heartbeat.receive:
            deadlines.append(self.last_received + self.heartbeat.receive * self.options.heartbeat_tolerance)
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> None:
        """Send a due heart-beat, or fail a client that missed its deadline."""
        if self.state is State.AWAITING_CONNECT or self.state is State.AUTHENTICATING:
            if now >= self.created + self.options.connect_timeout:
                self.fail(ProtocolError("Connect timeout", f"no CONNECT within {self.options.connect_timeout:g} s"), now)
            return
        if self.state is not State.CONNECTED:
            return
        hb = self.heartbeat
        if hb.receive and now >= self.last_received + hb.receive * self.options.heartbeat_tolerance:
            # "if, inside a time window of at least <n> milliseconds, the receiver
            # did not receive any new data, it MAY consider the connection as dead"
            self.fail(ProtocolError("Heart-beat timeout", f"no data from the client for {now - self.last_received:.1f} s"), now)
            return
        # Sent at half the agreed interval (as RabbitMQ does), so that a late
        # timer or a slow network never looks like a dead server.
        if hb.send and now >= self.last_sent + hb.send / 2:
            # "if the sender has no real STOMP frame to send, it MUST send an end-of-line (EOL)"
            self._queue(HEARTBEAT, now)


def _check_durable_id(frame: Frame) -> None:
    """A durable subscription is named by its ``id``: RabbitMQ refuses one without it
    (on SUBSCRIBE and UNSUBSCRIBE alike) before looking at anything else."""
    if frame.get("id") is None and (frame.get("durable") == "true" or frame.get("persistent") == "true"):
        raise frame_error("Missing Header", "Header 'id' is required for durable subscriptions", receipted=False)


_Handler = Callable[[StompConnection, Frame, "str | None"], Event]

_HANDLERS: dict[Command, _Handler] = {
    Command.SEND: StompConnection._on_send,
    Command.SUBSCRIBE: StompConnection._on_subscribe,
    Command.UNSUBSCRIBE: StompConnection._on_unsubscribe,
    Command.ACK: StompConnection._on_ack,
    Command.NACK: StompConnection._on_ack,
    Command.BEGIN: StompConnection._on_begin,
    Command.COMMIT: StompConnection._on_commit,
    Command.ABORT: StompConnection._on_abort,
    Command.DISCONNECT: StompConnection._on_disconnect,
}
