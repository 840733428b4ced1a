"""The application's view of a SockJS session, and the hooks transports drive it with.

:class:`Session` wraps the sans-I/O :class:`~sockjs_server.core.state.SessionState`
with asyncio: the handler task, the inbox of client messages, the wake-up of
the attached receiving connection and one lazily re-armed timer. Transports
never touch its fields; they call the ``attach``/``next_frame``/``wait_frame``/
``detach``/``deliver`` methods below.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qsl

from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy, MultiMapping

from ..core.framing import encode_message
from ..core.options import Options
from ..core.state import CLOSE_REASONS, PUSH_OVERFLOW, Attach, CloseCode, SessionState, State
from .eager import start_eagerly
from .stats import EndpointCounters

__all__ = ["FlushQueue", "Handler", "Receiver", "Session", "SessionClosed", "SessionOwner", "push_to_all"]

logger = logging.getLogger(__name__)

Handler = Callable[["Session"], Awaitable[None]]
"""An application handler: run once per session, from open to close."""


_CLOSED = State.CLOSED  # a global: enum class attributes are slow to look up on the hot paths

_NO_MESSAGES: deque[str | bytes] = deque(maxlen=0)
"""Shared empty inbox of sessions that have not received anything yet (never appended to)."""


class SessionOwner(Protocol):
    """What a session needs from whoever created it (an :class:`~sockjs_server.runtime.endpoint.Endpoint`).

    The session reports its life through these calls instead of reaching
    into its owner, so that this module knows nothing of endpoints.
    """

    options: Options
    handler: Handler
    #: Where the session adds what it sends and receives (plain ints: see :mod:`.stats`).
    counters: EndpointCounters

    def watch_receiver(self, session: Session) -> None:
        """An HTTP receiver whose client may vanish silently is attached: check it now and then."""

    def unwatch_receiver(self, session: Session) -> None:
        """That receiver is gone."""

    def session_closing(self, session: Session) -> None:
        """The session is closed for the application (its close frame may still be pending)."""

    def session_ended(self, session: Session) -> None:
        """The session is gone for good: forget it."""


class SessionClosed(Exception):
    """Raised by :meth:`Session.receive` once the session is closed and its inbox is empty."""


class _SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['session']}] {msg}", kwargs  # type: ignore[index]


Flush = Callable[[], Coroutine[Any, Any, Coroutine[Any, Any, None] | None]]
"""A websocket receiver's flush: it writes what is queued and returns ``None``, or returns
what is left undone where a write might have to wait (its client stopped reading, the
close), for the caller to run: the shared :class:`FlushQueue` task must never wait."""


class Receiver:
    """One receiving connection (an HTTP request or a websocket) attached to a session.

    HTTP receivers are request handlers that wait to be woken (:meth:`wait`);
    ``alive`` tells whether their client is still connected, as it may go
    away silently while the request is idle. A websocket receiver has a
    ``flush`` coroutine instead: waking it puts it on its endpoint's
    :class:`FlushQueue` (one task writes every woken websocket of a loop
    turn; what might wait goes on in a task of its own), and :meth:`Session.send`
    flushes in the sender's own task, so an echo or ping-pong reply costs no
    extra task switch and an idle websocket session holds no writer task.
    """

    __slots__ = (
        "_alive", "_wakeup", "_loop", "_flush", "_queue", "flushing", "_task", "write", "_abort", "_on_wake", "room"
    )

    def __init__(
        self,
        alive: Callable[[], bool] | None = None,
        *,
        flush: Flush | None = None,
        queue: FlushQueue | None = None,
        write: Callable[[str], Awaitable[None]] | None = None,
        abort: Callable[[], None] | None = None,
        on_wake: Callable[[], None] | None = None,
    ) -> None:
        #: Called instead of waking a waiting task (a poll that waits in no task; it must not
        #: reenter the session from there, only schedule its own check).
        self._on_wake = on_wake
        #: Writes one frame directly (websockets, streams that know their room); ``None`` otherwise.
        self.write = write
        #: Where set (a stream): whether a frame of that many bytes is written without waiting
        #: for the client; one that is not is queued instead, and the request's task writes it
        #: (so a client that takes nothing is still closed after ``send_timeout``).
        self.room: Callable[[int], bool] | None = None
        self._abort = abort
        self._alive = alive
        self._wakeup: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._flush = flush
        self._queue = queue
        self.flushing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def checks_liveness(self) -> bool:
        return self._alive is not None

    def alive(self) -> bool:
        return self._alive is None or self._alive()

    def abort(self) -> None:
        """Drop the connection at once (its client stopped reading: a pending write may never end)."""
        if self._abort is not None:
            self._abort()

    def wake(self) -> None:
        if self._on_wake is not None:
            self._on_wake()
            return
        if self._flush is not None:
            if not self.flushing:
                self.flushing = True
                if self._queue is not None:
                    self._queue.add(self)
                else:
                    self._spawn()
            return
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def wait(self) -> None:
        wakeup = self._wakeup = self._loop.create_future()
        try:
            await wakeup
        finally:
            self._wakeup = None

    async def flush_now(self) -> None:
        """Write what is queued, in the caller's task (unless a flush is already running)."""
        assert self._flush is not None
        if self.flushing:
            return
        self.flushing = True
        try:
            rest = await self._flush()
            if rest is not None:
                await rest
        finally:
            self.flushing = False

    def _spawn(self) -> None:
        self._task = self._loop.create_task(self._flush_task())

    def _flushed(self, task: asyncio.Task[None]) -> None:
        """A flush that had to wait ended in its own task (:class:`FlushQueue`)."""
        self.flushing = False
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("websocket flush failed", exc_info=task.exception())

    async def _flush_task(self) -> None:
        assert self._flush is not None
        try:
            rest = await self._flush()
            if rest is not None:
                await rest
        finally:
            self.flushing = False
            self._task = None


