"""SockJS endpoints as ASGI 3 applications: mount them in Starlette, FastAPI or any ASGI server.

The same session runtime, options, answers and transport loops as the aiohttp
layer (:mod:`~sockjs_server.core.dispatch`, :mod:`~sockjs_server.runtime.pump`); this
module only reads ASGI events and writes ASGI messages::

    from starlette.applications import Starlette
    from sockjs_server.asgi import SockJSApp

    async def echo(session):
        async for message in session:
            await session.send(message)

    chat = SockJSApp(echo)
    app = Starlette(lifespan=chat.lifespan)
    app.mount("/echo", chat)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, MutableMapping
from functools import partial
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from ..core.dispatch import (
    Page,
    SendKind,
    fixed_page,
    match_path,
    raw_websocket_refusal,
    receive_headers,
    receive_refusal,
    session_action,
    websocket_refusal,
)
from ..core.envelopes import ENVELOPES, Envelope, TransportKind
from ..core.http import (
    NO_CACHE,
    NOT_FOUND,
    ON_DISCONNECT,
    TEXT_PLAIN,
    WEBSOCKET_PUSH,
    WEBSOCKET_WRITE,
    WRITE_ROOM,
    Answer,
)
from ..core.options import Options, WebsocketProfile
from ..core.state import ANOTHER_CONNECTION_FRAME, Attach, CloseCode
from ..core.static import IframePage
from ..runtime.eager import start_eagerly
from ..runtime.endpoint import Endpoint, checked_handler
from ..runtime.pump import (
    MESSAGE_TOO_BIG,
    NO_SESSION,
    Close,
    decode_framed,
    decode_raw,
    flush_frames,
    flush_raw,
    on_binary,
    on_text,
    one_frame,
    send_answer,
    stream_frames,
    take_binary,
    take_text,
    too_big,
)
from ..runtime.session import Handler, Receiver, Session

__all__ = ["SockJSApp", "SockJSRouter"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], None]
"""A whole HTTP answer at once (status, encoded headers, body): how a direct path answers."""

_SEND_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError)
"""What an ASGI server raises when writing to a connection that is gone."""


_HEADER_NAMES = {name: name.lower().encode() for name in ("Origin", "Content-Length", "Content-Type", "Host", "Cookie")}
"""The names the shared code asks for, lowercased and encoded once."""


class _Headers(Mapping[str, str]):
    """The request headers read straight from the ASGI scope's list, case-insensitively.

    A request reads two or three of them (Origin, Content-Length, Content-Type):
    scanning the few raw pairs costs less than building a multidict of all of them.
    ASGI servers give the names lowercased (as Starlette's ``Headers`` assumes too).
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, key: str, default: Any = None) -> Any:
        name = _HEADER_NAMES.get(key)
        if name is None:
            name = key.lower().encode("latin-1")
        for raw_name, value in self._raw:
            if raw_name == name:
                return value.decode("latin-1")
        return default

    def getall(self, key: str, default: Any = ()) -> Any:
        name = key.lower().encode("latin-1")
        found = [value.decode("latin-1") for raw_name, value in self._raw if raw_name == name]
        return found or default

    def __getitem__(self, key: str) -> str:
        value: str | None = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class AsgiRequest:
    """An ASGI scope seen as a :class:`~sockjs_server.core.http.RequestHead` (parsed on first use)."""

    __slots__ = ("scope", "_headers", "_cookies", "_query")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._headers: _Headers | None = None
        self._cookies: Mapping[str, str] | None = None
        self._query: MultiDictProxy[str] | None = None

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def headers(self) -> _Headers:
        # Kept in a slot, not a functools.cached_property: that one takes a lock on every read (3.11).
        headers = self._headers
        if headers is None:
            headers = self._headers = _Headers(self.scope["headers"])
        return headers

    def header_copy(self) -> CIMultiDictProxy[str]:
        """All headers as a multidict of their own (what a session keeps)."""
        return CIMultiDictProxy(CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.scope["headers"]))

    @property
    def scheme(self) -> str:
        scheme = str(self.scope.get("scheme", "http"))
        return {"ws": "http", "wss": "https"}.get(scheme, scheme)

    @property
    def host(self) -> str:
        host: str | None = self.headers.get("Host")
        if host is not None:
            return host
        server = self.scope.get("server")
        return f"{server[0]}:{server[1]}" if server else ""

    @property
    def cookies(self) -> Mapping[str, str]:
        if self._cookies is None:
            cookie: SimpleCookie = SimpleCookie()
            for header in self.headers.getall("Cookie", ()):
                try:
                    cookie.load(header)
                except CookieError:
                    continue
            self._cookies = {name: morsel.value for name, morsel in cookie.items()}
        return self._cookies

    @property
    def query_string(self) -> str:
        return bytes(self.scope.get("query_string", b"")).decode("latin-1")

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            self._query = MultiDictProxy(MultiDict(parse_qsl(self.query_string, keep_blank_values=True)))
        return self._query

    @property
    def remote(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None


_ENCODED: dict[str, bytes] = {
    text: text.lower().encode() if text[0].isupper() and ":" not in text else text.encode()
    for text in (
        "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Vary", "Cache-Control",
        "Content-Type", "X-Content-Type-Options", "Set-Cookie", "*", "true", "Origin", "nosniff",
        NO_CACHE["Cache-Control"], TEXT_PLAIN,
        *(envelope.content_type for envelope in ENVELOPES.values()),
    )
}  # fmt: skip
"""Header names (lowercased) and constant values of the hot responses, encoded once."""


_RAW_HEADERS: dict[tuple[tuple[str, str], ...], list[tuple[bytes, bytes]]] = {}
"""Encoded header lists of recent answers: most answers of an endpoint carry one of a few."""


def _raw_headers(headers: Mapping[str, str], length: int | None) -> list[tuple[bytes, bytes]]:
    key = tuple(headers.items())
    raw = _RAW_HEADERS.get(key)
    if raw is None:
        encoded = _ENCODED
        raw = [
            (encoded.get(name) or name.lower().encode("latin-1"), encoded.get(value) or value.encode("latin-1"))
            for name, value in key
        ]  # fmt: skip
        if len(_RAW_HEADERS) >= 256:  # echoed origins and cookies vary: keep it small
            _RAW_HEADERS.clear()
        _RAW_HEADERS[key] = raw
    if length is None:
        return list(raw)  # a copy: middleware may add to the message's list in place
    return [*raw, (b"content-length", b"0" if not length else str(length).encode())]


async def _answer(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": _raw_headers(answer.headers, len(answer.body))})
    await send({"type": "http.response.body", "body": answer.body})


class _Disconnect:
    """Notices an HTTP client going away while its response is pending (``http.disconnect``).

    Its task starts only when a response has to wait (:meth:`start`): a poll answered
    at once, the common case on a busy session, costs no task. A server that offers the
    ``sockjs_server.on_disconnect`` extension (the built-in one) calls back instead: no task.
    """

    __slots__ = ("gone", "_task", "_receive", "_session", "_on_disconnect", "_unwatch")

    def __init__(self, receive: Receive, session: Session, scope: Scope) -> None:
        self.gone = False
        self._task: asyncio.Task[None] | None = None
        self._receive = receive
        self._session = session
        extensions = scope.get("extensions")
        self._on_disconnect: Callable[[Callable[[], None]], Callable[[], None]] | None = (
            extensions.get(ON_DISCONNECT) if extensions else None
        )
        self._unwatch: Callable[[], None] | None = None

    def start(self) -> None:
        if self._on_disconnect is not None:
            if self._unwatch is None:
                self._unwatch = self._on_disconnect(self._gone)
        elif self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def _gone(self) -> None:
        self.gone = True
        self._session.poke()

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._gone()
                return

    def alive(self) -> bool:
        return not self.gone

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        elif self._unwatch is not None:
            self._unwatch()


class _DirectPoll:
    """A waiting ``xhr`` poll of :meth:`SockJSApp.direct_poll`: its receiver's wake-up schedules a
    check in a loop callback (no task); the check answers with the next frame, or ends the request
    when the client went away or another connection took the session (as :func:`one_frame` does)."""

    __slots__ = ("_session", "_respond", "_headers", "_envelope", "_receiver", "_gone", "_due", "_done", "_unwatch")

    def __init__(self, session: Session, respond: Respond, headers: dict[str, str], envelope: Envelope) -> None:
        self._session = session
        self._respond = respond
        self._headers = headers
        self._envelope = envelope
        self._gone = False
        self._due = False
        self._done = False
        self._unwatch: Callable[[], None] | None = None
        self._receiver = Receiver(self._alive, abort=self._abort, on_wake=self._wake)

    def start(self, on_disconnect: Callable[[Callable[[], None]], Callable[[], None]]) -> None:
        session = self._session
        receiver = self._receiver
        attached = session.attach(receiver) is Attach.ACCEPTED
        frame = session.next_frame() if attached else ANOTHER_CONNECTION_FRAME
        if frame is None:
            self._unwatch = on_disconnect(self._went)
            return
        self._done = True
        if attached:
            session.detach(receiver)  # answered at once: nothing to watch
        self._answer(frame)

    def _alive(self) -> bool:
        return not self._gone

    def _went(self) -> None:
        self._gone = True
        self._wake()

    def _wake(self) -> None:
        if not self._due and not self._done:
            self._due = True
            asyncio.get_running_loop().call_soon(self._check)

    def _abort(self) -> None:
        self._gone = True
        self._wake()

    def _check(self) -> None:
        self._due = False
        if self._done:
            return
        session = self._session
        receiver = self._receiver
        try:
            frame = None
            if not self._gone and session.holds(receiver):  # a client that went away takes no frame
                frame = session.next_frame()
                if frame is None:
                    return  # a liveness check, or a wake-up with nothing to send: still waiting
            self._done = True
            if self._unwatch is not None:
                self._unwatch()
            session.detach(receiver, interrupted=frame is None)
        except Exception:
            logger.exception("a poll's answer failed")
            self._done = True
            self._respond(500, [], b"")
            return
        if frame is None:
            self._respond(204, [], b"")  # the client went away (nobody reads this), or was superseded
        else:
            self._answer(frame)

    def _answer(self, frame: str) -> None:
        body = self._envelope.wrap(frame, "")
        self._respond(200, _raw_headers(self._headers, len(body)), body)


def _cancel_current_task() -> Callable[[], None]:
    """How a receiver drops its connection: ASGI has no abort, so its request task is cancelled."""
    task = asyncio.current_task()

    def cancel() -> None:
        if task is not None:
            task.cancel()

    return cancel


class _Abort:
    """Drops a websocket whose client stopped reading: its task is cancelled, and the
    cancellation ends the app quietly (:meth:`ours`), so the server closes the connection
    instead of logging an application error. A pending write may never end otherwise
    (granian's send waits while its buffer is full)."""

    __slots__ = ("_task", "done")

    def __init__(self) -> None:
        self._task = asyncio.current_task()
        self.done = False

    def __call__(self) -> None:
        if self._task is not None and not self.done:
            self.done = True
            self._task.cancel()

    def ours(self) -> bool:
        """In ``except CancelledError``: whether this abort caused it (then it is absorbed)."""
        if self.done and self._task is not None:
            self._task.uncancel()
            return True
        return False


def _start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """:func:`~sockjs_server.runtime.eager.start_eagerly`, its failure logged."""
    task = start_eagerly(coro)
    if task is not None:
        task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("websocket flush failed", exc_info=task.exception())


class _EagerFlush:
    """A websocket's flush that writes what it can at once and never waits for the server.

    An ASGI send may wait (the server's buffer for a client that stopped reading is
    full) and no congestion signal says so beforehand. Where a send has to wait, the
    rest of the flush goes on in a task of its own: the endpoint's shared flush task
    (a broadcast wakes every session) moves on to the other sessions, and one stalled
    client holds up nobody else. Frames stay in order: a direct write waits for that task.
    """

    __slots__ = ("_flush", "_send", "_task")

    def __init__(self, flush: Callable[[], Coroutine[Any, Any, None]], send: Callable[[str], Awaitable[None]]) -> None:
        self._flush = flush
        self._send = send
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        task = self._task
        if task is not None and not task.done():
            return  # that flush writes what was queued meanwhile too, once the server takes it
        self._task = _start_eagerly(self._flush())

    async def write(self, frame: str) -> None:
        """The direct write of a reply (see :meth:`Session.send`), after any flush still waiting."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task})
        await self._send(frame)


class _Websocket:
    """An accepted ASGI websocket as a :class:`~sockjs_server.runtime.pump.WebsocketConnection`."""

    __slots__ = ("_send", "_write", "closed", "close_code", "close_sent")

    def __init__(self, send: Send, write: Callable[[str | bytes], Awaitable[None] | None] | None = None) -> None:
        self._send = send
        self._write = write  # the server's WEBSOCKET_WRITE, where it offers it
        self.closed = False
        self.close_code: int | None = None
        #: The server took the close frame (or the connection ended).
        self.close_sent = False

    async def send_str(self, data: str) -> None:
        waiting = self._out(data, "text")
        if waiting is not None:
            await waiting

    async def send_bytes(self, data: bytes) -> None:
        waiting = self._out(data, "bytes")
        if waiting is not None:
            await waiting

    def _out(self, data: str | bytes, key: str) -> Awaitable[None] | None:
        """Through the server's ``WEBSOCKET_WRITE`` where offered (``None``: written, nothing to
        wait for), else as a ``websocket.send`` event (its awaitable)."""
        if self.closed:
            raise ConnectionResetError("websocket closed")
        write = self._write
        if write is None:
            return self._send({"type": "websocket.send", key: data})
        return write(data)

    async def close(self, *, code: int = CloseCode.NORMAL, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self.closed = True
        self.close_code = code
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": message.decode("utf-8", "replace")})
        finally:
            self.close_sent = True
        return True


class SockJSApp:
    """One SockJS endpoint as an ASGI application (``handler(session)`` runs once per session).

    Mount it where its URLs start (``app.mount("/echo", SockJSApp(echo))``);
    every transport is served below that path. ``options`` and
    ``websocket_profile`` are those of :func:`~sockjs_server.add_endpoint`.
    Pass :attr:`lifespan` to the framework (or serve the app directly) so
    that sessions get a close frame when the server stops.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        options: Options | None = None,
        name: str | None = None,
        prefix: str = "",
        websocket_profile: WebsocketProfile | None = None,
    ) -> None:
        websocket_profile = checked_handler(handler, websocket_profile)
        options = options or Options()
        #: The sessions, counters and broadcast of this endpoint (as with aiohttp).
        self.endpoint = Endpoint(prefix, handler, options, name or prefix or "sockjs", websocket_profile)
        self._iframe = IframePage(options)
        self._started = False
        self._websockets: set[_Websocket] = set()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the endpoint's background checks (at startup, or on the first request)."""
        if not self._started:
            self._started = True
            self.endpoint.start()

    async def stop(self) -> None:
        """Send every session a close frame, let streaming responses end, stop the checks."""
        await self.endpoint.shutdown()
        # A websocket writes its close frame in a task of its own: give it the time
        # streaming responses get, before the server closes connections.
        for _ in range(10):
            if all(ws.close_sent for ws in self._websockets):
                break
            await asyncio.sleep(0.05)
        self.endpoint.stop()
        self._started = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A lifespan context for Starlette/FastAPI (``Starlette(lifespan=sockjs.lifespan)``)."""
        self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _serve_lifespan((self,), receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        await self.serve_below(path, scope, receive, send)

    async def serve_below(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an ``http`` or ``websocket`` request for ``path``, the part of the URL below this endpoint
        (what :class:`SockJSRouter` calls, without copying the scope to change its ``root_path``)."""
        kind = scope["type"]
        if not self._started:
            self.start()
        match = match_path(path)
        if kind == "websocket":
            await self._websocket(scope, receive, send, match)
            return
        if kind != "http":
            return
        request = AsgiRequest(scope)
        status = 404
        try:
            if match is None:
                answer: Answer | None = NOT_FOUND
            elif match[0] is Page.SESSION:
                answer = await self._session_url(request, receive, send, match[1], match[2])
            elif match[0] is Page.RAW_WEBSOCKET:
                # A plain GET (no upgrade) to the raw websocket URL.
                answer = raw_websocket_refusal(request, self.endpoint.options) or Answer(
                    400, {"Content-Type": "text/plain; charset=UTF-8"}, b'Can "Upgrade" only to "WebSocket".'
                )
            else:
                answer = fixed_page(match[0], request, self.endpoint.options, self._iframe)
            if answer is not None:
                status = answer.status
                await _answer(send, answer)
            else:
                status = 200
        finally:
            if status >= 400:
                self.endpoint.counters.request_error(status)

    async def direct_send(self, path: str, scope: Scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """The answer to an ``xhr_send`` whose whole body is here, without ASGI messages: status, encoded
        headers and body; ``None`` for anything else (unknown session, refusal, another URL), which then
        takes the ASGI path. ``path`` is below this endpoint. The built-in server calls it for the
        hottest session URL; other servers use :meth:`__call__`."""
        endpoint = self.endpoint
        options = endpoint.options
        if not self._started or len(body) > options.max_request_size:
            return None
        match = match_path(path)
        if match is None or match[2] != "xhr_send" or match[0] is not Page.SESSION:
            return None
        request = AsgiRequest(scope)
        if session_action(request, options, "xhr_send") is not SendKind.XHR_SEND:
            return None
        session = endpoint.get_session(match[1])
        if session is None:
            return None
        answer = await send_answer(request, endpoint, session, body, "", False)
        if answer.status >= 400:
            endpoint.counters.request_error(answer.status)
        return answer.status, _raw_headers(answer.headers, len(answer.body)), answer.body

    def direct_poll(self, path: str, scope: Scope, respond: Respond) -> bool:
        """An ``xhr`` poll without ASGI messages or a task: answered at once when a frame is waiting,
        else by ``respond(status, encoded headers, body)`` from a loop callback when a frame comes or the
        client goes away (the scope's ``sockjs_server.on_disconnect`` extension tells). ``False``
        declines (a refusal, another URL, no such extension): the request then takes the ASGI path.
        The built-in server calls it for that URL (:meth:`direct_send` is the other half of xhr-polling)."""
        endpoint = self.endpoint
        options = endpoint.options
        extensions = scope.get("extensions")
        on_disconnect = extensions.get(ON_DISCONNECT) if extensions else None
        if not self._started or endpoint.shutting_down or on_disconnect is None:
            return False
        match = match_path(path)
        if match is None or match[2] != "xhr" or match[0] is not Page.SESSION:
            return False
        request = AsgiRequest(scope)
        envelope = session_action(request, options, "xhr")
        if not isinstance(envelope, Envelope) or envelope.needs_callback:
            return False
        session = self._receiving_session(request, match[1], envelope)
        _DirectPoll(session, respond, receive_headers(request, options, envelope), envelope).start(on_disconnect)
        return True

    def _receiving_session(self, request: AsgiRequest, session_id: str, envelope: Envelope) -> Session:
        """The session a receiving request asks for, opened by it when new."""
        endpoint = self.endpoint
        session = endpoint.get_session(session_id)
        if session is None:
            session = endpoint.new_session(
                session_id, envelope.name, remote=request.remote, headers=request.header_copy(),
                query_string=request.query_string,
            )  # fmt: skip
        return session

    async def _session_url(
        self, request: AsgiRequest, receive: Receive, send: Send, session_id: str, segment: str
    ) -> Answer | None:
        """The answer to a session URL, or ``None`` when a transport wrote its own response."""
        endpoint = self.endpoint
        action = session_action(request, endpoint.options, segment)
        if isinstance(action, Envelope):
            return await self._receive(request, receive, send, session_id, action)
        if action is SendKind.XHR_SEND or action is SendKind.JSONP_SEND:
            session = endpoint.get_session(session_id)
            if session is None:
                return NO_SESSION
            body = await _read_body(request, receive, endpoint.options.max_request_size)
            if action is SendKind.XHR_SEND:  # the content type matters to a form post only
                return await send_answer(request, endpoint, session, body, "", False)
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return await send_answer(request, endpoint, session, body, content_type, True)
        if action is SendKind.WEBSOCKET:
            return Answer(400, {"Content-Type": "text/plain; charset=UTF-8"}, b'Can "Upgrade" only to "WebSocket".')
        return action

    async def _receive(
        self, request: AsgiRequest, receive: Receive, send: Send, session_id: str, envelope: Envelope
    ) -> Answer | None:
        endpoint = self.endpoint
        options = endpoint.options
        callback = receive_refusal(
            request, options, envelope, request.query.get("c") if envelope.needs_callback else None, endpoint.shutting_down
        )
        if isinstance(callback, Answer):
            return callback
        session = self._receiving_session(request, session_id, envelope)
        headers = receive_headers(request, options, envelope)
        watch = _Disconnect(receive, session, request.scope)
        receiver = Receiver(watch.alive, abort=_cancel_current_task())
        try:
            attached = session.attach(receiver) is Attach.ACCEPTED
            if envelope.kind is TransportKind.POLLING:
                frame = session.next_frame() if attached else ANOTHER_CONNECTION_FRAME
                if frame is not None:
                    if attached:
                        session.detach(receiver)  # answered at once: no watcher, no wait
                else:
                    watch.start()
                    frame = await one_frame(session, receiver)
                    if frame is None:
                        return Answer(204)  # the client went away; nobody reads this answer
                return Answer(200, headers, envelope.wrap(frame, callback))
            watch.start()
            await send({"type": "http.response.start", "status": 200, "headers": _raw_headers(headers, None)})

            async def write(data: bytes) -> None:
                await send({"type": "http.response.body", "body": data, "more_body": True})

            try:
                await write(envelope.prelude(callback))
                if attached:
                    extensions = request.scope.get("extensions")
                    room = extensions.get(WRITE_ROOM) if extensions else None
                    await stream_frames(session, receiver, write, envelope, callback, options.response_limit, room)
                else:
                    await write(envelope.wrap(ANOTHER_CONNECTION_FRAME, callback))
                await send({"type": "http.response.body", "body": b""})
            except _SEND_ERRORS:
                session.detach(receiver, interrupted=True)
            return None
        finally:
            watch.stop()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, match: tuple[Page, str, str] | None) -> None:
        endpoint = self.endpoint
        options = endpoint.options
        request = AsgiRequest(scope)
        refusal: Answer | SendKind | Envelope | None
        if match is None:
            refusal = NOT_FOUND
        elif match[0] is Page.SESSION:
            refusal = session_action(request, options, match[2])
            if refusal is SendKind.WEBSOCKET:
                refusal = None
            elif not isinstance(refusal, Answer):
                refusal = Answer(400, {"Content-Type": "text/plain; charset=UTF-8"}, b"Not a websocket URL.")
        elif match[0] is Page.RAW_WEBSOCKET:
            refusal = raw_websocket_refusal(request, options)
        else:
            # An upgrade on a fixed page gets the page, as a plain GET would.
            refusal = fixed_page(match[0], request, options, self._iframe)
        if refusal is None:
            refusal = websocket_refusal(request, options, endpoint.shutting_down)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if isinstance(refusal, Answer):
            if refusal.status >= 400:
                endpoint.counters.request_error(refusal.status)
            if "websocket.http.response" in scope.get("extensions", {}):
                await send({"type": "websocket.http.response.start", "status": refusal.status,
                            "headers": _raw_headers(refusal.headers, len(refusal.body))})  # fmt: skip
                await send({"type": "websocket.http.response.body", "body": refusal.body})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        assert match is not None
        raw = match[0] is Page.RAW_WEBSOCKET
        subprotocol = None
        if raw:
            offered = [name.strip() for name in scope.get("subprotocols", ())]
            subprotocol = endpoint.websocket_profile.select(offered)
        accept: Message = {"type": "websocket.accept"}
        if subprotocol is not None:
            accept["subprotocol"] = subprotocol
        await send(accept)
        extensions = scope.get("extensions") or {}
        ws = _Websocket(send, extensions.get(WEBSOCKET_WRITE))
        session = endpoint.new_session(
            match[1], "websocket-raw" if raw else "websocket", remote=request.remote, headers=request.header_copy(),
            query_string=request.query_string, addressable=False, raw=raw, subprotocol=subprotocol,
        )  # fmt: skip
        if raw:
            decode: Callable[[str], list[str]] = decode_raw
            flush = partial(flush_raw, ws, session, _SEND_ERRORS)
        else:
            decode = partial(decode_framed, max_messages=options.max_messages_per_frame)
            flush = partial(flush_frames, ws, session, _SEND_ERRORS)
        self._websockets.add(ws)
        try:
            await _serve_websocket(ws, receive, endpoint, session, decode, flush, extensions.get(WEBSOCKET_PUSH))
        finally:
            ws.close_sent = True
            self._websockets.discard(ws)


