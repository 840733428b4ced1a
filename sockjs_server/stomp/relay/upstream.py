"""One TCP connection to the broker: the asyncio shell around :class:`UpstreamProtocol`.

It owns the socket, the heart-beat timer and the futures of frames waiting
for the broker's RECEIPT. Everything the broker says is dispatched
synchronously from ``data_received``: MESSAGE frames to ``on_message``, the
end of the connection (ERROR, EOF, heart-beat timeout) once to ``on_lost``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
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


#: Frames written with a receipt request spread over at most this many: a
#: RECEIPT confirms its frame and every earlier one on the connection
#: (RabbitMQ handles a connection's frames in order and closes it on the first
#: it refuses), so asking for one per frame only costs both sides work.
RECEIPT_EVERY = 64


def _unavailable(detail: str) -> BrokerError:
    return BrokerError("Broker not available", detail)


def _busy(detail: str) -> BrokerError:
    return BrokerError("Broker busy", detail)


class Upstream(asyncio.Protocol):
    """A STOMP 1.2 client connection to the broker.

    Create it, ``await open()``, then ``await send(...)`` frames; with
    ``receipt=True`` the call returns only once the broker's RECEIPT arrived
    and raises the broker's ERROR otherwise. :meth:`send_nowait` writes a
    frame with a receipt and returns the future of its confirmation, so that
    many frames can be in flight (pipelining); their bytes are bounded by
    ``max_pending_bytes``: past it the broker is not keeping up (e.g. RabbitMQ
    stopped reading during a memory or disk alarm) and the frame is refused
    with ``Broker busy`` instead of being buffered.
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
        ssl: _ssl.SSLContext | None = None,
        max_pending_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.ssl = ssl
        self.max_pending_bytes = max_pending_bytes
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
        #: Frames waiting for a RECEIPT, in the order written: receipt id -> (their futures, bytes, deadline, hold).
        self._pending: dict[str, tuple[list[asyncio.Future[None]], int, float, bool]] = {}
        #: Frames of this loop iteration, written together by ``_write_batch``: (command, headers, body, future, hold).
        self._batch: list[tuple[Command, list[tuple[str, str]], bytes, asyncio.Future[None] | None, bool]] = []
        #: Futures of frames in ``_batch`` (counted as unconfirmed).
        self._batched = 0
        self.pending_bytes = 0
        self._receipt_timer: asyncio.TimerHandle | None = None
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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def local_port(self) -> int | None:
        """The port of this end of the connection (None when closed): tells connections apart in logs and tests."""
        transport = self._transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return int(sockname[1]) if sockname else None

    @property
    def unconfirmed(self) -> int:
        """Frames written and not yet confirmed by the broker."""
        return sum(len(futures) for futures, _, _, _ in self._pending.values()) + self._batched

    # --- opening -------------------------------------------------------------

    async def open(self) -> Connected:
        """Connect and log in; raises :class:`BrokerError` when the broker cannot be reached or refuses."""
        try:
            await asyncio.wait_for(self._open(), self.connect_timeout)
        except asyncio.TimeoutError:
            self._abort(_unavailable(f"no answer from {self.host}:{self.port} within {self.connect_timeout:g} s"))
            raise _unavailable(f"no answer from {self.host}:{self.port} within {self.connect_timeout:g} s") from None
        except _ssl.SSLCertVerificationError as exc:
            self._abort(_unavailable("TLS certificate not trusted"))
            raise _unavailable(
                f"TLS certificate of {self.host}:{self.port} not trusted: {exc.verify_message or exc.reason}"
            ) from None
        except _ssl.SSLError as exc:
            self._abort(_unavailable("TLS handshake failed"))
            raise _unavailable(f"TLS handshake with {self.host}:{self.port} failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise _unavailable(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        except BaseException:
            self._abort(_unavailable("connection attempt abandoned"))
            raise
        return self._connected.result()

    async def _open(self) -> None:
        if self.ssl is not None:
            await self._loop.create_connection(
                lambda: self, self.host, self.port, ssl=self.ssl, server_hostname=self.host,
                ssl_handshake_timeout=self.connect_timeout,
            )
        else:
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
            entry = self._pending.pop(event.receipt_id, None)
            if entry is not None:
                futures, size, _, hold = entry
                self.pending_bytes -= size
                for earlier in futures[:-1]:
                    if not earlier.done():
                        earlier.set_result(None)
                future = futures[-1]
                if not future.done():
                    future.set_result(None)
                    if hold:
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
        reported = self._fail_pending(error)
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

    def _fail_pending(self, error: StompError) -> bool:
        """Every unconfirmed frame fails with ``error``; True if there was one."""
        reported = False
        pending = list(self._pending.values())
        self._pending.clear()
        batch, self._batch = self._batch, []
        pending += [([future], 0, 0.0, hold) for _, _, _, future, hold in batch if future is not None]
        self._batched = 0
        self.pending_bytes = 0
        if self._receipt_timer is not None:
            self._receipt_timer.cancel()
            self._receipt_timer = None
        for futures, _, _, _ in pending:
            for future in futures:
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # the waiter re-raises it; no "never retrieved" noise if it went away
                    reported = True
        return reported

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

    def _check_open(self) -> None:
        if self.protocol.state is not UpstreamState.CONNECTED or self._transport is None:
            failure = self.failure
            if failure is not None:
                raise BrokerError(failure.message, failure.detail)
            raise _unavailable("the broker connection is not open")

    def send_nowait(
        self, command: Command, headers: Iterable[tuple[str, str]], body: bytes = b"", *, hold: bool = False
    ) -> asyncio.Future[None]:
        """Write a frame with a receipt; the future completes when the broker confirms it.

        Raises :class:`BrokerError` at once when the connection is not open or
        when ``max_pending_bytes`` of unconfirmed frames are already in flight
        (``Broker busy``); the future fails with the broker's ERROR, or with
        ``Broker receipt timeout`` (which ends the connection) when no RECEIPT
        comes within ``receipt_timeout``. ``hold``: events after the RECEIPT
        wait until the caller resumed (see ``_holding``).
        """
        self._check_open()
        size = len(body) + 200
        if self.pending_bytes + size > self.max_pending_bytes and (self._pending or self._batched):
            raise _busy(
                f"the broker at {self.address} is not accepting messages fast enough "
                f"({self.pending_bytes} bytes unconfirmed; is a resource alarm raised?)"
            )
        # Receipts on the broker connection are the relay's own: a client's
        # receipt header must never reach the broker (the first one would win).
        pairs = [pair for pair in headers if pair[0] != "receipt"]
        future: asyncio.Future[None] = self._loop.create_future()
        self.pending_bytes += size
        self._batched += 1
        self._queue(command, pairs, body, future, hold)
        self.frames_sent += 1
        return future

    def _queue(
        self, command: Command, pairs: list[tuple[str, str]], body: bytes, future: asyncio.Future[None] | None, hold: bool
    ) -> None:
        if not self._batch:
            self._loop.call_soon(self._write_batch)
        self._batch.append((command, pairs, body, future, hold))

    def _write_batch(self) -> None:
        """Write this iteration's frames at once, asking for a receipt every RECEIPT_EVERY
        frames, on a frame some caller holds for, and on the last one."""
        batch, self._batch = self._batch, []
        self._batched = 0
        if not batch or self.protocol.state is not UpstreamState.CONNECTED or self._transport is None:
            return  # failed meanwhile: _fail_pending answered their futures
        proto = self.protocol
        now = self._loop.time()
        group: list[asyncio.Future[None]] = []
        size = 0
        last = max((i for i, item in enumerate(batch) if item[3] is not None), default=-1)
        for i, (command, pairs, body, future, hold) in enumerate(batch):
            if future is not None:
                group.append(future)
                size += len(body) + 200
                if hold or i == last or len(group) >= RECEIPT_EVERY:
                    receipt_id = proto.next_receipt_id()
                    pairs.append(("receipt", receipt_id))
                    self._pending[receipt_id] = (group, size, now + self.receipt_timeout, hold)
                    group, size = [], 0
            proto.send(command, pairs, body, now=now)
        if self._pending and self._receipt_timer is None:
            self._receipt_timer = self._loop.call_at(now + self.receipt_timeout, self._on_receipt_timer)
        self._flush()

    def _on_receipt_timer(self) -> None:
        """Receipts come in order: only the oldest unconfirmed frame can be late."""
        self._receipt_timer = None
        if not self._pending:
            return
        oldest = next(iter(self._pending.values()))
        now = self._loop.time()
        if oldest[2] > now:
            self._receipt_timer = self._loop.call_at(oldest[2], self._on_receipt_timer)
            return
        error = BrokerError("Broker receipt timeout", f"no RECEIPT from {self.address} within {self.receipt_timeout:g} s")
        self._dispatch(self.protocol.fail(error))

    async def send(
        self, command: Command, headers: Iterable[tuple[str, str]], body: bytes = b"", *, receipt: bool = False
    ) -> None:
        """Write a frame; with ``receipt`` wait for the broker to confirm it.

        Raises :class:`BrokerError` when the connection is not open, when the
        broker answers ERROR, or when no RECEIPT comes within ``receipt_timeout``.
        """
        if receipt:
            future = self.send_nowait(command, headers, body, hold=True)
            try:
                await asyncio.shield(future)
            except StompError as exc:
                # One failure may end many waiters: each gets its own copy (the
                # server fills in the receipt-id of the frame that failed).
                raise BrokerError(exc.message, exc.detail) from None
            finally:
                if self._holding is future:
                    # Resumed after the caller's synchronous follow-up (its client's RECEIPT).
                    self._loop.call_soon(self._release, future)
            return
        self._check_open()
        pairs = [pair for pair in headers if pair[0] != "receipt"]
        self._queue(command, pairs, body, None, False)
        self.frames_sent += 1

    # --- closing -------------------------------------------------------------

    def close(self) -> None:
        """Send DISCONNECT and close; ``on_lost`` is not called."""
        self._lost_reported = True
        proto = self.protocol
        if proto.state is UpstreamState.CONNECTED:
            self._write_batch()
            proto.disconnect(self._loop.time())
            self._flush()
        proto.fail(BrokerError("Broker connection closed", "closed by the relay"))
        self._fail_pending(proto.failure or _unavailable("closed"))
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
        return {
            "frames_sent": self.frames_sent,
            "messages_received": self.messages_received,
            "unconfirmed": self.unconfirmed,
            "unconfirmed_bytes": self.pending_bytes,
        }
