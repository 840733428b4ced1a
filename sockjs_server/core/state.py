"""The SockJS session state machine (sans-I/O).

One :class:`SessionState` per session, shared by every transport. It is fed
events with the current time (``now``, in seconds on any monotonic clock) and
answers with frames to send and the next deadline to wake it at; it never
reads a clock, sleeps or touches a socket.

Lifecycle (all transitions are in :data:`TRANSITIONS`)::

    CONNECTING --attach--> OPEN --close/interrupt--> CLOSING --expire--> CLOSED
                            |  \\--expire/transport_closed--------------> CLOSED
                            \\--transport_closed (websocket ends)-------> CLOSED

``CLOSING`` keeps the close frame so that every later receiving request is
answered with it until the session expires (sockjs-protocol, HandlingClose).
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import cast

from .framing import HEARTBEAT_FRAME, OPEN_FRAME, close_frame, messages_frame

__all__ = [
    "Attach",
    "CloseCode",
    "Event",
    "IllegalTransition",
    "PUSH_IGNORED",
    "PUSH_OVERFLOW",
    "SLOW_CONSUMER_REASON",
    "SessionState",
    "State",
    "TRANSITIONS",
]


class CloseCode(IntEnum):
    """Close codes this server sends in ``c[code,"reason"]`` frames."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INTERRUPTED = 1002
    INTERNAL_ERROR = 1011
    ANOTHER_CONNECTION = 2010
    GO_AWAY = 3000
    QUEUE_OVERFLOW = 3001
    """The send queue hit its hard limit, or the client took nothing from it for ``send_timeout``."""


CLOSE_REASONS: dict[int, str] = {
    CloseCode.NORMAL: "Normal closure",
    CloseCode.GOING_AWAY: "Server shutting down",
    CloseCode.INTERRUPTED: "Connection interrupted",
    CloseCode.INTERNAL_ERROR: "Internal server error",
    CloseCode.ANOTHER_CONNECTION: "Another connection still open",
    CloseCode.GO_AWAY: "Go away!",
    CloseCode.QUEUE_OVERFLOW: "Send queue overflow",
}

SLOW_CONSUMER_REASON = "Slow consumer"
"""Reason of the 3001 close of a session whose client took nothing for ``send_timeout``."""

ANOTHER_CONNECTION_FRAME = close_frame(CloseCode.ANOTHER_CONNECTION, CLOSE_REASONS[CloseCode.ANOTHER_CONNECTION])


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


# Module-level aliases for the hot paths: ``State.OPEN`` goes through the enum
# class's attribute lookup (about 0.1 µs on CPython 3.11), a global does not.
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

PUSH_IGNORED = -1
"""What :meth:`SessionState.push_sized` answers once the session is closing (nothing queued)."""
PUSH_OVERFLOW = -2
"""What :meth:`SessionState.push_sized` answers when the message did not fit (the session now closes)."""


class Event(Enum):
    ATTACH = "attach"
    CLOSE = "close"
    INTERRUPT = "interrupt"
    EXPIRE = "expire"
    TRANSPORT_CLOSED = "transport_closed"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.CONNECTING, Event.ATTACH): State.OPEN,
    (State.CONNECTING, Event.CLOSE): State.CLOSING,
    (State.CONNECTING, Event.EXPIRE): State.CLOSED,
    (State.CONNECTING, Event.TRANSPORT_CLOSED): State.CLOSED,
    (State.OPEN, Event.CLOSE): State.CLOSING,
    (State.OPEN, Event.INTERRUPT): State.CLOSING,
    (State.OPEN, Event.EXPIRE): State.CLOSED,
    (State.OPEN, Event.TRANSPORT_CLOSED): State.CLOSED,
    (State.CLOSING, Event.EXPIRE): State.CLOSED,
    (State.CLOSING, Event.TRANSPORT_CLOSED): State.CLOSED,
}
"""Every legal (state, event) pair and the state it leads to."""


class IllegalTransition(RuntimeError):
    """An event that the session's current state does not allow (a bug in the caller)."""


class Attach(Enum):
    """Answer to a receiving request that wants to attach."""

    ACCEPTED = "accepted"
    BUSY = "busy"
    """Another receiving connection is attached: answer ``c[2010,...]`` and end."""


