"""The websocket transports: SockJS-framed ``/<server>/<session>/websocket`` and raw ``/websocket``.

Only RFC 6455 websockets: the hixie-76 draft (unmasked frames, a handshake
with a body of unknown length) is refused with 400 on purpose.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.http_exceptions import InvalidHeader

from ..core.dispatch import websocket_refusal
from ..core.http import error_answer
from ..core.state import CloseCode
from ..runtime.endpoint import Endpoint
from ..runtime.pump import (
    MESSAGE_TOO_BIG,
    Close,
    decode_framed,
    decode_raw,
    flush_frames,
    flush_raw,
    on_binary,
    on_client_close,
    on_text,
    too_big,
)
from ..runtime.session import Receiver, Session
from .transports import abort_connection, response

__all__ = ["quiet_hixie76_refusals", "raw_websocket", "websocket"]

logger = logging.getLogger(__name__)

_SEND_ERRORS = (ConnectionError, ClientConnectionResetError, RuntimeError)


def _handshake_error(request: web.Request, endpoint: Endpoint) -> web.StreamResponse | None:
    """The answer to a request that must not become a websocket, or ``None``."""
    options = endpoint.options
    refusal = websocket_refusal(request, options, endpoint.shutting_down)
    if refusal is not None:
        return response(refusal)
    upgrade = request.headers.getall("Upgrade", ())
    if len(upgrade) != 1 or upgrade[0].strip().lower() != "websocket":
        # One Upgrade header naming websocket alone: a proxy and this server must
        # not disagree on which protocol the connection switches to.
        return response(error_answer(request, options, 400, 'Can "Upgrade" only to "WebSocket".', cors=False))
    connection = {token.strip().lower() for token in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in connection:
        return response(error_answer(request, options, 400, '"Connection" must be "Upgrade".', cors=False))
    return None


async def _accept(
    request: web.Request, endpoint: Endpoint, subprotocol: str | None = None, **kwargs: object
) -> web.WebSocketResponse | web.StreamResponse:
    error = _handshake_error(request, endpoint)
    if error is not None:
        return error
    # aiohttp picks in the client's order and reads only the first header: pass only the
    # one selected, and answer it ourselves (RFC 6455 allows the offer in several headers).
    protocols = (subprotocol,) if subprotocol is not None else ()
    # aiohttp refuses a message of exactly max_msg_size; ours is accepted (README: "bigger closes").
    ws = web.WebSocketResponse(
        max_msg_size=endpoint.options.max_message_size + 1,
        protocols=protocols,
        autoclose=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if subprotocol is not None:
        ws.headers["Sec-WebSocket-Protocol"] = subprotocol
    if not ws.can_prepare(request).ok:
        return response(error_answer(request, endpoint.options, 400, "Not a valid websocket request.", cors=False))
    await ws.prepare(request)
    return ws


def _new_session(request: web.Request, endpoint: Endpoint, session_id: str, transport: str, **kwargs: Any) -> Session:
    return endpoint.new_session(
        session_id, transport, remote=request.remote, headers=request.headers,
        query_string=request.rel_url.raw_query_string, addressable=False, **kwargs,
    )  # fmt: skip


async def websocket(request: web.Request, endpoint: Endpoint, session_id: str) -> web.StreamResponse:
    """SockJS over websocket: frames out, JSON arrays (or single strings) in."""
    ws = await _accept(request, endpoint)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    session = _new_session(request, endpoint, session_id, "websocket")
    decode = partial(decode_framed, max_messages=endpoint.options.max_messages_per_frame)
    await _serve(request, ws, endpoint, session, decode)
    return ws


_FRAME_HEADER = 14
"""The longest websocket frame header, in bytes."""


class _Flush:
    """An aiohttp websocket's flush, awaited by the endpoint's shared flush task (which
    writes every session a broadcast woke).

    aiohttp waits for a client only while the connection's writing is paused, which
    the transport does once its buffer goes above its high-water mark: a frame that
    keeps the buffer below the mark is written here at once, as nearly every frame
    is. What might wait (a frame that would fill the buffer, a client that stopped
    reading, deflate, the close) is handed back undone: it runs until it has to wait,
    then in a task of its own (:class:`~sockjs_server.runtime.session.FlushQueue`), so a
    stalled client holds up no other session, and the common case costs no task and
    no coroutine beyond the writes.
    """

    __slots__ = ("_ws", "_session", "_transport", "_protocol", "_high")

    def __init__(self, ws: web.WebSocketResponse, session: Session, request: web.Request) -> None:
        self._ws = ws
        self._session = session
        self._transport = transport = request.transport
        self._protocol = request.protocol
        high = 0  # no room ever: every write is handed back
        if transport is not None and not ws.compress:
            try:
                high = transport.get_write_buffer_limits()[1]
            except NotImplementedError:
                pass
        self._high = high

    def _room(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes is written without pausing (so without waiting)."""
        transport = self._transport
        return (
            transport is not None
            and not self._protocol.writing_paused
            and transport.get_write_buffer_size() + size + _FRAME_HEADER < self._high
        )

    async def frames(self) -> Coroutine[Any, Any, None] | None:
        """The SockJS-framed websocket's flush."""
        session = self._session
        while True:
            frame = session.next_frame()
            if frame is None:
                return None
            transport = self._transport  # self._room, inlined: this runs once per session a broadcast wakes
            if (
                frame[0] == "c"
                or transport is None
                or self._protocol.writing_paused
                or transport.get_write_buffer_size() + (len(frame) if frame.isascii() else 4 * len(frame))
                >= self._high - _FRAME_HEADER
            ):
                return flush_frames(self._ws, session, _SEND_ERRORS, frame)
            try:
                await self._ws.send_str(frame)
            except _SEND_ERRORS:
                session.transport_closed(CloseCode.INTERRUPTED)
                return None

    async def raw(self) -> Coroutine[Any, Any, None] | None:
        """The raw websocket's flush."""
        session = self._session
        ws = self._ws
        while True:
            messages = session.take_raw()
            for index, message in enumerate(messages):
                if isinstance(message, bytes):
                    size = len(message)
                else:
                    size = len(message) if message.isascii() else 4 * len(message)
                if not self._room(size):
                    return flush_raw(ws, session, _SEND_ERRORS, messages[index:])
                try:
                    if isinstance(message, bytes):
                        await ws.send_bytes(message)
                    else:
                        await ws.send_str(message)
                except UnicodeEncodeError:  # a lone surrogate, nothing written: flush_raw replaces it
                    return flush_raw(ws, session, _SEND_ERRORS, messages[index:])
                except _SEND_ERRORS:
                    session.transport_closed(CloseCode.INTERRUPTED)
                    return None
            if session.closed:
                return flush_raw(ws, session, _SEND_ERRORS, ())  # the close
            if not messages:
                return None


