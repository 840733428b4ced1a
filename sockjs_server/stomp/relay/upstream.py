"""One TCP connection to the broker: the asyncio shell around :class:`UpstreamProtocol`.

It owns the socket, the heart-beat timer and the futures of frames waiting
for the broker's RECEIPT. Everything the broker says is dispatched
synchronously from ``data_received``: MESSAGE frames to ``on_message``, the
end of the connection (ERROR, EOF, heart-beat timeout) once to ``on_lost``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import BrokerError, StompError
from ..frames import Command, Frame
from .protocol import BrokerFailure, Connected, Delivery, Receipt, UpstreamEvent, UpstreamProtocol, UpstreamState

__all__ = ["Upstream", "OnLost", "OnMessage"]

logger = logging.getLogger(__name__)

#: ``on_message(frame)``: a MESSAGE frame from the broker.
OnMessage = Callable[[Frame], None]
#: ``on_lost(error, reported)``: the connection died; ``reported`` is True when
#: ``error`` was already raised to a caller waiting for a receipt.
OnLost = Callable[[StompError, bool], None]


def _unavailable(detail: str) -> BrokerError:
    return BrokerError("Broker not available", detail)


class Upstream(asyncio.Protocol):
    """A STOMP 1.2 client connection to the broker.

    Create it, ``await open()``, then ``await send(...)`` frames; with
    ``receipt=True`` the call returns only once the broker's RECEIPT arrived
    and raises the broker's ERROR otherwise.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        login: str | None,
        passcode: str | None,
        virtual_host: str | None,
        heartbeat: tuple[float, float] = (10.0, 10.0),
        heartbeat_tolerance: float = 3.0,
        connect_timeout: float = 10.0,
        receipt_timeout: float = 30.0,
        on_message: OnMessage | None = None,
        on_lost: OnLost | None = None,
        name: str = "upstream",
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.connect_timeout = connect_timeout
        self.receipt_timeout = receipt_timeout
        self.on_message = on_message
        self.on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self.protocol = UpstreamProtocol(
            login=login,
            passcode=passcode,
            virtual_host=virtual_host,
            heartbeat=heartbeat,
            heartbeat_tolerance=heartbeat_tolerance,
            now=self._loop.time(),
        )
        self._transport: asyncio.Transport | None = None
        self._connected: asyncio.Future[Connected] = self._loop.create_future()
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._paused: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lost_reported = False
        #: A confirmed frame whose caller has not resumed yet: later events wait for it.
        self._holding: asyncio.Future[None] | None = None
        #: The socket closed while events were held: (exception,) to report after them.
        self._lost_exc: tuple[Exception | None] | None = None
        #: Frames written and MESSAGE frames received, for statistics.
        self.frames_sent = 0
        self.messages_received = 0

    def __repr__(self) -> str:
        return f"<Upstream {self.name} {self.protocol.state.value}>"

    @property
    def connected(self) -> bool:
        return self.protocol.state is UpstreamState.CONNECTED

    @property
    def session(self) -> str | None:
        """The broker's session id (from CONNECTED)."""
        return self.protocol.session

    @property
    def failure(self) -> StompError | None:
        return self.protocol.failure

    # --- opening -------------------------------------------------------------

    async def open(self) -> Connected:
        """Connect and log in; raises :class:`BrokerError` when the broker cannot be reached or refuses."""
        try:
            await asyncio.wait_for(self._open(), self.connect_timeout)
        except asyncio.TimeoutError:
            self._abort(_unavailable(f"no answer from {self.host}:{self.port} within {self.connect_timeout:g} s"))
            raise _unavailable(f"no answer from {self.host}:{self.port} within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise _unavailable(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        except BaseException:
            self._abort(_unavailable("connection attempt abandoned"))
            raise
        return self._connected.result()

    async def _open(self) -> None:
        await self._loop.create_connection(lambda: self, self.host, self.port)
        self.protocol.connect(self._loop.time())
        self._flush()
        await asyncio.shield(self._connected)

    # --- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data, self._loop.time())
        self._process()

    def _process(self) -> None:
        proto = self.protocol
        while self._holding is None:
            event = proto.next_event()
            if event is None:
                break
            self._dispatch(event)

    def _release(self, future: asyncio.Future[None]) -> None:
        if self._holding is future:
            self._holding = None
            self._process()
            lost = self._lost_exc
            if lost is not None and self._holding is None:
                self._lost_exc = None
                self._lost(lost[0])

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        if self._holding is not None:
            # What the broker said before closing (often its ERROR) is still
            # held behind a RECEIPT: the loss is handled once that is read.
            self._lost_exc = (exc,)
            return
        self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        if self.protocol.state is not UpstreamState.CLOSED:
            reason = f"connection to {self.host}:{self.port} lost" + (f": {exc}" if exc else "")
            self._dispatch(self.protocol.fail(BrokerError("Broker connection lost", reason)))
        self._cancel_timer()

    def pause_writing(self) -> None:
        if self._paused is None or self._paused.done():
            self._paused = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        self._paused = None

    # --- events --------------------------------------------------------------

    def _dispatch(self, event: UpstreamEvent) -> None:
        if type(event) is Delivery:
            self.messages_received += 1
            if self.on_message is not None:
                self.on_message(event.frame)
        elif type(event) is Receipt:
            future = self._pending.pop(event.receipt_id, None)
            if future is not None and not future.done():
                future.set_result(None)
                # What the broker said after this RECEIPT waits until the caller
                # has answered its own client: a MESSAGE RabbitMQ sent after the
                # RECEIPT of an ACK, NACK or SUBSCRIBE must follow that RECEIPT.
                self._holding = future
        elif type(event) is Connected:
            if not self._connected.done():
                self._connected.set_result(event)
            self._arm_timer()
        else:
            assert type(event) is BrokerFailure
            self._failed(event)

    def _failed(self, event: BrokerFailure) -> None:
        error = event.error
        if not self._connected.done():
            self._connected.set_exception(error)
            self._connected.exception()  # mark retrieved: open() re-raises it
        reported = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # the waiter re-raises it; no "never retrieved" noise if it went away
                reported = True
        self._pending.clear()
        self._cancel_timer()
        transport = self._transport
        if transport is not None:
            transport.close()
        if self._connected.done() and not self._connected.cancelled() and self._connected.exception() is None:
            # INFO: a client's bad destination ends its own connection; the
            # relay logs the loss of the shared ones as a WARNING.
            logger.info("%s: broker connection ended: %s", self.name, error)
            if not self._lost_reported and self.on_lost is not None:
                self._lost_reported = True
                self.on_lost(error, reported)

    def _abort(self, error: StompError) -> None:
        if self.protocol.state is not UpstreamState.CLOSED:
            self.protocol.fail(error)
        if not self._connected.done():
            self._connected.cancel()
        transport = self._transport
        if transport is not None:
            transport.abort()
        self._cancel_timer()

    # --- sending -------------------------------------------------------------

    def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    async def send(
        self, command: Command, headers: Iterable[tuple[str, str]], body: bytes = b"", *, receipt: bool = False
    ) -> None:
        """Write a frame; with ``receipt`` wait for the broker to confirm it.

        Raises :class:`BrokerError` when the connection is not open, when the
        broker answers ERROR, or when no RECEIPT comes within ``receipt_timeout``.
        """
        proto = self.protocol
        if proto.state is not UpstreamState.CONNECTED or self._transport is None:
            failure = self.failure
            if failure is not None:
                raise BrokerError(failure.message, failure.detail)
            raise _unavailable("the broker connection is not open")
        future: asyncio.Future[None] | None = None
        # Receipts on the broker connection are the relay's own: a client's
        # receipt header must never reach the broker (the first one would win).
        headers = [pair for pair in headers if pair[0] != "receipt"]
        if receipt:
            receipt_id = proto.next_receipt_id()
            future = self._loop.create_future()
            self._pending[receipt_id] = future
            headers.append(("receipt", receipt_id))
        proto.send(command, headers, body, now=self._loop.time())
        self.frames_sent += 1
        self._flush()
        if self._paused is not None:
            await asyncio.shield(self._paused)
        if future is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(future), self.receipt_timeout)
        except StompError as exc:
            # One failure may end many waiters: each gets its own copy (the
            # server fills in the receipt-id of the frame that failed).
            raise BrokerError(exc.message, exc.detail) from None
        except asyncio.TimeoutError:
            error = BrokerError("Broker receipt timeout", f"no RECEIPT for {command.value} within {self.receipt_timeout:g} s")
            self._dispatch(proto.fail(error))
            raise error from None
        finally:
            if self._holding is future:
                # Resumed after the caller's synchronous follow-up (its client's RECEIPT).
                self._loop.call_soon(self._release, future)

    # --- closing -------------------------------------------------------------

    def close(self) -> None:
        """Send DISCONNECT and close; ``on_lost`` is not called."""
        self._lost_reported = True
        proto = self.protocol
        if proto.state is UpstreamState.CONNECTED:
            proto.disconnect(self._loop.time())
            self._flush()
        proto.fail(BrokerError("Broker connection closed", "closed by the relay"))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(proto.failure or _unavailable("closed"))
                future.exception()
        self._pending.clear()
        if not self._connected.done():
            self._connected.cancel()
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    # --- timer ---------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.protocol.next_deadline()
        if deadline is None:
            return
        self._cancel_timer()
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        failure = self.protocol.on_timer(self._loop.time())
        if failure is not None:
            self._dispatch(failure)
            return
        self._flush()
        self._arm_timer()

    def stats(self) -> dict[str, Any]:
        return {"frames_sent": self.frames_sent, "messages_received": self.messages_received}
