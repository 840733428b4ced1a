"""Sans-I/O client side of a STOMP 1.2 connection to the broker.

:class:`UpstreamProtocol` is what the relay speaks to RabbitMQ's STOMP
plugin: it writes CONNECT, numbers receipts, turns the broker's bytes into
events (:class:`Connected`, :class:`Delivery`, :class:`Receipt`,
:class:`BrokerFailure`) and keeps heart-beat deadlines from a ``now``
argument. It reuses the project's codec; the asyncio layer
(:mod:`.upstream`) owns the socket and the clock.

After a :class:`BrokerFailure` (an ERROR frame, a malformed byte stream or a
missed heart-beat) the connection is dead: RabbitMQ may still send a RECEIPT
after its ERROR (it does for ``SUBSCRIBE /exchange/no-such-exchange``), and
such a receipt must never confirm anything, so nothing is reported after it.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from ..codec import HEARTBEAT, FrameParser, serialize
from ..errors import BrokerError, ProtocolError, StompError
from ..frames import Command, Frame, Version

__all__ = [
    "UpstreamProtocol",
    "UpstreamState",
    "Connected",
    "Delivery",
    "Receipt",
    "BrokerFailure",
    "UpstreamEvent",
    "parse_heartbeat",
]


class UpstreamState(enum.Enum):
    """Life cycle of one broker connection; transitions only in :class:`UpstreamProtocol`."""

    IDLE = "idle"  # nothing written yet
    CONNECTING = "connecting"  # CONNECT written, waiting for CONNECTED
    CONNECTED = "connected"
    CLOSED = "closed"  # failed, or DISCONNECT written


@dataclass(frozen=True, slots=True)
class Connected:
    """The broker accepted CONNECT."""

    session: str | None
    server: str | None
    #: Negotiated heart-beats in seconds: (we send every, we expect data every); 0 is none.
    heartbeat: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A MESSAGE frame from the broker."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class Receipt:
    """The broker processed the frame that carried ``receipt:<receipt_id>``."""

    receipt_id: str


@dataclass(frozen=True, slots=True)
class BrokerFailure:
    """The connection is dead; ``error`` says why (RabbitMQ's own message when it sent ERROR)."""

    error: StompError
    #: True when the broker sent an ERROR frame (as opposed to a local decision).
    from_broker: bool = True


UpstreamEvent = Connected | Delivery | Receipt | BrokerFailure


def parse_heartbeat(value: str | None) -> tuple[int, int]:
    """``heart-beat`` header as two millisecond counts; (0, 0) when absent or malformed."""
    if value is None:
        return 0, 0
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        return 0, 0
    return int(parts[0]), int(parts[1])


def error_from_frame(frame: Frame) -> BrokerError:
    """A broker ERROR frame as an exception carrying RabbitMQ's message and body."""
    message = frame.get("message") or "Broker error"
    # Passed on to the client unchanged (RabbitMQ's bodies end with a newline).
    return BrokerError(message, frame.text)


class UpstreamProtocol:
    """One client connection to the broker, without I/O.

    :param heartbeat: (we can send every, we want the broker's data every),
        in seconds, offered in CONNECT.
    :param heartbeat_tolerance: the broker is considered dead after this many
        agreed intervals without a byte from it.
    """

    def __init__(
        self,
        *,
        login: str | None,
        passcode: str | None,
        virtual_host: str | None,
        heartbeat: tuple[float, float] = (10.0, 10.0),
        heartbeat_tolerance: float = 3.0,
        max_frame_size: int = 4 * 1024 * 1024 + 64 * 1024,
        now: float = 0.0,
    ) -> None:
        self.login = login
        self.passcode = passcode
        self.virtual_host = virtual_host
        self.offered_heartbeat = heartbeat
        self.heartbeat_tolerance = heartbeat_tolerance
        self.state = UpstreamState.IDLE
        self.session: str | None = None
        self.failure: StompError | None = None
        # Until CONNECTED arrives, headers are read without escapes, as the spec
        # wants for CONNECTED; the version is then always 1.2.
        self._parser = FrameParser(max_frame_size=max_frame_size, max_headers=1000, max_header_line=64 * 1024)
        self._outbox: list[bytes] = []
        self._receipts = itertools.count(1)
        self.send_interval = 0.0
        self.receive_interval = 0.0
        self.last_sent = now
        self.last_received = now

    # --- output --------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Queue the CONNECT frame."""
        if self.state is not UpstreamState.IDLE:
            raise RuntimeError(f"connect() in state {self.state.value}")
        cx, cy = self.offered_heartbeat
        headers = [("accept-version", Version.V1_2.value)]
        if self.virtual_host is not None:
            headers.append(("host", self.virtual_host))
        if self.login is not None:
            headers.append(("login", self.login))
        if self.passcode is not None:
            headers.append(("passcode", self.passcode))
        headers.append(("heart-beat", f"{round(cx * 1000)},{round(cy * 1000)}"))
        self._queue(serialize(Frame(Command.CONNECT, tuple(headers)), Version.V1_2), now)
        self.state = UpstreamState.CONNECTING

    def next_receipt_id(self) -> str:
        return f"r{next(self._receipts)}"

    def send(
        self, command: Command, headers: Iterable[tuple[str, str]], body: bytes = b"", *, now: float
    ) -> None:
        """Queue one frame; only valid while connected."""
        if self.state is not UpstreamState.CONNECTED:
            raise BrokerError("Broker not available", "the broker connection is not open")
        self._queue(serialize(Frame(command, tuple(headers), body), Version.V1_2), now)

    def disconnect(self, now: float, receipt: str | None = None) -> None:
        """Queue DISCONNECT; nothing is sent after it."""
        if self.state is UpstreamState.CONNECTED:
            headers = (("receipt", receipt),) if receipt is not None else ()
            self._queue(serialize(Frame(Command.DISCONNECT, headers), Version.V1_2), now)
        if self.state is not UpstreamState.CLOSED:
            self.state = UpstreamState.CLOSED

    def _queue(self, data: bytes, now: float) -> None:
        self._outbox.append(data)
        self.last_sent = now

    def data_to_send(self) -> bytes:
        if not self._outbox:
            return b""
        data = b"".join(self._outbox)
        self._outbox.clear()
        return data

    # --- input ---------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        if self.state is UpstreamState.CLOSED:
            return
        self.last_received = now
        self._parser.receive(data)

    def fail(self, error: StompError, *, from_broker: bool = False) -> BrokerFailure:
        """End the connection locally (socket lost, timeout): returns the event to report."""
        self.state = UpstreamState.CLOSED
        if self.failure is None:
            self.failure = error
        self._outbox.clear()
        return BrokerFailure(self.failure, from_broker)

    def next_event(self) -> UpstreamEvent | None:
        """The next thing the broker said, or None until more bytes arrive."""
        if self.state is UpstreamState.CLOSED or self.state is UpstreamState.IDLE:
            return None
        try:
            frame = self._parser.next_frame()
        except ProtocolError as exc:
            return self.fail(BrokerError("Broker protocol error", str(exc)))
        if frame is None:
            return None
        command = frame.command
        if command is Command.MESSAGE and self.state is UpstreamState.CONNECTED:
            return Delivery(frame)
        if command is Command.RECEIPT and self.state is UpstreamState.CONNECTED:
            receipt_id = frame.get("receipt-id")
            if receipt_id is None:
                return self.fail(BrokerError("Broker protocol error", "RECEIPT without receipt-id"))
            return Receipt(receipt_id)
        if command is Command.CONNECTED and self.state is UpstreamState.CONNECTING:
            return self._on_connected(frame)
        if command is Command.ERROR:
            return self.fail(error_from_frame(frame), from_broker=True)
        return self.fail(BrokerError("Broker protocol error", f"unexpected {command.value} frame in state {self.state.value}"))

    def _on_connected(self, frame: Frame) -> Connected | BrokerFailure:
        version = frame.get("version", "1.0")
        if version != Version.V1_2.value:
            # The relay always speaks 1.2 upstream (escaping, ack ids).
            return self.fail(BrokerError("Broker protocol error", f"broker answered version {version!r}, 1.2 needed"))
        self.state = UpstreamState.CONNECTED
        self.session = frame.get("session")
        self._parser.version = Version.V1_2
        # "heart-beats every MAX(<cx>,<sy>) milliseconds" (and MAX(<sx>,<cy>)).
        sx, sy = parse_heartbeat(frame.get("heart-beat"))
        cx, cy = (round(v * 1000) for v in self.offered_heartbeat)
        self.send_interval = max(cx, sy) / 1000 if cx and sy else 0.0
        self.receive_interval = max(sx, cy) / 1000 if sx and cy else 0.0
        return Connected(self.session, frame.get("server"), (self.send_interval, self.receive_interval))

    # --- timers --------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.state is not UpstreamState.CONNECTED:
            return None
        deadlines = []
        if self.send_interval:
            deadlines.append(self.last_sent + self.send_interval)
        if self.receive_interval:
            deadlines.append(self.last_received + self.receive_interval * self.heartbeat_tolerance)
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> BrokerFailure | None:
        """Send a due heart-beat; a broker silent for too long is a failure."""
        if self.state is not UpstreamState.CONNECTED:
            return None
        if self.receive_interval and now >= self.last_received + self.receive_interval * self.heartbeat_tolerance:
            return self.fail(
                BrokerError("Broker heart-beat timeout", f"no data from the broker for {now - self.last_received:.1f} s")
            )
        if self.send_interval and now >= self.last_sent + self.send_interval:
            # "if the sender has no real STOMP frame to send, it MUST send an end-of-line (EOL)"
            self._queue(HEARTBEAT, now)
        return None

