"""The websocket transports: SockJS-framed ``/<server>/<session>/websocket`` and raw ``/websocket``.

Only RFC 6455 websockets: the hixie-76 draft (unmasked frames, a handshake
with a body of unknown length) is refused with 400 on purpose.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.http_exceptions import InvalidHeader

from .endpoint import Endpoint
from .framing import PayloadError, decode_payload
from .http import abort_connection, error_response, origin_allowed
from .session import Receiver, Session
from .state import CloseCode

__all__ = ["forbidden_close_code", "quiet_hixie76_refusals", "raw_websocket", "websocket"]

logger = logging.getLogger(__name__)

_SEND_ERRORS = (ConnectionError, ClientConnectionResetError, RuntimeError)


def _handshake_error(request: web.Request, endpoint: Endpoint) -> web.StreamResponse | None:
    """The answer to a request that must not become a websocket, or ``None``."""
    options = endpoint.options
    if not origin_allowed(request, options):
        # Cross-site websocket hijacking: browsers always send Origin on websocket handshakes.
        return error_response(request, options, 403, "Origin not allowed.", cors=False)
    upgrade = request.headers.getall("Upgrade", ())
    if len(upgrade) != 1 or upgrade[0].strip().lower() != "websocket":
        # One Upgrade header naming websocket alone: a proxy and this server must
        # not disagree on which protocol the connection switches to.
        return error_response(request, options, 400, 'Can "Upgrade" only to "WebSocket".', cors=False)
    connection = {token.strip().lower() for token in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in connection:
        return error_response(request, options, 400, '"Connection" must be "Upgrade".', cors=False)
    if endpoint.shutting_down:
        return error_response(request, options, 503, "Server shutting down.", cors=False)
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
        return error_response(request, endpoint.options, 400, "Not a valid websocket request.", cors=False)
    await ws.prepare(request)
    return ws


async def websocket(request: web.Request, endpoint: Endpoint, session_id: str) -> web.StreamResponse:
    """SockJS over websocket: frames out, JSON arrays (or single strings) in."""
    ws = await _accept(request, endpoint)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    session = endpoint.new_session(request, session_id, "websocket", addressable=False)
    decode = partial(_decode_framed, max_messages=endpoint.options.max_messages_per_frame)
    await _serve(request, ws, endpoint, session, decode, _flush_frames)
    return ws


CONGESTED = 16 * 1024
"""Bytes waiting in a websocket's send buffer above which it is flushed in a task of its own."""


