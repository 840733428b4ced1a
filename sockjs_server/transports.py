"""HTTP transports: the receiving requests (polling and streaming) and the sending ones.

Each receiving request attaches a :class:`~sockjs_server.session.Receiver`
to its session, pumps frames through its :class:`~sockjs_server.envelopes.Envelope`
and detaches; all protocol decisions stay in the session state machine.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qs

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from .endpoint import Endpoint
from .envelopes import CallbackError, Envelope, TransportKind, validate_callback
from .framing import EMPTY_PAYLOAD, PayloadError, decode_payload
from .http import NO_CACHE, NOSNIFF, TEXT_PLAIN, abort_connection, cors_headers, error_response, set_session_cookie
from .session import Receiver, Session
from .state import ANOTHER_CONNECTION_FRAME, Attach

__all__ = ["receive", "send"]

_WRITE_ERRORS = (ConnectionError, ClientConnectionResetError)


def _alive(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _open_session(request: web.Request, endpoint: Endpoint, session_id: str, transport: str) -> Session:
    session = endpoint.get_session(session_id)
    if session is None:
        session = endpoint.new_session(request, session_id, transport)
    return session


async def receive(request: web.Request, endpoint: Endpoint, session_id: str, envelope: Envelope) -> web.StreamResponse:
    """A receiving request: the session's frames, one (polling) or many (streaming)."""
    options = endpoint.options
    callback = ""
    if envelope.needs_callback:
        try:
            callback = validate_callback(request.query.get("c"))
        except CallbackError as error:
            return error_response(request, options, 500, str(error))
    if endpoint.shutting_down:
        return error_response(request, options, 503, "Server shutting down.")
    session = _open_session(request, endpoint, session_id, envelope.name)
    headers = cors_headers(request, options)
    headers.update(NO_CACHE)
    headers.update(NOSNIFF)
    headers["Content-Type"] = envelope.content_type
    receiver = Receiver(lambda: _alive(request), abort=partial(abort_connection, request))
    attached = session.attach(receiver) is Attach.ACCEPTED
    if envelope.kind is TransportKind.POLLING:
        if attached:
            frame = await _one_frame(session, receiver)
            if frame is None:
                # The client went away; nobody reads this answer.
                return web.Response(status=204)
        else:
            frame = ANOTHER_CONNECTION_FRAME
        response = web.Response(body=envelope.wrap(frame, callback), headers=headers)
        set_session_cookie(response, request, options)
        return response
    stream = web.StreamResponse(headers=headers)
    set_session_cookie(stream, request, options)
    if request.version < (1, 1):
        # An HTTP/1.0 body without a length ends only when the connection closes.
        stream.force_close()
    try:
        await stream.prepare(request)
        await stream.write(envelope.prelude(callback))
        if attached:
            await _stream_frames(session, receiver, stream, envelope, callback, options.response_limit)
        else:
            await stream.write(envelope.wrap(ANOTHER_CONNECTION_FRAME, callback))
        await stream.write_eof()
    except _WRITE_ERRORS:
        session.detach(receiver, interrupted=True)
    return stream


async def _one_frame(session: Session, receiver: Receiver) -> str | None:
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


async def _stream_frames(
    session: Session, receiver: Receiver, stream: web.StreamResponse, envelope: Envelope, callback: str, limit: int
) -> None:
    """Write frames until the close frame, the response limit, or the client going away.

    sockjs-protocol, XhrStreaming: "we should close a streaming request every
    128KiB messages was send" so the browser can free what it buffered.
    """
    sent = 0
    interrupted = True
    try:
        while session.holds(receiver):
            frame = session.next_frame()
            if frame is None:
                await session.wait_frame(receiver)
                if not receiver.alive():
                    return
                continue
            data = envelope.wrap(frame, callback)
            await stream.write(data)
            sent += len(data)
            if frame[0] == "c" or sent >= limit:
                interrupted = False
                return
        interrupted = False
    finally:
        session.detach(receiver, interrupted=interrupted)


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or ``None`` when it is larger than ``limit`` (read no further)."""
    length = request.content_length
    if length is not None:
        # Known and small enough: aiohttp has usually buffered it already.
        return None if length > limit else await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def send(request: web.Request, endpoint: Endpoint, session_id: str, form: bool) -> web.StreamResponse:
    """``xhr_send`` / ``jsonp_send``: client messages for an existing session."""
    options = endpoint.options
    session = endpoint.get_session(session_id)
    if session is None:
        return web.Response(status=404, headers=NO_CACHE)
    body = await _read_body(request, options.max_request_size)
    if body is None:
        return error_response(request, options, 413, "Payload too large.")
    endpoint.counters.bytes_in += len(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return error_response(request, options, 500, "Broken JSON encoding.")
    try:
        if form and request.content_type == "application/x-www-form-urlencoded":
            # jsonp_send from a browser form: the payload is the ``d`` field.
            values = parse_qs(text, keep_blank_values=True, max_num_fields=16).get("d")
            text = values[0] if values else ""
        messages = decode_payload(text, max_messages=options.max_messages_per_request)
    except PayloadError as error:
        return error_response(request, options, error.status_hint, str(error))
    except ValueError:
        return error_response(request, options, 500, EMPTY_PAYLOAD)
    if messages:
        await session.deliver_all(messages)
    headers = cors_headers(request, options)
    headers.update(NO_CACHE)
    headers["Content-Type"] = TEXT_PLAIN
    if form:
        # Konqueror misbehaves on 204, so jsonp_send answers "ok".
        response = web.Response(status=200, text="ok", headers=headers)
    else:
        response = web.Response(status=204, headers=headers)
    set_session_cookie(response, request, options)
    return response