class SessionState:
    """Queue, close frame and timers of one session, driven by explicit events."""

    __slots__ = (
        "state",
        "heartbeat_delay",
        "disconnect_delay",
        "max_queue_bytes",
        "max_queue_messages",
        "high_water_bytes",
        "high_water_messages",
        "send_timeout",
        "slow_consumer",
        "_take_deadline",
        "_queue",
        "_queue_bytes",
        "_open_pending",
        "_heartbeat_due",
        "_close_frame",
        "_close_code",
        "_close_reason",
        "_attached",
        "_heartbeat_at",
        "_expire_at",
    )

    def __init__(
        self,
        now: float,
        *,
        heartbeat_delay: float,
        disconnect_delay: float,
        max_queue_bytes: int,
        max_queue_messages: int,
        high_water_bytes: int | None = None,
        high_water_messages: int | None = None,
        send_timeout: float = 10.0,
    ) -> None:
        self.state = _CONNECTING
        self.heartbeat_delay = heartbeat_delay
        self.disconnect_delay = disconnect_delay
        self.max_queue_bytes = max_queue_bytes
        self.max_queue_messages = max_queue_messages
        # A waiting sender stops at the high-water marks, never at the hard limits.
        self.high_water_bytes = min(max_queue_bytes, high_water_bytes or max_queue_bytes)
        self.high_water_messages = min(max_queue_messages, high_water_messages or max_queue_messages)
        self.send_timeout = send_timeout
        #: Set when the session was closed because its client took nothing for ``send_timeout``.
        self.slow_consumer = False
        # While attached: when the client must have taken what is waiting for it.
        self._take_deadline: float | None = None
        # Text messages; raw websocket sessions may also queue bytes (binary messages).
        self._queue: list[str | bytes] = []
        self._queue_bytes = 0
        self._open_pending = False
        self._heartbeat_due = False
        self._close_frame: str | None = None
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._attached = False
        self._heartbeat_at = 0.0
        self._expire_at = now + disconnect_delay

    # -- queries ---------------------------------------------------------

    @property
    def attached(self) -> bool:
        """Whether a receiving connection is attached."""
        return self._attached

    @property
    def queued_bytes(self) -> int:
        """Bytes of messages waiting for a receiver."""
        return self._queue_bytes

    @property
    def close_code(self) -> int | None:
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        return self._close_reason

    @property
    def closed_for_app(self) -> bool:
        """Whether the application should see the session as closed."""
        state = self.state
        return state is _CLOSING or state is _CLOSED

    def must_wait(self, size: int) -> bool:
        """Whether a sender that can wait should wait for the client to take the queue
        before adding a message of ``size`` bytes: the queue is at a high-water mark, or
        the message would not fit under the hard limit (an empty queue never waits)."""
        queue = self._queue
        if not queue:
            return False
        queued = self._queue_bytes
        return (
            len(queue) >= self.high_water_messages
            or queued >= self.high_water_bytes
            or queued + size > self.max_queue_bytes
        )

    def has_frame(self) -> bool:
        """Whether :meth:`next_frame` would return a frame now."""
        return bool(
            self._open_pending
            or self._queue
            or self._heartbeat_due
            or (self.state is _CLOSING and self._close_frame is not None)
        )

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, or ``None``."""
        if self.state is _CLOSED:
            return None
        if self._attached:
            # A due heartbeat waits for the receiver, not for a timer.
            heartbeat = None if self._heartbeat_due else self._heartbeat_at
            take = self._take_deadline
            if take is None:
                return heartbeat
            return take if heartbeat is None or take < heartbeat else heartbeat
        return self._expire_at

    # -- events ----------------------------------------------------------

    def _transition(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise IllegalTransition(f"event {event.value!r} is not allowed in state {self.state.value!r}") from None

    def attach(self, now: float) -> Attach:
        """A receiving connection wants this session's frames.

        sockjs-protocol, Protocol: "The server must not allow two receiving
        connections to wait on a single session."
        """
        if self._attached:
            return Attach.BUSY
        if self.state is _CLOSED:
            raise IllegalTransition("cannot attach to a closed session")
        if self.state is _CONNECTING:
            self._transition(Event.ATTACH)
            self._open_pending = True
        self._attached = True
        self._heartbeat_due = False
        self._heartbeat_at = now + self.heartbeat_delay
        # What waited for a receiver is owed by this one from now on.
        self._take_deadline = now + self.send_timeout if self._queue else None
        return Attach.ACCEPTED

    def detach(self, now: float, *, interrupted: bool = False) -> None:
        """The receiving connection ended; ``interrupted`` when the client went away mid-request.

        sockjs-protocol, HandlingClose: "When a polling request is closed by a
        network error - not by server, the session should be automatically closed."
        """
        if not self._attached:
            return
        self._attached = False
        self._heartbeat_due = False
        self._expire_at = now + self.disconnect_delay
        if interrupted and self.state is _OPEN:
            self._queue.clear()
            self._queue_bytes = 0
            self._set_close(CloseCode.INTERRUPTED, CLOSE_REASONS[CloseCode.INTERRUPTED])
            self._transition(Event.INTERRUPT)

    def push(self, encoded: str | bytes, now: float) -> bool:
        """Queue one message (already JSON-encoded). Returns False when it did not fit.

        A client that does not read must not make the server hold unbounded
        memory: over ``max_queue_bytes``/``max_queue_messages`` the queue is
        dropped and the session is closed with ``QUEUE_OVERFLOW``. Senders that
        can wait stop at the high-water marks first (:meth:`must_wait`).
        """
        return self.push_sized(encoded, len(encoded), now) != PUSH_OVERFLOW

    def push_sized(self, encoded: str | bytes, size: int, now: float) -> int:
        """:meth:`push` of a message whose length ``size`` the caller knows (a broadcast
        measures it once for every session). Returns the bytes queued afterwards,
        :data:`PUSH_IGNORED` once the session is closing, :data:`PUSH_OVERFLOW` when it
        did not fit. ``now`` only matters when the queue was empty (a take deadline starts).
        """
        state = self.state
        if state is not _OPEN and state is not _CONNECTING:
            return PUSH_IGNORED
        queue = self._queue
        queued = self._queue_bytes + size
        if queued > self.max_queue_bytes or len(queue) >= self.max_queue_messages:
            queue.clear()
            self._queue_bytes = 0
            self.close(CloseCode.QUEUE_OVERFLOW, CLOSE_REASONS[CloseCode.QUEUE_OVERFLOW])
            return PUSH_OVERFLOW
        if not queue and self._take_deadline is None:
            self._take_deadline = now + self.send_timeout
        queue.append(encoded)
        self._queue_bytes = queued
        return queued

    def close(self, code: int, reason: str) -> None:
        """The application (or the server) closes the session; queued messages are still delivered first."""
        if self.state is _OPEN or self.state is _CONNECTING:
            self._set_close(code, reason)
            self._transition(Event.CLOSE)

    def transport_closed(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """The websocket carrying this session ended: the session ends with it."""
        if self.state is _CLOSED:
            return
        if self._close_code is None:
            self._set_close(code, reason or CLOSE_REASONS.get(code, ""))
        self._attached = False
        self._queue.clear()
        self._queue_bytes = 0
        self._transition(Event.TRANSPORT_CLOSED)

    def tick(self, now: float) -> bool:
        """Handle due timers. Returns True when the session just expired (it is now ``CLOSED``)."""
        if self.state is _CLOSED:
            return False
        if self._attached:
            take = self._take_deadline
            if take is not None and now >= take and self.state is _OPEN:
                # Spring's send-time limit: the client has taken nothing for
                # send_timeout although something was waiting; it is not reading.
                self._queue.clear()
                self._queue_bytes = 0
                self._take_deadline = None
                self.slow_consumer = True
                self.close(CloseCode.QUEUE_OVERFLOW, SLOW_CONSUMER_REASON)
                return False
            if now >= self._heartbeat_at and not self._heartbeat_due:
                self._heartbeat_due = True
                if take is None:
                    self._take_deadline = now + self.send_timeout
            return False
        if now >= self._expire_at:
            if self._close_code is None:
                self._set_close(CloseCode.INTERRUPTED, "Session timed out")
            self._queue.clear()
            self._queue_bytes = 0
            self._transition(Event.EXPIRE)
            return True
        return False

    def next_frame(self, now: float) -> str | None:
        """The next frame for the attached receiver, or ``None`` if there is nothing to send.

        A close frame is always the last frame a receiver gets.
        """
        if self.state is _CLOSED:
            return None
        if self._open_pending:
            self._open_pending = False
            frame = OPEN_FRAME
        elif self._queue:
            # Only raw websocket sessions queue bytes, and they never ask for frames.
            frame = messages_frame(cast("list[str]", self._queue))
            self._queue = []
            self._queue_bytes = 0
        elif self.state is _CLOSING and self._close_frame is not None:
            frame = self._close_frame
        elif self._heartbeat_due:
            frame = HEARTBEAT_FRAME
        else:
            return None
        self._heartbeat_due = False
        self._heartbeat_at = now + self.heartbeat_delay
        self._take_deadline = None
        return frame

    def direct_write_ok(self) -> bool:
        """Whether a message may bypass the queue: open, attached, nothing else due first."""
        return (
            self.state is _OPEN
            and self._attached
            and not self._queue
            and not self._open_pending
            and not self._heartbeat_due
        )

    def wrote(self, now: float) -> None:
        """A frame went out without :meth:`next_frame` (the direct path): the heartbeat waits."""
        self._heartbeat_at = now + self.heartbeat_delay

    def take_queue(self, now: float) -> list[str | bytes]:
        """Everything queued, unframed (the raw websocket sends messages as they are)."""
        queue = self._queue
        self._queue = []
        self._queue_bytes = 0
        self._open_pending = False
        self._heartbeat_due = False
        self._heartbeat_at = now + self.heartbeat_delay
        self._take_deadline = None
        return queue

    def _set_close(self, code: int, reason: str) -> None:
        self._close_code = code
        self._close_reason = reason
        self._close_frame = close_frame(code, reason)
