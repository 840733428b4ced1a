"""The chat demo's server: static page, browser libraries, and STOMP over SockJS at /chat.

Built only from the package's public API: :func:`sockjs_server.add_endpoint`
and :class:`sockjs_server.stomp.StompServer` with /app handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sockjs_server import Options, add_endpoint
from sockjs_server.stomp import AccessDenied, AppMessage, Broker, ConnectInfo, MemoryBroker, Principal, StompServer
from sockjs_server.stomp.registry import PresenceEvent

from .rooms import ChatError, Joined, Rooms, check_nick, check_room

__all__ = ["DemoError", "ChatDemo", "create_app", "find_demo_dir", "DEMO_KEY", "VENDOR_FILES"]

logger = logging.getLogger(__name__)

#: Browser libraries served under /vendor/, from demo/node_modules (installed by `npm ci`).
VENDOR_FILES = {
    "sockjs.min.js": "sockjs-client/dist/sockjs.min.js",
    "sockjs.min.js.map": "sockjs-client/dist/sockjs.min.js.map",
    "stomp.umd.min.js": "@stomp/stompjs/bundles/stomp.umd.min.js",
}
NO_CACHE = {"Cache-Control": "no-cache"}
#: Longest ``ref`` echoed back with a refusal.
MAX_REF = 64


class DemoError(RuntimeError):
    """The demo cannot start; the message says what to do."""


def find_demo_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the page lives: ``explicit``, ``$SOCKJS_SERVER_DEMO_DIR``, or the checkout's ``demo/``.

    The page and its libraries are not part of the Python package: a checkout
    (or an editable install of it) finds ``demo/`` beside ``sockjs_server/``.
    """
    given = explicit or os.environ.get("SOCKJS_SERVER_DEMO_DIR")
    if given:
        candidates = [Path(given)]  # asked for: no fallback to another copy
    else:
        candidates = [Path(__file__).resolve().parents[2] / "demo", Path.cwd() / "demo"]
    for candidate in candidates:
        if (candidate / "index.html").is_file() and (candidate / "static").is_dir():
            return candidate.resolve()
    raise DemoError(
        "demo page not found (looked in " + ", ".join(str(c) for c in candidates) + "): run the demo from a checkout "
        "of the repository, or pass --demo-dir DIR / set SOCKJS_SERVER_DEMO_DIR"
    )


def _check_libraries(demo_dir: Path) -> None:
    missing = [path for name, path in VENDOR_FILES.items() if not name.endswith(".map") and not (demo_dir / "node_modules" / path).is_file()]
    if missing:
        raise DemoError(
            f"the browser libraries are not installed ({', '.join(missing)} missing): run  npm ci --prefix {demo_dir}"
        )