class FlushQueue:
    """Websocket receivers woken during a loop turn, written by one task.

    A broadcast wakes every session; one task walking the list costs far
    less than a task per session. Each flush writes here only what cannot
    wait; what might (its client stopped reading) it hands back, and that
    runs here until it has to wait, then in a task of its own: a stalled
    client never holds up the other sessions.
    """

    __slots__ = ("_loop", "_dirty", "_task")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._dirty: list[Receiver] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, receiver: Receiver) -> None:
        self._dirty.append(receiver)
        if self._task is None:
            self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        batch: list[Receiver] = []
        index = 0
        try:
            while self._dirty:
                batch, self._dirty = self._dirty, []
                for index, receiver in enumerate(batch):
                    # Each receiver's flush is awaited here directly (no coroutine or task of
                    # the receiver's own around it): this runs once per session a broadcast wakes.
                    try:
                        flush = receiver._flush
                        assert flush is not None
                        rest = None
                        try:
                            rest = await flush()
                        finally:
                            if rest is None:
                                receiver.flushing = False
                        if rest is not None:
                            # A write that might wait: started here, and where it has to wait
                            # it goes on in a task of its own.
                            task = None
                            try:
                                task = start_eagerly(rest)
                            finally:
                                if task is None:
                                    receiver.flushing = False
                                else:
                                    receiver._task = task
                                    task.add_done_callback(receiver._flushed)
                    except Exception:
                        logger.exception("websocket flush failed")
                batch = []
        finally:
            self._task = None
            # Cancelled mid-batch: whoever was not written may be woken again.
            for receiver in batch[index + 1 :] + self._dirty:
                receiver.flushing = False
            self._dirty = []