def _congested(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.get_write_buffer_size() > CONGESTED


def _decode_framed(data: str, max_messages: int) -> list[str]:
    if not data:
        return []  # sockjs-protocol, Websocket: "Server must ignore empty messages."
    return decode_payload(data, allow_single=True, max_messages=max_messages)


def _too_big(data: str | bytes, limit: int) -> bool:
    if isinstance(data, str):
        # A character is one to four bytes in UTF-8: count them only near the limit.
        return len(data) * 4 > limit and len(data.encode("utf-8", "surrogatepass")) > limit
    return len(data) > limit


def forbidden_close_code(code: int) -> bool:
    """Whether a client's close frame carries a code RFC 6455 forbids on the wire.

    RFC 6455 7.4: 1004-1006 and 1015 are reserved or "MUST NOT be set as a
    status code in a Close control frame"; below 1000 and 1016-2999 are not
    assigned; 3000-4999 are for libraries and applications. (0: no code given.)
    """
    if code == 0:
        return False
    return code < 1000 or 1004 <= code <= 1006 or 1015 <= code <= 2999 or code >= 5000


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


def _decode_raw(data: str) -> list[str]:
    return [data]


async def _serve(
    request: web.Request,
    ws: web.WebSocketResponse,
    endpoint: Endpoint,
    session: Session,
    decode: Callable[[str], list[str]],
    flush: Callable[[web.WebSocketResponse, Session], Coroutine[Any, Any, None]],
) -> None:
    """Read client messages into the session; its frames are written by the
    receiver's flushes. The session ends with the websocket."""
    receiver = Receiver(
        flush=partial(flush, ws, session),
        queue=endpoint.flush_queue,
        congested=partial(_congested, request),
        write=ws.send_str,
        abort=partial(abort_connection, request),
    )
    session.attach(receiver)
    receiver.wake()  # the open frame
    close_code: int = CloseCode.NORMAL
    counters = endpoint.counters
    # aiohttp checks a deflated message's size after inflating with ">" and a plain one
    # with ">=": it is given limit + 1, so inflated ones are checked here.
    limit = endpoint.options.max_message_size if ws.compress else 0
    try:
        while True:
            msg = await ws.receive()
            if limit and msg.type in (WSMsgType.TEXT, WSMsgType.BINARY) and _too_big(msg.data, limit):
                close_code = WSCloseCode.MESSAGE_TOO_BIG
                await ws.close(code=close_code, message=b"Message too big.")
                break
            if msg.type is WSMsgType.TEXT:
                counters.bytes_in += len(msg.data)
                try:
                    messages = decode(msg.data)
                except PayloadError as error:
                    # "When user sends broken data ... the server must abruptly terminate the ws connection."
                    close_code = error.close_code_hint
                    await ws.close(code=close_code, message=error.close_reason.encode())
                    break
                if messages:
                    await session.deliver_all(messages)
            elif msg.type is WSMsgType.CLOSE:
                # Answered here, not by aiohttp, which echoes 1000 to codes RFC 6455 forbids.
                if forbidden_close_code(msg.data):
                    close_code = WSCloseCode.PROTOCOL_ERROR
                    await ws.close(code=close_code, message=b"Invalid close code.", drain=False)
                else:
                    await ws.close(drain=False)
                break
            elif msg.type is WSMsgType.CLOSING or msg.type is WSMsgType.CLOSED:
                break
            elif msg.type is WSMsgType.BINARY and session.binary:
                counters.bytes_in += len(msg.data)
                session.deliver((msg.data,))
                await session.drained()
            elif msg.type is WSMsgType.BINARY:
                close_code = WSCloseCode.UNSUPPORTED_DATA
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"Binary frames are not supported.")
                break
            else:  # ERROR: aiohttp already closed it (1009 too big, 1007 invalid UTF-8, ...)
                close_code = ws.close_code or CloseCode.INTERRUPTED
                break
    except _SEND_ERRORS:
        close_code = CloseCode.INTERRUPTED
    finally:
        if ws.close_code is not None and close_code == CloseCode.NORMAL:
            close_code = ws.close_code
        session.transport_closed(close_code)


async def _flush_frames(ws: web.WebSocketResponse, session: Session) -> None:
    """Write the session's frames; after the close frame, close the websocket."""
    try:
        while True:
            frame = session.next_frame()
            if frame is None:
                return
            await ws.send_str(frame)
            if frame[0] == "c":
                await ws.close()
                return
    except _SEND_ERRORS:
        session.transport_closed(CloseCode.INTERRUPTED)


async def raw_websocket(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    """Plain websocket, no SockJS framing: one websocket message is one message.

    No ``h`` frames here, so websocket pings every ``heartbeat_delay`` find dead peers.
    The handler's :class:`~sockjs_server.options.WebsocketProfile` selects the
    subprotocol and whether binary messages are carried (else they close with 1003).
    """
    offered = [name for header in request.headers.getall("Sec-WebSocket-Protocol", ()) for name in header.split(",")]
    subprotocol = endpoint.websocket_profile.select(offered)
    ws = await _accept(request, endpoint, subprotocol, heartbeat=endpoint.options.heartbeat_delay)
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    session = endpoint.new_session(request, "", "websocket-raw", addressable=False, raw=True, subprotocol=subprotocol)
    await _serve(request, ws, endpoint, session, _decode_raw, _flush_raw)
    return ws


def _replace_lone_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


async def _flush_raw(ws: web.WebSocketResponse, session: Session) -> None:
    """Write queued messages as they are; once the session is closed, close the websocket with its code."""
    try:
        while True:
            messages = session.take_raw()
            for message in messages:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                    continue
                try:
                    await ws.send_str(message)
                except UnicodeEncodeError:
                    # A lone surrogate (it arrived JSON-escaped on another transport)
                    # has no UTF-8 form: send U+FFFD in its place.
                    await ws.send_str(_replace_lone_surrogates(message))
            if session.closed:
                if not ws.closed:
                    code = session.close_code or CloseCode.GO_AWAY
                    reason = (session.close_reason or "").encode()[:120]
                    await ws.close(code=code, message=reason)
                return
            if not messages:
                return
    except _SEND_ERRORS:
        session.transport_closed(CloseCode.INTERRUPTED)