class _QuietHixie76(logging.Filter):
    """aiohttp refuses a hixie-76 handshake (``Sec-WebSocket-Key1``) with 400 in its
    parser and logs an ERROR with a traceback for each, which any client can trigger:
    keep the 400, log one DEBUG line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        error = info[1] if info else None
        if not isinstance(error, InvalidHeader) or "Sec-WebSocket-Key1" not in str(error):
            return True
        if not logger.isEnabledFor(logging.DEBUG):
            return False
        record.msg = "refused a hixie-76 websocket handshake (unsupported): %s"
        record.args = (getattr(error, "message", str(error)),)
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.DEBUG
        record.levelname = "DEBUG"
        return True


_HIXIE76_FILTER = _QuietHixie76()


def quiet_hixie76_refusals() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    server_logger = logging.getLogger("aiohttp.server")
    if _HIXIE76_FILTER not in server_logger.filters:
        server_logger.addFilter(_HIXIE76_FILTER)


async def _serve(
    request: web.Request,
    ws: web.WebSocketResponse,
    endpoint: Endpoint,
    session: Session,
    decode: Callable[[str], list[str]],
    raw: bool = False,
) -> None:
    """Read client messages into the session; its frames are written by the
    receiver's flushes. The session ends with the websocket."""
    flush = _Flush(ws, session, request)
    receiver = Receiver(
        flush=flush.raw if raw else flush.frames,
        queue=endpoint.flush_queue,
        write=ws.send_str,
        abort=partial(abort_connection, request),
    )
    session.attach(receiver)
    receiver.wake()  # the open frame
    close_code: int = CloseCode.NORMAL
    # aiohttp checks a deflated message's size after inflating with ">" and a plain one
    # with ">=": it is given limit + 1, so inflated ones are checked here.
    limit = endpoint.options.max_message_size if ws.compress else 0
    close: Close | None = None
    try:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                if limit and too_big(msg.data, limit):
                    close = MESSAGE_TOO_BIG, b"Message too big."
                else:
                    close = await on_text(session, endpoint, decode, msg.data)
            elif kind is WSMsgType.BINARY:
                if limit and too_big(msg.data, limit):
                    close = MESSAGE_TOO_BIG, b"Message too big."
                else:
                    close = await on_binary(session, endpoint, msg.data)
            elif kind is WSMsgType.CLOSE:
                # Answered here, not by aiohttp, which echoes 1000 to codes RFC 6455 forbids.
                close = on_client_close(msg.data)
                if close is None:
                    await ws.close(drain=False)
                    break
                close_code = close[0]
                await ws.close(code=close_code, message=close[1], drain=False)
                break
            elif kind is WSMsgType.CLOSING or kind is WSMsgType.CLOSED:
                break
            else:  # ERROR: aiohttp already closed it (1009 too big, 1007 invalid UTF-8, ...)
                close_code = ws.close_code or CloseCode.INTERRUPTED
                break
            if close is not None:
                close_code = close[0]
                await ws.close(code=close_code, message=close[1])
                break
    except _SEND_ERRORS:
        close_code = CloseCode.INTERRUPTED
    finally:
        if ws.close_code is not None and close_code == CloseCode.NORMAL:
            close_code = ws.close_code
        session.transport_closed(close_code)


async def raw_websocket(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    """Plain websocket, no SockJS framing: one websocket message is one message.

    No ``h`` frames here, so websocket pings every ``heartbeat_delay`` find dead peers.
    The handler's :class:`~sockjs_server.core.options.WebsocketProfile` selects the
    subprotocol and whether binary messages are carried (else they close with 1003).
    """
    offered = [name for header in request.headers.getall("Sec-WebSocket-Protocol", ()) for name in header.split(",")]
    subprotocol = endpoint.websocket_profile.select(offered)
    ws = await _accept(request, endpoint, subprotocol, heartbeat=endpoint.options.heartbeat_delay)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    session = _new_session(request, endpoint, "", "websocket-raw", raw=True, subprotocol=subprotocol)
    await _serve(request, ws, endpoint, session, decode_raw, raw=True)
    return ws