class Session:
    """One SockJS session, whatever transport carries it.

    Iterate it (``async for message in session``) to receive client
    messages; :meth:`send` queues a message; :meth:`close` ends the session.
    The identity fields come from the request that opened the session, so
    applications can authenticate with its headers, cookies or query string.
    """

    __slots__ = (
        "id",
        "transport",
        "remote",
        "headers",
        "_query_string",
        "endpoint",
        "_raw",
        "_binary",
        "subprotocol",
        "_state",
        "_loop",
        "_inbox",
        "_max_inbox",
        "_reader",
        "_drain",
        "_writable",
        "_receiver",
        "_timer",
        "_timer_at",
        "_task",
        "_closed",
        "_closing_done",
        "_counters",
        "opened_at",
        "__weakref__",
    )

    def __init__(
        self,
        endpoint: SessionOwner,
        session_id: str,
        transport: str,
        *,
        remote: str | None,
        headers: CIMultiDictProxy[str],
        query_string: str = "",
        raw: bool = False,
        binary: bool = False,
        subprotocol: str | None = None,
    ) -> None:
        self.id = session_id
        self.transport = transport
        self.remote = remote
        self.headers = headers
        self._query_string = query_string
        self.endpoint = endpoint
        options = endpoint.options
        self._raw = raw
        self._binary = binary
        #: The websocket subprotocol selected for a raw websocket session (see WebsocketProfile), else None.
        self.subprotocol = subprotocol
        self._loop = asyncio.get_running_loop()
        self._counters = endpoint.counters
        #: Event-loop time the session was created (for its duration in logs).
        self.opened_at = self._loop.time()
        self._state = SessionState(
            self.opened_at,
            heartbeat_delay=options.heartbeat_delay,
            disconnect_delay=options.disconnect_delay,
            max_queue_bytes=options.max_queue_bytes,
            max_queue_messages=options.max_queue_messages,
            high_water_bytes=options.send_high_water,
            high_water_messages=options.send_high_water_messages,
            send_timeout=options.send_timeout,
        )
        self._inbox: deque[str | bytes] = _NO_MESSAGES  # a real deque once something arrives
        self._max_inbox = options.max_receive_queue
        self._reader: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._receiver: Receiver | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None  # created when someone waits
        self._closing_done = False
        self._schedule()

    @property
    def cookies(self) -> Mapping[str, str]:
        """Cookies of the opening request (parsed on use: most sessions never ask)."""
        parsed = SimpleCookie()
        for header in self.headers.getall("Cookie", ()):
            try:
                parsed.load(header)
            except CookieError:
                continue
        return MappingProxyType({name: morsel.value for name, morsel in parsed.items()})

    @property
    def query(self) -> MultiMapping[str]:
        """Query string parameters of the opening request (parsed on use)."""
        return MultiDictProxy(MultiDict(parse_qsl(self._query_string, keep_blank_values=True)))

    def __repr__(self) -> str:
        return f"<Session {self.id!r} {self.transport} {self._state.state.value}>"

    # -- application API ---------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the session is closed (messages already received may still be read)."""
        return self._state.closed_for_app

    @property
    def close_code(self) -> int | None:
        """The close code once closed (``1002`` when the client went away, ...)."""
        return self._state.close_code

    @property
    def close_reason(self) -> str | None:
        return self._state.close_reason

    @property
    def binary(self) -> bool:
        """Whether this session carries bytes too: a raw websocket session whose handler's
        :class:`~sockjs_server.core.options.WebsocketProfile` has ``binary=True``. Only then may
        :meth:`receive_data` return ``bytes`` and :meth:`send_bytes` be used."""
        return self._binary

    @property
    def queued_bytes(self) -> int:
        """Bytes of messages queued for the client and not yet written (bounded by ``max_queue_bytes``)."""
        return self._state.queued_bytes

    def send_nowait(self, message: str) -> None:
        """Queue ``message`` for the client; ignored once the session is closed.

        Never blocks, never waits for the client: the session is closed with
        ``c[3001,"Send queue overflow"]`` once ``max_queue_bytes`` or
        ``max_queue_messages`` is exceeded. Prefer :meth:`send` where the
        sender can wait.
        """
        if self._state.closed_for_app:
            return
        if type(message) is not str:
            raise TypeError(f"SockJS messages are str, not {type(message).__name__}")
        self.push_encoded(message if self._raw else encode_message(message))

    async def send(self, message: str) -> None:
        """Queue ``message`` for the client, waiting first while the queue is above
        ``send_high_water``/``send_high_water_messages`` (back-pressure).

        A client that reads, however slowly, is never closed for it; one that
        takes nothing for ``send_timeout`` is (``c[3001,"Slow consumer"]``).
        On a websocket, once the handler has read every client message, the
        message is written at once from the caller's task (which then waits
        while the client's connection is congested); before that, replies are
        batched into one frame by a background flush.
        """
        receiver = self._receiver
        if receiver is None or receiver.write is None or receiver.flushing or self._inbox:
            await self._send_queued(message)
            return
        state = self._state
        if self._raw or not state.direct_write_ok():
            if receiver._flush is None:
                await self._send_queued(message)  # a stream: its request's task writes the queue
                return
            receiver.flushing = True  # no background flush: this task writes
            try:
                self.send_nowait(message)
            finally:
                receiver.flushing = False
            await receiver.flush_now()
            return
        # The direct path (echo, ping-pong): nothing is queued or due before
        # this message, so it becomes a frame here without queue or wake-up.
        if type(message) is not str:
            raise TypeError(f"SockJS messages are str, not {type(message).__name__}")
        encoded = encode_message(message)
        room = receiver.room
        if room is not None and not room(len(encoded) + 3):  # encode_message's output is ASCII
            await self._send_queued(message)
            return
        state.wrote(self._loop.time())
        counters = self._counters
        counters.messages_out += 1
        counters.bytes_out += len(encoded)
        receiver.flushing = True
        try:
            await receiver.write("a[" + encoded + "]")
        except Exception:
            self.transport_closed(CloseCode.INTERRUPTED)
        finally:
            receiver.flushing = False
        if state.has_frame():
            receiver.wake()  # queued meanwhile by others

    async def _send_queued(self, message: str) -> None:
        state = self._state
        if state.closed_for_app:
            return
        if type(message) is not str:
            raise TypeError(f"SockJS messages are str, not {type(message).__name__}")
        encoded = message if self._raw else encode_message(message)
        if state.must_wait(len(encoded)):
            await self._writable_again(len(encoded))
        self.push_encoded(encoded)

    def send_bytes_nowait(self, data: bytes) -> None:
        """Queue ``data`` for the client as one binary websocket message (see :meth:`send_nowait`).

        Only on :attr:`binary` sessions: SockJS framing carries text only.
        """
        if not self._binary:
            raise TypeError("this session carries text only (binary needs the raw websocket and a binary WebsocketProfile)")
        if self._state.closed_for_app:
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"binary messages are bytes, not {type(data).__name__}")
        self.push_encoded(bytes(data))

    async def send_bytes(self, data: bytes) -> None:
        """Queue ``data`` as one binary websocket message; written from the caller's task
        when nothing else is pending (see :meth:`send`)."""
        receiver = self._receiver
        if receiver is None or receiver.write is None or receiver.flushing or self._inbox:
            if self._state.must_wait(len(data)) and not self._state.closed_for_app:
                await self._writable_again(len(data))  # back-pressure, as in send()
            self.send_bytes_nowait(data)
            return
        receiver.flushing = True  # no background flush: this task writes
        try:
            self.send_bytes_nowait(data)
        finally:
            receiver.flushing = False
        await receiver.flush_now()

    async def drain(self, limit: int | None = None) -> None:
        """Wait while the client has ``limit`` bytes or more to take (default: while the queue is
        at ``send_high_water``/``send_high_water_messages``); returns at once otherwise, and once
        the session is closed. For senders that queue with :meth:`send_nowait` and can wait."""
        state = self._state
        while not state.closed_for_app and (
            state.must_wait(0) if limit is None else state.queued_bytes >= limit and state.queued_bytes > 0
        ):
            writable = self._writable
            if writable is None:
                writable = self._writable = self._loop.create_future()
            await writable

    async def _writable_again(self, size: int) -> None:
        """Wait until the client took the queue (or the session closed)."""
        state = self._state
        while state.must_wait(size) and not state.closed_for_app:
            writable = self._writable
            if writable is None:
                writable = self._writable = self._loop.create_future()
            await writable

    def _taken(self) -> None:
        writable = self._writable
        if writable is not None:
            self._writable = None
            if not writable.done():
                writable.set_result(None)

    async def receive(self) -> str:
        """The next client message; raises :class:`SessionClosed` once closed and drained.

        On a :attr:`binary` session, use :meth:`receive_data`: a binary message
        next in line makes this raise ``TypeError`` (and stays unread).
        """
        while True:
            inbox = self._inbox
            if inbox:
                message = inbox.popleft()
                if type(message) is not str:
                    inbox.appendleft(message)  # stays unread for receive_data()
                    raise TypeError("the next message is binary: read it with Session.receive_data()")
                drain = self._drain
                if drain is not None and len(inbox) <= self._max_inbox // 2:
                    self._drain = None
                    if not drain.done():
                        drain.set_result(None)
                return message
            if self._state.closed_for_app:
                raise SessionClosed(self.id)
            # Inline (not _wait_message): this is every ping-pong message's path.
            reader = self._loop.create_future()
            self._reader = reader
            try:
                await reader
            finally:
                self._reader = None

    async def receive_data(self) -> str | bytes:
        """The next client message, ``bytes`` for a binary websocket message (only on
        :attr:`binary` sessions); raises :class:`SessionClosed` once closed and drained."""
        while True:
            inbox = self._inbox
            if inbox:
                return self._pop(inbox)
            if self._state.closed_for_app:
                raise SessionClosed(self.id)
            await self._wait_message()

    def _pop(self, inbox: deque[str | bytes]) -> str | bytes:
        message = inbox.popleft()
        drain = self._drain
        if drain is not None and len(inbox) <= self._max_inbox // 2:
            self._drain = None
            if not drain.done():
                drain.set_result(None)
        return message

    async def _wait_message(self) -> None:
        reader = self._loop.create_future()
        self._reader = reader
        try:
            await reader
        finally:
            self._reader = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.receive()
        except SessionClosed:
            raise StopAsyncIteration from None

    async def close(self, code: int = CloseCode.GO_AWAY, reason: str = CLOSE_REASONS[CloseCode.GO_AWAY]) -> None:
        """Close the session: queued messages are sent, then ``c[code,"reason"]``."""
        self.close_nowait(code, reason)

    def close_nowait(self, code: int = CloseCode.GO_AWAY, reason: str = CLOSE_REASONS[CloseCode.GO_AWAY]) -> None:
        """Synchronous :meth:`close`."""
        if self._state.closed_for_app:
            return
        self._state.close(int(code), reason)
        self._after_change()

    async def wait_closed(self) -> None:
        """Return once the session is closed."""
        if self._closing_done:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    @property
    def _log(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        # Made on use: most sessions never log, and each adapter costs memory.
        return _SessionLog(logger, {"session": self.id})

    # -- transport hooks -----------------------------------------------------

    def push_encoded(self, encoded: str | bytes) -> None:
        """Queue a message already encoded with :func:`~sockjs_server.core.framing.encode_message`
        (raw websocket sessions take the plain text, or bytes for a binary message).
        Broadcasts encode once and use :func:`push_to_all`."""
        size = len(encoded)
        counters = self._counters
        counters.messages_out += 1
        counters.bytes_out += size
        queued = self._push(encoded, size, self._loop.time())
        if queued > counters.queued_bytes_high_water:
            counters.queued_bytes_high_water = queued

    def _push(self, encoded: str | bytes, size: int, now: float) -> int:
        """Queue without counting (the caller counts); answers as :meth:`SessionState.push_sized`.

        Every message goes through here: a message that only joins the queue
        changes nothing but the queue, so only the receiver is woken (once: a
        websocket receiver already flushing picks it up), and the timer is re-armed
        only when the queue was empty and the take deadline that just started is
        due before it.
        """
        state = self._state
        queued = state.push_sized(encoded, size, now)
        if queued >= 0:
            receiver = self._receiver
            if receiver is not None and not receiver.flushing:
                receiver.wake()
            if queued == size and (self._timer is None or now + state.send_timeout < self._timer_at):
                self._schedule()
        elif queued == PUSH_OVERFLOW:
            self._counters.queue_overflow_closes += 1
            self._log.warning("send queue overflow, closing")
            self._after_change()
        return queued

    def attach(self, receiver: Receiver) -> Attach:
        """A receiving connection asks for this session's frames."""
        state = self._state
        current = self._receiver
        if current is not None and not current.alive():
            # The previous receiver's client went away without us noticing yet.
            self.detach(current, interrupted=True)
        opening = state.state is State.CONNECTING
        result = state.attach(self._loop.time())
        if result is Attach.ACCEPTED:
            self._receiver = receiver
            if receiver.checks_liveness:
                self.endpoint.watch_receiver(self)
            if opening:
                self._task = self._loop.create_task(self._run_handler())
            self._schedule()
        return result

    def holds(self, receiver: Receiver) -> bool:
        """Whether ``receiver`` is still the attached receiving connection."""
        return self._receiver is receiver

    def next_frame(self) -> str | None:
        """The next frame for the attached receiver, or ``None``."""
        state = self._state
        if not state.has_frame():
            return None  # a flush's last call: no clock read
        now = self._loop.time()
        frame = state.next_frame(now)
        if frame is not None:
            # The next heartbeat (now its only deadline) may be due before the armed timer.
            if self._timer is None or now + state.heartbeat_delay < self._timer_at:
                self._schedule()
            if self._writable is not None:
                self._taken()
        return frame

    def take_raw(self) -> list[str | bytes]:
        """Everything queued, as plain texts or bytes (binary messages) (raw websocket)."""
        state = self._state
        now = self._loop.time()
        queue = state.take_queue(now)
        if self._timer is None or now + state.heartbeat_delay < self._timer_at:
            self._schedule()  # as in next_frame
        if self._writable is not None:
            self._taken()
        return queue

    async def wait_frame(self, receiver: Receiver) -> None:
        """Wait until ``receiver`` has something to send, was superseded, or should re-check its client."""
        if self._state.has_frame() or self._receiver is not receiver:
            return
        await receiver.wait()

    def poke(self) -> None:
        """Wake the attached receiver so it re-checks its connection."""
        if self._receiver is not None:
            self._receiver.wake()

    def receiver_alive(self) -> bool:
        """Whether the attached receiver's client is still connected (True when none or unknown)."""
        return self._receiver is None or self._receiver.alive()

    @property
    def receiver_attached(self) -> bool:
        """Whether a receiving connection is attached."""
        return self._state.attached

    def detach(self, receiver: Receiver, *, interrupted: bool = False) -> None:
        """``receiver`` ended (``interrupted``: its client went away mid-request)."""
        if self._receiver is not receiver:
            return
        self._receiver = None
        self.endpoint.unwatch_receiver(self)
        receiver.wake()
        self._state.detach(self._loop.time(), interrupted=interrupted)
        if interrupted:
            self._log.debug("receiving connection interrupted")
        self._after_change()

    def transport_closed(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """The websocket carrying this session ended; the session ends with it."""
        receiver = self._receiver
        self._receiver = None
        self._state.transport_closed(code, reason)
        if receiver is not None:
            receiver.wake()
        self._after_change()

    async def deliver_all(self, messages: Sequence[str | bytes]) -> None:
        """Hand client messages to the handler in slices of ``max_receive_queue``,
        waiting while it is behind and yielding between slices, so that one big
        frame or request never holds the event loop (or other sessions) for long."""
        step = self._max_inbox
        if len(messages) <= step:
            self.deliver(messages)
            await self.drained()
            return
        for start in range(0, len(messages), step):
            if self._state.closed_for_app:
                return
            self.deliver(messages[start : start + step])
            await self.drained()
            await asyncio.sleep(0)

    def take(self, messages: Sequence[str | bytes]) -> Awaitable[None] | None:
        """:meth:`deliver_all` without a coroutine where nothing need wait: ``None`` once delivered with
        the handler keeping up, else what to await before the next messages (a web layer that pushes
        messages as they arrive stops reading meanwhile)."""
        if len(messages) > self._max_inbox:
            return self.deliver_all(messages)
        self.deliver(messages)
        if len(self._inbox) > self._max_inbox and not self._state.closed_for_app:
            return self.drained()
        return None

    def deliver(self, messages: Collection[str | bytes]) -> None:
        """Client messages arrived (dropped once the session is closed); bytes only on binary sessions."""
        if self._state.closed_for_app:
            return
        self._counters.messages_in += len(messages)
        inbox = self._inbox
        if inbox is _NO_MESSAGES:
            inbox = self._inbox = deque()
        inbox.extend(messages)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def drained(self) -> None:
        """Back-pressure: wait while the handler has more than ``max_receive_queue`` unread messages."""
        while len(self._inbox) > self._max_inbox and not self._state.closed_for_app:
            drain = self._drain
            if drain is None:
                drain = self._drain = self._loop.create_future()
            await drain

    # -- internals -----------------------------------------------------------

    async def _run_handler(self) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            self._log.debug("open via %s from %s", self.transport, self.remote)
        try:
            await self.endpoint.handler(self)
        except asyncio.CancelledError:
            if not self._state.closed_for_app:
                raise
        except Exception:
            self._log.exception("handler failed")
            self.close_nowait(CloseCode.INTERNAL_ERROR, CLOSE_REASONS[CloseCode.INTERNAL_ERROR])
        else:
            self.close_nowait()

    def _wake_receiver(self) -> None:
        if self._receiver is not None:
            self._receiver.wake()

    def _after_change(self) -> None:
        """Propagate a state change: wake waiters, re-arm the timer, finish if over."""
        state = self._state
        if state.has_frame():
            self._wake_receiver()
        if state.closed_for_app:
            self._closing()
        if state.state is _CLOSED:
            self._finish()
        else:
            self._schedule()

    def _closing(self) -> None:
        if self._closing_done:
            return
        self._closing_done = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if logger.isEnabledFor(logging.DEBUG):
            self._log.debug("closed: %s %s", self._state.close_code, self._state.close_reason)
        self._wake_receiver()
        for waiter in (self._reader, self._drain, self._writable):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        task = self._task
        if task is not None and not task.done():
            self._loop.call_later(self.endpoint.options.close_timeout, _cancel_task, task)
        self.endpoint.session_closing(self)

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_receiver()
        self.endpoint.session_ended(self)

    def _schedule(self) -> None:
        deadline = self._state.next_deadline()
        timer = self._timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        # Re-arm lazily: a later deadline is picked up when the earlier timer fires.
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        state = self._state
        was_open = not state.closed_for_app
        state.tick(self._loop.time())
        if was_open and state.slow_consumer:
            self._counters.send_timeout_closes += 1
            self._log.warning("client took nothing for %s s, closing as a slow consumer", state.send_timeout)
            receiver = self._receiver
            if receiver is not None:
                # Its pending write may never end: drop the connection.
                receiver.abort()
        self._after_change()


def _cancel_task(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()


def push_to_all(sessions: Sequence[Session], encoded: str, message: str, counters: EndpointCounters) -> None:
    """Queue one broadcast message for every session of ``sessions`` (a snapshot: pushing
    may close a session): ``encoded`` for SockJS sessions, ``message`` as it is for raw
    websocket ones.

    The clock is read once and the counters updated once for all of them (a
    broadcast counts once per session, as :meth:`Session.push_encoded` does):
    per session, only the high-water mark is compared.
    """
    if not sessions:
        return
    size = len(encoded)
    raw_size = len(message)
    raw = 0
    high = counters.queued_bytes_high_water
    now = sessions[0]._loop.time()
    for session in sessions:
        if session._raw:
            raw += 1
            queued = session._push(message, raw_size, now)
        else:
            queued = session._push(encoded, size, now)
        if queued > high:
            high = queued
    framed = len(sessions) - raw
    counters.messages_out += framed + raw
    counters.bytes_out += framed * size + raw * raw_size
    counters.queued_bytes_high_water = high
