"""HTTP transports on aiohttp: the receiving requests (polling and streaming) and the sending ones.

Each receiving request attaches a :class:`~sockjs_server.runtime.session.Receiver`
to its session and runs the shared loops of :mod:`~sockjs_server.runtime.pump`;
this module only adapts them to aiohttp's requests and responses.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from functools import partial

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from ..core.dispatch import receive_headers, receive_refusal
from ..core.envelopes import Envelope, TransportKind
from ..core.http import Answer
from ..core.state import ANOTHER_CONNECTION_FRAME, Attach
from ..runtime.endpoint import Endpoint
from ..runtime.pump import NO_SESSION, one_frame, send_answer, stream_frames
from ..runtime.session import Receiver, Session

__all__ = ["abort_connection", "buffer_room", "receive", "response", "send"]

_WRITE_ERRORS = (ConnectionError, ClientConnectionResetError)


def response(answer: Answer) -> web.Response:
    """``answer`` as an aiohttp response."""
    return web.Response(status=answer.status, body=answer.body or None, headers=answer.headers)


def abort_connection(request: web.BaseRequest) -> None:
    """Drop the request's connection without flushing (its client stopped reading).

    With a zero linger the kernel resets the connection instead of still
    trickling what its send buffer holds to a client that does not read.
    """
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def buffer_room(request: web.BaseRequest) -> Callable[[int], bool] | None:
    """Whether ``size`` more bytes go out on ``request``'s connection without waiting for its client:
    aiohttp waits only while the transport's writing is paused, above its buffer's high-water mark.
    ``None`` where that is unknown."""
    transport = request.transport
    protocol = request.protocol
    if transport is None:
        return None
    try:
        high = transport.get_write_buffer_limits()[1]
    except NotImplementedError:
        return None

    def room(size: int) -> bool:
        return not protocol.writing_paused and transport.get_write_buffer_size() + size < high

    return room


def _alive(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _open_session(request: web.Request, endpoint: Endpoint, session_id: str, transport: str) -> Session:
    session = endpoint.get_session(session_id)
    if session is None:
        session = endpoint.new_session(
            session_id, transport, remote=request.remote, headers=request.headers,
            query_string=request.rel_url.raw_query_string,
        )  # fmt: skip
    return session


async def receive(request: web.Request, endpoint: Endpoint, session_id: str, envelope: Envelope) -> web.StreamResponse:
    """A receiving request: the session's frames, one (polling) or many (streaming)."""
    options = endpoint.options
    callback = receive_refusal(
        request, options, envelope, request.query.get("c") if envelope.needs_callback else None, endpoint.shutting_down
    )
    if isinstance(callback, Answer):
        return response(callback)
    session = _open_session(request, endpoint, session_id, envelope.name)
    headers = receive_headers(request, options, envelope)
    receiver = Receiver(lambda: _alive(request), abort=partial(abort_connection, request))
    attached = session.attach(receiver) is Attach.ACCEPTED
    if envelope.kind is TransportKind.POLLING:
        if attached:
            frame = await one_frame(session, receiver)
            if frame is None:
                # The client went away; nobody reads this answer.
                return web.Response(status=204)
        else:
            frame = ANOTHER_CONNECTION_FRAME
        return web.Response(body=envelope.wrap(frame, callback), headers=headers)
    stream = web.StreamResponse(headers=headers)
    if request.version < (1, 1):
        # An HTTP/1.0 body without a length ends only when the connection closes.
        stream.force_close()
    try:
        await stream.prepare(request)
        await stream.write(envelope.prelude(callback))
        if attached:
            room = buffer_room(request)
            await stream_frames(session, receiver, stream.write, envelope, callback, options.response_limit, room)
        else:
            await stream.write(envelope.wrap(ANOTHER_CONNECTION_FRAME, callback))
        await stream.write_eof()
    except _WRITE_ERRORS:
        session.detach(receiver, interrupted=True)
    return stream


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
    session = endpoint.get_session(session_id)
    if session is None:
        return response(NO_SESSION)
    body = await _read_body(request, endpoint.options.max_request_size)
    return response(await send_answer(request, endpoint, session, body, request.content_type, form))