async def _serve_websocket(
    ws: _Websocket,
    receive: Receive,
    endpoint: Endpoint,
    session: Session,
    decode: Callable[[str], list[str]],
    flush: Callable[[], Coroutine[Any, Any, None]],
    push: Callable[[Callable[[str | bytes], Awaitable[None] | None], Callable[[int], None]], None] | None = None,
) -> None:
    """Read client messages into the session until the websocket closes; the session ends with it.
    Where the server offers ``push`` (:data:`~sockjs_server.core.http.WEBSOCKET_PUSH`), it hands each message
    over from its read callback (:func:`_pushed`) instead of this task pulling it with ``receive()``."""
    abort = _Abort()
    eager = _EagerFlush(flush, ws.send_str)
    receiver = Receiver(flush=eager, queue=endpoint.flush_queue, write=eager.write, abort=abort)
    session.attach(receiver)
    receiver.wake()  # the open frame
    close_code: int = CloseCode.NORMAL
    limit = endpoint.options.max_message_size
    close: Close | None = None
    try:
        if push is not None:
            close_code = await _pushed(push, ws, endpoint, session, decode)
        while push is None:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                data = text if text is not None else message.get("bytes") or b""
                if too_big(data, limit):
                    close = MESSAGE_TOO_BIG, b"Message too big."
                elif text is not None:
                    close = await on_text(session, endpoint, decode, text)
                else:
                    close = await on_binary(session, endpoint, data if isinstance(data, bytes) else data.encode())
                if close is not None:
                    close_code = close[0]
                    await ws.close(code=close_code, message=close[1])
                    break
            elif kind == "websocket.disconnect":
                close_code = _closed_by_client(ws, int(message.get("code", CloseCode.NORMAL)))
                break
    except _SEND_ERRORS:
        close_code = CloseCode.INTERRUPTED
    except asyncio.CancelledError:
        if not abort.ours():
            raise
    finally:
        session.transport_closed(close_code)