class ChatDemo:
    """Rooms, presence and private messages on top of a :class:`StompServer`.

    Destinations (see demo/static/chat.js for the client side):

    - SUBSCRIBE ``/app/room.<room>``: joins; one reply ``{type: "snapshot", members, history}``.
    - ``/topic/room.<room>``: ``message`` and ``presence`` events of a room.
    - SUBSCRIBE ``/app/rooms`` and ``/topic/rooms``: the room directory.
    - SEND ``/app/say {room, text}``, ``/app/leave {room}``, ``/app/private {to, text}``, ``/app/ping``.
    - ``/user/queue/private``: private messages; ``/user/queue/errors``: refused requests.

    Requests may carry a ``ref`` (a short string): a refusal echoes it, so
    the page knows which message was not sent and gives its text back.

    The nickname is the STOMP ``login`` header. A nickname belongs to one
    browser (the ``client-key`` CONNECT header) while it has a connection open,
    and during the rejoin grace period after its last one drops.

    Membership follows the server's cluster-wide registry (``on_presence``):
    a session is in a room while it is subscribed to ``/app/room.<room>``
    (until it unsubscribes, sends ``/app/leave`` or goes), on whichever node
    it is, so every node's :class:`Rooms` holds the same members. A change
    is announced once, by the node where it happened; a dead node's users
    and the end of a grace period are announced by the leader (the live node
    with the smallest id).

    A lost connection makes its user *away* in their rooms; only when the
    grace period passes without a reconnect are they announced as gone
    (:class:`Rooms` holds the state; :meth:`run` is the timer that expires it).
    """

    def __init__(self, broker: Broker | None = None, *, rooms: Rooms | None = None, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.rooms = rooms if rooms is not None else Rooms()
        self.stomp = StompServer(
            broker if broker is not None else MemoryBroker(),
            authenticate=self._authenticate,
            on_presence=self._on_presence,
        )
        self._owners: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._register()

    # --- connections ----------------------------------------------------------

    async def _authenticate(self, info: ConnectInfo) -> Principal:
        try:
            nick = check_nick(info.login or "")
        except ChatError as exc:
            raise AccessDenied("Bad nickname", str(exc)) from None
        key = info.headers.get("client-key", "")
        sessions = await self.stomp.presence.sessions(nick)  # on every node
        owner = self._owners.get(nick)
        away = owner is not None and owner != key and self.rooms.is_away(nick)
        if away or any(s.attributes.get("client-key", "") != key for s in sessions):
            raise AccessDenied("Nickname taken", f"{nick} is already in use: pick another nickname")
        # The key travels with the session to every node (the registry carries string attributes).
        return Principal(nick, {"client-key": key})

    def _nickname_claims(self, user: str) -> None:
        """Two browsers got one nickname at once on two nodes: the oldest session's browser keeps it.

        Every node sees the same sessions (time of CONNECT, then node id, then
        session id break ties), so all agree; each closes its own losers.
        """
        sessions = self.stomp.presence.registry.sessions(user)
        if not sessions:
            return
        winner = sessions[0].attributes.get("client-key", "")
        self._owners[user] = winner
        for session in sessions:
            if session.node == self.stomp.presence.node and session.attributes.get("client-key", "") != winner:
                self.stomp.close_connection(session.session, "Nickname taken", f"{user} is already in use: pick another nickname")

    async def _on_presence(self, event: PresenceEvent) -> None:
        """The registry changed, here or on another node: the rooms follow."""
        now = self.clock()
        room = self._room_of(event.destination)
        announce = event.local or (event.reason == "node_lost" and self.stomp.presence.registry.leader)
        if event.kind == "connected":
            self._nickname_claims(event.user)
        elif event.kind == "disconnected":
            for name, _user in self.rooms.drop(event.session, now):
                if announce:
                    await self.stomp.publish(f"/topic/room.{name}", self.rooms.presence(name, now))
            self._changed.set()
        elif room is not None and event.kind == "subscribed":
            try:
                joined = self.rooms.join(room, event.user, event.session, now)
            except ChatError:
                return  # refused by the /app handler, which told the client
            self._changed.set()
            if not announce:
                return
            if joined is Joined.NEW:
                await self.stomp.publish(f"/topic/room.{room}", self.rooms.presence(room, now, joined=event.user))
                await self._publish_directory()
            elif joined is Joined.RETURNED:  # back within the grace period: not news, but no longer away
                await self.stomp.publish(f"/topic/room.{room}", self.rooms.presence(room, now))
        elif room is not None and event.reason == "unsubscribe":
            user = self.rooms.leave(room, event.session, now)
            self._changed.set()
            if user is not None and announce:
                await self.stomp.publish(f"/topic/room.{room}", self.rooms.presence(room, now, left=user))
                await self._publish_directory()

    def _room_of(self, destination: str | None) -> str | None:
        prefix = f"{self.stomp.app_prefix}/room."
        if destination is None or not destination.startswith(prefix):
            return None
        return destination[len(prefix) :]

    async def _publish_directory(self) -> None:
        await self.stomp.publish("/topic/rooms", {"rooms": self.rooms.directory()})

    async def expire(self) -> None:
        """Announce the away users whose grace has passed; forget idle empty rooms."""
        now = self.clock()
        left, _forgotten = self.rooms.expire(now)
        if not self.stomp.presence.registry.leader:
            return  # every node expires its copy; one announces it
        for room, user in left:
            await self.stomp.publish(f"/topic/room.{room}", self.rooms.presence(room, now, left=user))
        if left:
            await self._publish_directory()

    async def run(self) -> None:
        """The rooms' timer: runs :meth:`expire` at each deadline, until cancelled."""
        while True:
            deadline = self.rooms.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            self._changed.clear()
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
            try:
                await self.expire()
            except Exception:  # a failed publish must not stop the timer
                logger.exception("expiring rooms failed")

    # --- /app handlers -------------------------------------------------------

    def _register(self) -> None:
        stomp = self.stomp
        stomp.subscribe("/room.{room}")(self._join)
        stomp.subscribe("/rooms")(self._directory)
        stomp.message("/say", reply_to="/queue/errors")(self._refusals(self._say))
        stomp.message("/leave", reply_to="/queue/errors")(self._refusals(self._leave))
        stomp.message("/private", reply_to="/queue/errors")(self._refusals(self._private))
        stomp.message("/ping")(self._ping)

    @staticmethod
    def _refusals(handler: Callable[[AppMessage], Any]) -> Callable[[AppMessage], Any]:
        """Turn a ChatError into an answer on the sender's /user/queue/errors, with the request's ``ref``."""

        async def wrapped(message: AppMessage) -> dict[str, str] | None:
            try:
                await handler(message)
            except ChatError as exc:
                answer = {"error": str(exc)}
                with contextlib.suppress(ValueError):
                    body = message.json()
                    ref = body.get("ref") if isinstance(body, dict) else None
                    if isinstance(ref, str) and len(ref) <= MAX_REF:
                        answer["ref"] = ref
                return answer
            return None

        return wrapped

    @staticmethod
    def _body(message: AppMessage) -> dict[str, Any]:
        try:
            body = message.json()
        except ValueError:
            raise ChatError("Requests are JSON objects.") from None
        if not isinstance(body, dict):
            raise ChatError("Requests are JSON objects.")
        return body

    @staticmethod
    def _user(message: AppMessage) -> str:
        if message.user is None:  # authenticate always names the user; never anonymous here
            raise ChatError("Connect with a nickname first.")
        return message.user

    async def _join(self, message: AppMessage) -> dict[str, Any]:
        """The snapshot of a room being joined; the join itself is the subscription (see :meth:`_on_presence`)."""
        user = self._user(message)
        try:
            room = check_room(message.params["room"])
            self.rooms.check_join(room, user)
        except ChatError as exc:
            return {"type": "error", "error": str(exc)}
        return {
            "type": "snapshot",
            "room": room,
            "members": sorted({*self.rooms.members(room), user}),
            "away": [name for name in self.rooms.away(room) if name != user],
            "history": self.rooms.history(room),
        }

    async def _directory(self, message: AppMessage) -> dict[str, Any]:
        return {"rooms": self.rooms.directory()}

    async def _say(self, message: AppMessage) -> None:
        body = self._body(message)
        room = check_room(body.get("room"))
        event = self.rooms.say(room, self._user(message), body.get("text"), self.clock())
        await self.stomp.publish(f"/topic/room.{room}", event)

    async def _leave(self, message: AppMessage) -> None:
        """Leaving on purpose ends the membership now, as an UNSUBSCRIBE of the room would."""
        room = check_room(self._body(message).get("room"))
        self.stomp.presence.unsubscribed(message.connection.session_id, f"{self.stomp.app_prefix}/room.{room}")

    async def _private(self, message: AppMessage) -> None:
        body = self._body(message)
        sender = self._user(message)
        recipient = body.get("to")
        event = self.rooms.private(sender, recipient, body.get("text"), self.clock())
        if recipient not in await self.stomp.users():  # connected to any node
            raise ChatError(f"{recipient} is not online.")
        await self.stomp.send_to_user(event["to"], "/queue/private", event)
        if event["to"] != sender:
            await self.stomp.send_to_user(sender, "/queue/private", event)

    async def _ping(self, message: AppMessage) -> None:
        """Nothing to do: the client measures the time to this frame's RECEIPT."""
        return None


DEMO_KEY = web.AppKey("sockjs_server_demo", ChatDemo)


def create_app(
    demo_dir: str | os.PathLike[str] | None = None, *, broker: Broker | None = None, rooms: Rooms | None = None
) -> web.Application:
    """The demo application: ``/`` the page, ``/static/`` its files, ``/vendor/`` the libraries, ``/chat`` SockJS.

    ``rooms`` sets the chat's limits (:class:`Rooms`' defaults otherwise).
    """
    root = find_demo_dir(demo_dir)
    _check_libraries(root)
    static = root / "static"
    modules = root / "node_modules"

    demo = ChatDemo(broker, rooms=rooms)
    app = web.Application()
    app[DEMO_KEY] = demo

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(root / "index.html", headers=NO_CACHE)

    async def vendor(request: web.Request) -> web.StreamResponse:
        path = VENDOR_FILES.get(request.match_info["name"])
        if path is None or not (modules / path).is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(modules / path, headers=NO_CACHE)

    app.router.add_get("/", index)
    app.router.add_get("/vendor/{name}", vendor)
    app.router.add_static("/static/", static, append_version=False)
    # The iframe transports load sockjs-client inside the server's iframe page: from here, not a CDN.
    add_endpoint(app, "/chat", demo.stomp, options=Options(sockjs_url="/vendor/sockjs.min.js"))

    async def broker_lifetime(app: web.Application) -> AsyncIterator[None]:
        await demo.stomp.broker.start()
        timer = asyncio.create_task(demo.run())
        yield
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        await demo.stomp.broker.close()

    async def close_clients(app: web.Application) -> None:
        await demo.stomp.close()

    app.cleanup_ctx.append(broker_lifetime)
    app.on_shutdown.append(close_clients)
    return app
