"""Chat rooms of the demo: who is where, and recent history. Plain state, no I/O.

Presence counts connections, not people: a user with two tabs open in a room
stays a member until the last of them leaves. A user whose last connection
drops (rather than leaving the room) is *away* for ``rejoin_grace`` seconds:
still a member, so that reconnecting within that time is not a new join.

Everything is bounded: at most ``max_rooms`` rooms (``max_rooms_per_user`` for
one person, so that no one can fill the registry alone), ``history_size`` messages
of at most ``MAX_TEXT`` characters each. A room without members is forgotten
as soon as it has no history, and otherwise ``empty_room_timeout`` seconds after
its last activity. Every time is a ``now`` argument; the caller owns the clock
and calls :meth:`Rooms.expire` by :meth:`Rooms.next_deadline`.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChatError", "Joined", "Rooms", "check_nick", "check_room", "check_text", "MAX_NICK", "MAX_TEXT"]

ROOM_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
NICK_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NICK = 24
MAX_TEXT = 2000


class ChatError(ValueError):
    """A request the chat refuses; the message is shown to the user who made it."""


class Joined(enum.Enum):
    """What a join changed, and so what the others are told."""

    #: The user was not in the room: announce "joined".
    NEW = "new"
    #: The user was away (connection lost) and is back within the grace period: update, don't announce.
    RETURNED = "returned"
    #: Another connection (a second tab) of a present user: nothing changes.
    ALREADY = "already"


def check_room(name: object) -> str:
    if not isinstance(name, str) or not ROOM_NAME.match(name):
        raise ChatError("Room names are 1-32 characters: a-z, 0-9, '-' and '_'.")
    return name


def check_nick(nick: str) -> str:
    nick = nick.strip()
    if not nick or len(nick) > MAX_NICK or NICK_CONTROL.search(nick):
        raise ChatError(f"Nicknames are 1-{MAX_NICK} printable characters, not only spaces.")
    return nick


def check_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ChatError("Empty message.")
    if len(text) > MAX_TEXT:
        raise ChatError(f"Messages are at most {MAX_TEXT} characters; this one has {len(text)}.")
    return text


@dataclass
class _Room:
    last_active: float
    history: deque[dict[str, Any]]
    members: dict[str, set[str]] = field(default_factory=dict)  # user -> connection ids (empty while away)
    away: dict[str, float] = field(default_factory=dict)  # user -> when their last connection dropped


class Rooms:
    """Membership, presence and history of every room (see the module docstring for the bounds)."""

    def __init__(
        self,
        *,
        history_size: int = 50,
        max_rooms: int = 200,
        max_rooms_per_user: int = 20,
        empty_room_timeout: float = 3600.0,
        rejoin_grace: float = 10.0,
    ) -> None:
        self.history_size = history_size
        self.max_rooms = max_rooms
        self.max_rooms_per_user = max_rooms_per_user
        self.empty_room_timeout = empty_room_timeout
        self.rejoin_grace = rejoin_grace
        self._rooms: OrderedDict[str, _Room] = OrderedDict()  # least recently active first
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, name: object) -> bool:
        return name in self._rooms

    # --- membership -------------------------------------------------------------

    def _room(self, name: str, now: float) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                self._forget_an_empty_room()
            room = self._rooms[name] = _Room(last_active=now, history=deque(maxlen=self.history_size))
        self._touch(name, room, now)
        return room

    def _touch(self, name: str, room: _Room, now: float) -> None:
        room.last_active = now
        self._rooms.move_to_end(name)

    def _forget_an_empty_room(self) -> None:
        for name, room in self._rooms.items():
            if not room.members:
                del self._rooms[name]
                return
        raise ChatError(f"All {self.max_rooms} rooms are in use; join one of them.")

    def _forget_if_unused(self, name: str, room: _Room) -> None:
        """A room with neither members nor history has nothing left to keep."""
        if not room.members and not room.history:
            del self._rooms[name]

    def check_join(self, room_name: str, user: str) -> None:
        """Raise the ChatError :meth:`join` would raise, changing nothing."""
        check_room(room_name)
        existing = self._rooms.get(room_name)
        if existing is None or user not in existing.members:
            if sum(user in room.members for room in self._rooms.values()) >= self.max_rooms_per_user:
                raise ChatError(f"You are in {self.max_rooms_per_user} rooms already: leave one first.")
        if existing is None and len(self._rooms) >= self.max_rooms and all(room.members for room in self._rooms.values()):
            raise ChatError(f"All {self.max_rooms} rooms are in use; join one of them.")

    def join(self, room_name: str, user: str, connection: str, now: float) -> Joined:
        """Add a connection of `user` to a room (creating it)."""
        self.check_join(room_name, user)
        room = self._room(room_name, now)
        connections = room.members.setdefault(user, set())
        connections.add(connection)
        if room.away.pop(user, None) is not None:
            return Joined.RETURNED
        return Joined.NEW if len(connections) == 1 else Joined.ALREADY

    def leave(self, room_name: str, connection: str, now: float) -> str | None:
        """A connection leaves a room on purpose; returns the user when that was their last one there."""
        room = self._rooms.get(room_name)
        if room is None:
            return None
        for user, connections in list(room.members.items()):
            if connection in connections:
                connections.discard(connection)
                if connections:
                    return None
                del room.members[user]
                self._touch(room_name, room, now)
                self._forget_if_unused(room_name, room)
                return user
        return None

    def drop(self, connection: str, now: float) -> list[tuple[str, str]]:
        """A connection is gone (closed or lost); returns (room, user) for each user now away.

        An away user stays a member until :meth:`expire` runs after ``rejoin_grace``.
        """
        away = []
        for name, room in self._rooms.items():
            for user, connections in room.members.items():
                if connection in connections:
                    connections.discard(connection)
                    if not connections:
                        room.away[user] = now
                        away.append((name, user))
        return away

    def expire(self, now: float) -> tuple[list[tuple[str, str]], list[str]]:
        """Remove away users past their grace and forget idle empty rooms.

        Returns ((room, user) for each user who left, names of the rooms forgotten).
        """
        left = []
        forgotten = []
        for name, room in list(self._rooms.items()):
            for user, since in list(room.away.items()):
                if now >= since + self.rejoin_grace:
                    del room.away[user]
                    del room.members[user]
                    room.last_active = now
                    left.append((name, user))
            if not room.members and (not room.history or now >= room.last_active + self.empty_room_timeout):
                del self._rooms[name]
                forgotten.append(name)
        return left, forgotten

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has something to do (None: nothing pending)."""
        deadlines = []
        for room in self._rooms.values():
            if room.away:
                deadlines.append(min(room.away.values()) + self.rejoin_grace)
            elif not room.members:
                deadlines.append(room.last_active + (self.empty_room_timeout if room.history else 0.0))
        return min(deadlines, default=None)

    def is_away(self, user: str) -> bool:
        """Whether `user` is within the grace period somewhere (their nickname is still theirs)."""
        return any(user in room.away for room in self._rooms.values())

    # --- views ------------------------------------------------------------------

    def rooms_of(self, connection: str) -> list[str]:
        return [name for name, room in self._rooms.items() if any(connection in c for c in room.members.values())]

    def members(self, room_name: str) -> list[str]:
        """Members of a room, away ones included."""
        room = self._rooms.get(room_name)
        return sorted(room.members) if room else []

    def away(self, room_name: str) -> list[str]:
        room = self._rooms.get(room_name)
        return sorted(room.away) if room else []

    def history(self, room_name: str) -> list[dict[str, Any]]:
        room = self._rooms.get(room_name)
        return list(room.history) if room else []

    def directory(self) -> list[dict[str, Any]]:
        """Active rooms (with at least one member) by name, with their member counts."""
        return [{"name": name, "members": len(room.members)} for name, room in sorted(self._rooms.items()) if room.members]

    # --- messages ---------------------------------------------------------------

    def say(self, room_name: str, user: str, text: object, now: float) -> dict[str, Any]:
        """Record a message from a member; returns the event to publish."""
        room = self._rooms.get(check_room(room_name))
        if room is None or not room.members.get(user):
            raise ChatError(f"Join #{room_name} before writing there.")
        message = {
            "type": "message",
            "id": f"m{next(self._ids)}",
            "room": room_name,
            "from": user,
            "text": check_text(text),
            "ts": now,
        }
        room.history.append(message)
        self._touch(room_name, room, now)
        return message

    def private(self, sender: str, recipient: object, text: object, now: float) -> dict[str, Any]:
        if not isinstance(recipient, str) or not recipient:
            raise ChatError("Who is this message for?")
        return {
            "type": "private",
            "id": f"p{next(self._ids)}",
            "from": sender,
            "to": recipient,
            "text": check_text(text),
            "ts": now,
        }

    def presence(self, room_name: str, now: float, *, joined: str | None = None, left: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "presence",
            "room": room_name,
            "members": self.members(room_name),
            "away": self.away(room_name),
            "ts": now,
        }
        if joined is not None:
            event["joined"] = joined
        if left is not None:
            event["left"] = left
        return event