async def _pushed(
    push: Callable[[Callable[[str | bytes], Awaitable[None] | None], Callable[[int], None]], None],
    ws: _Websocket,
    endpoint: Endpoint,
    session: Session,
    decode: Callable[[str], list[str]],
) -> int:
    """:func:`_serve_websocket`'s loop where the server pushes messages: each goes into the session from
    the server's read callback (no task woken between); this waits for the end and returns its close code."""
    ended: asyncio.Future[Close | int] = asyncio.get_running_loop().create_future()
    limit = endpoint.options.max_message_size

    def on_message(data: str | bytes) -> Awaitable[None] | None:
        if ended.done():
            return None  # a close is decided: nothing more goes in
        taken: Close | Awaitable[None] | None
        if too_big(data, limit):
            taken = MESSAGE_TOO_BIG, b"Message too big."
        elif isinstance(data, str):
            taken = take_text(session, endpoint, decode, data)
        else:
            taken = take_binary(session, endpoint, data)
        if isinstance(taken, tuple):
            ended.set_result(taken)
            return None
        return taken

    def on_close(code: int) -> None:
        if not ended.done():
            ended.set_result(code)

    push(on_message, on_close)
    end = await ended
    if isinstance(end, tuple):
        await ws.close(code=end[0], message=end[1])
        return end[0]
    return _closed_by_client(ws, end)


