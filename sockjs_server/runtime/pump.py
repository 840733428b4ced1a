"""The transport loops both web layers run: frames out of a session, messages into it.

A web layer brings the connection (a ``write`` coroutine, a websocket with
``send_str``/``send_bytes``/``close``) and reads the request body or the
websocket messages its own way; what to write, when to stop, which close
code a bad message earns and what a send request answers is decided here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol
from urllib.parse import parse_qs

from ..core.envelopes import Envelope
from ..core.framing import EMPTY_PAYLOAD, PayloadError, decode_payload
from ..core.http import NO_CACHE, TEXT_PLAIN, Answer, RequestHead, cors_headers, error_answer, session_cookie
from ..core.state import CloseCode
from .endpoint import Endpoint
from .session import Receiver, Session

__all__ = [
    "WebsocketConnection",
    "decode_framed",
    "decode_raw",
    "flush_frames",
    "flush_raw",
    "forbidden_close_code",
    "on_binary",
    "on_text",
    "one_frame",
    "send_answer",
    "stream_frames",
    "take_binary",
    "take_text",
    "too_big",
]

# RFC 6455 7.4.1 close codes the websocket transports close with.
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009

NO_SESSION = Answer(404, dict(NO_CACHE))
"""``xhr_send``/``jsonp_send`` for a session that does not exist."""


async def one_frame(session: Session, receiver: Receiver) -> str | None:
    """Wait for one frame for a polling request; ``None`` if its client went away."""
    interrupted = True
    try:
        while session.holds(receiver):
            frame = session.next_frame()
            if frame is not None:
                interrupted = False
                return frame
            await session.wait_frame(receiver)
            if not receiver.alive():
                return None
        return None
    finally:
        session.detach(receiver, interrupted=interrupted)


async def stream_frames(
    session: Session,
    receiver: Receiver,
    write: Callable[[bytes], Awaitable[None]],
    envelope: Envelope,
    callback: str,
    limit: int,
    room: Callable[[int], bool] | None = None,
) -> None:
    """Write frames until the close frame, the response limit, or the client going away.

    sockjs-protocol, XhrStreaming: "we should close a streaming request every
    128KiB messages was send" so the browser can free what it buffered.

    Where the layer tells ``room`` (whether that many more bytes are written without waiting),
    :meth:`Session.send` writes a reply directly from the sender's task when it fits, as on a
    websocket; the rest goes through the session's queue and this loop.
    """
    sent = 0
    interrupted = True

    async def direct(frame: str) -> None:
        """:meth:`Session.send`'s direct path: a reply written from the sender's task, as on a
        websocket (this request's task is not woken for it); the limit ends the stream from here."""
        nonlocal sent
        data = envelope.wrap(frame, callback)
        try:
            await write(data)
        except Exception:
            session.detach(receiver, interrupted=True)  # the client went away: the loop below ends
            return
        sent += len(data)
        if sent >= limit:
            receiver.write = None
            receiver.room = None
            session.detach(receiver)

    if room is not None:
        # The envelope's own bytes, and eventsource's percent-encoding (at most 3 bytes per character).
        receiver.room = lambda size: room(3 * size + 16)
        receiver.write = direct
    try:
        while session.holds(receiver):
            if receiver.flushing:
                # A direct write is under way (its client is slow to read): what was queued
                # meanwhile goes after it (Session.send wakes this request then).
                await receiver.wait()
                if not receiver.alive():
                    return
                continue
            frame = session.next_frame()
            if frame is None:
                await session.wait_frame(receiver)
                if not receiver.alive():
                    return
                continue
            data = envelope.wrap(frame, callback)
            receiver.flushing = True  # no direct write between this frame and the next
            try:
                await write(data)
            finally:
                receiver.flushing = False
            sent += len(data)
            if frame[0] == "c" or sent >= limit:
                interrupted = False
                return
        interrupted = False
    finally:
        receiver.write = None
        receiver.room = None
        session.detach(receiver, interrupted=interrupted)


async def send_answer(
    request: RequestHead, endpoint: Endpoint, session: Session, body: bytes | None, content_type: str, form: bool
) -> Answer:
    """``xhr_send`` / ``jsonp_send``: deliver the body's messages and say how it went.

    ``body`` is ``None`` when it was larger than ``max_request_size`` (and not read further).
    """
    options = endpoint.options
    if body is None:
        return error_answer(request, options, 413, "Payload too large.")
    endpoint.counters.bytes_in += len(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return error_answer(request, options, 500, "Broken JSON encoding.")
    try:
        if form and content_type == "application/x-www-form-urlencoded":
            # jsonp_send from a browser form: the payload is the ``d`` field.
            values = parse_qs(text, keep_blank_values=True, max_num_fields=16).get("d")
            text = values[0] if values else ""
        messages = decode_payload(text, max_messages=options.max_messages_per_request)
    except PayloadError as error:
        return error_answer(request, options, error.status_hint, str(error))
    except ValueError:
        return error_answer(request, options, 500, EMPTY_PAYLOAD)
    if messages:
        await session.deliver_all(messages)
    headers = cors_headers(request, options)
    headers.update(NO_CACHE)
    headers["Content-Type"] = TEXT_PLAIN
    cookie = session_cookie(request, options)
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    if form:
        # Konqueror misbehaves on 204, so jsonp_send answers "ok".
        return Answer(200, headers, b"ok")
    return Answer(204, headers)


# -- websockets -------------------------------------------------------------------


class WebsocketConnection(Protocol):
    """The websocket a layer serves (aiohttp's ``WebSocketResponse`` is one as it is)."""

    @property
    def closed(self) -> bool: ...

    async def send_str(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


def decode_framed(data: str, max_messages: int) -> list[str]:
    """Client messages of one SockJS-framed websocket message."""
    if not data:
        return []  # sockjs-protocol, Websocket: "Server must ignore empty messages."
    return decode_payload(data, allow_single=True, max_messages=max_messages)


def decode_raw(data: str) -> list[str]:
    """The raw websocket: one websocket message is one message."""
    return [data]


def too_big(data: str | bytes, limit: int) -> bool:
    """Whether a websocket message is longer than ``limit`` bytes (UTF-8 for text)."""
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


Close = tuple[int, bytes]
"""A close code and reason the server closes a websocket with."""


def take_text(
    session: Session, endpoint: Endpoint, decode: Callable[[str], list[str]], data: str
) -> Close | Awaitable[None] | None:
    """Deliver one text message's client messages now: the close it earns if it is broken, or what
    to await before the next message while the handler is behind."""
    endpoint.counters.bytes_in += len(data)
    try:
        messages = decode(data)
    except PayloadError as error:
        # "When user sends broken data ... the server must abruptly terminate the ws connection."
        return error.close_code_hint, error.close_reason.encode()
    return session.take(messages) if messages else None


def take_binary(session: Session, endpoint: Endpoint, data: bytes) -> Close | Awaitable[None] | None:
    """Deliver a binary message where the handler takes them, else the close it earns (as :func:`take_text`)."""
    if not session.binary:
        return UNSUPPORTED_DATA, b"Binary frames are not supported."
    endpoint.counters.bytes_in += len(data)
    return session.take((data,))


async def on_text(
    session: Session, endpoint: Endpoint, decode: Callable[[str], list[str]], data: str
) -> Close | None:
    """Deliver one text message's client messages; the close it earns if it is broken."""
    taken = take_text(session, endpoint, decode, data)
    if taken is None or isinstance(taken, tuple):
        return taken
    await taken
    return None


async def on_binary(session: Session, endpoint: Endpoint, data: bytes) -> Close | None:
    """Deliver a binary message where the handler takes them, else the close it earns."""
    taken = take_binary(session, endpoint, data)
    if taken is None or isinstance(taken, tuple):
        return taken
    await taken
    return None


def on_client_close(code: int) -> Close | None:
    """The close answering a client's close code RFC 6455 forbids (``None``: echo a normal close)."""
    if forbidden_close_code(code):
        return PROTOCOL_ERROR, b"Invalid close code."
    return None


async def flush_frames(
    ws: WebsocketConnection, session: Session, errors: tuple[type[BaseException], ...], frame: str | None = None
) -> None:
    """Write the session's frames, from ``frame`` if the caller already took one;
    after the close frame, close the websocket.

    ``errors`` are the layer's exceptions meaning the connection is gone.
    """
    try:
        if frame is None:
            frame = session.next_frame()
        while frame is not None:
            await ws.send_str(frame)
            if frame[0] == "c":
                await ws.close()
                return
            frame = session.next_frame()
    except errors:
        session.transport_closed(CloseCode.INTERRUPTED)


def _replace_lone_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


async def flush_raw(
    ws: WebsocketConnection,
    session: Session,
    errors: tuple[type[BaseException], ...],
    taken: Sequence[str | bytes] | None = None,
) -> None:
    """Write queued messages as they are, from ``taken`` if the caller already took some;
    once the session is closed, close the websocket with its code."""
    try:
        while True:
            messages = session.take_raw() if taken is None else taken
            taken = None
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
    except errors:
        session.transport_closed(CloseCode.INTERRUPTED)