def _closed_by_client(ws: _Websocket, code: int) -> int:
    """The websocket ended from the client's side with ``code``: the session's close code
    (the client's own unless normal, or an answer to our close)."""
    closed_by_us = ws.closed
    ws.closed = True
    return code if not closed_by_us and code not in (CloseCode.NORMAL, 1005) else CloseCode.NORMAL


async def _read_body(request: AsgiRequest, receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` when it is larger than ``limit`` (read no further)."""
    length = request.headers.get("Content-Length")
    expected = int(length) if length is not None and length.isdigit() else None
    if expected is not None and expected > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        # granian marks even a complete body more_body=True and ends it with an empty message:
        # with the whole Content-Length here, waiting for that message costs a round trip.
        if not message.get("more_body", False) or size == expected:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _serve_lifespan(apps: tuple[SockJSApp, ...], receive: Receive, send: Send) -> None:
    """ASGI lifespan: start the endpoints' checks; on shutdown, close frames for every session."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            for app in apps:
                app.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for app in apps:
                await app.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


class SockJSRouter:
    """Several :class:`SockJSApp`\\ s (and optionally another ASGI app) as one ASGI application.

    ``routes`` maps path prefixes (``"/echo"``) to endpoints; any other path
    goes to ``fallback`` (404 when there is none). Lifespan events reach every endpoint.
    """

    def __init__(self, routes: Mapping[str, SockJSApp], fallback: Callable[..., Awaitable[None]] | None = None) -> None:
        for prefix in routes:
            if not prefix.startswith("/") or prefix.endswith("/"):
                raise ValueError(f"prefix must start with '/' and not end with '/': {prefix!r}")
        # Longest prefix first, so /echo_more is not taken by /echo.
        self.routes = dict(sorted(routes.items(), key=lambda item: -len(item[0])))
        self.fallback = fallback
        self._prefixes = [(prefix, prefix + "/", len(prefix), app) for prefix, app in self.routes.items()]

    @property
    def apps(self) -> tuple[SockJSApp, ...]:
        return tuple(self.routes.values())

    async def direct_send(self, path: str, scope: Scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """:meth:`SockJSApp.direct_send` of the endpoint ``path`` is below (``None`` elsewhere)."""
        for prefix, below, length, app in self._prefixes:
            if path.startswith(below):
                return await app.direct_send(path[length:], scope, body)
        return None

    def direct_poll(self, path: str, scope: Scope, respond: Respond) -> bool:
        """:meth:`SockJSApp.direct_poll` of the endpoint ``path`` is below (``False`` elsewhere)."""
        for prefix, below, length, app in self._prefixes:
            if path.startswith(below):
                return app.direct_poll(path[length:], scope, respond)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _serve_lifespan(self.apps, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for prefix, below, length, app in self._prefixes:
            if path.startswith(below) or path == prefix:
                await app.serve_below(path[length:], scope, receive, send)
                return
        if self.fallback is not None:
            await self.fallback(scope, receive, send)
        elif scope["type"] == "http":
            await _answer(send, NOT_FOUND)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
