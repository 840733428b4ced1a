"""Chat rooms of the demo: who is where, and recent history. Plain state, no I/O.

Presence counts connections, not people: a user with two tabs open in a room
stays a member until the last of them leaves.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

ROOM_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
NICK_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NICK = 24
MAX_TEXT = 2000


class ChatError(ValueError):
    """A request the chat refuses; the message is shown to the user who made it."""


def check_room(name: object) -> str:
    if not isinstance(name, str) or not ROOM_NAME.match(name):
        raise ChatError("Room names are 1-32 characters: a-z, 0-9, '-' and '_'.")
    return name


def check_nick(nick: str) -> str:
    nick = nick.strip()
    if not nick or len(nick) > MAX_NICK or NICK_CONTROL.search(nick):
        raise ChatError(f"Nicknames are 1-{MAX_NICK} printable characters.")
    return nick


def check_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ChatError("Empty message.")
    if len(text) > MAX_TEXT:
        raise ChatError(f"Messages are at most {MAX_TEXT} characters.")
    return text


@dataclass
class _Room:
    members: dict[str, set[str]] = field(default_factory=dict)  # user -> connection ids
    history: deque[dict[str, Any]] = field(default_factory=deque)


class Rooms:
    """Membership and history of every room.

    `history_size` messages are kept per room; at most `max_rooms` rooms exist,
    the least recently used empty room being forgotten first.
    """

    def __init__(self, *, history_size: int = 50, max_rooms: int = 200, default_rooms: tuple[str, ...] = ()):
        self.history_size = history_size
        self.max_rooms = max_rooms
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._ids = itertools.count(1)
        for name in default_rooms:
            self._room(check_room(name))

    def _room(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                self._forget_an_empty_room()
            room = self._rooms[name] = _Room(history=deque(maxlen=self.history_size))
        self._rooms.move_to_end(name)
        return room

    def _forget_an_empty_room(self) -> None:
        for name, room in self._rooms.items():
            if not room.members:
                del self._rooms[name]
                return
        raise ChatError("Too many rooms are in use; join an existing one.")

    def join(self, room_name: str, user: str, connection: str) -> bool:
        """Add a connection of `user`; True when the user was not in the room before."""
        room = self._room(check_room(room_name))
        connections = room.members.setdefault(user, set())
        new = not connections
        connections.add(connection)
        return new

    def leave(self, room_name: str, connection: str) -> str | None:
        """Remove a connection; returns the user when that was their last one in the room."""
        room = self._rooms.get(room_name)
        if room is None:
            return None
        for user, connections in list(room.members.items()):
            if connection in connections:
                connections.discard(connection)
                if not connections:
                    del room.members[user]
                    return user
        return None

    def drop(self, connection: str) -> list[tuple[str, str]]:
        """Remove a closed connection everywhere; returns (room, user) for each user who left."""
        left = []
        for name in list(self._rooms):
            user = self.leave(name, connection)
            if user is not None:
                left.append((name, user))
        return left

    def rooms_of(self, connection: str) -> list[str]:
        return [name for name, room in self._rooms.items() if any(connection in c for c in room.members.values())]

    def members(self, room_name: str) -> list[str]:
        room = self._rooms.get(room_name)
        return sorted(room.members) if room else []

    def history(self, room_name: str) -> list[dict[str, Any]]:
        room = self._rooms.get(room_name)
        return list(room.history) if room else []

    def say(self, room_name: str, user: str, text: object, now: float) -> dict[str, Any]:
        """Record a message from a member; returns the event to publish."""
        room = self._rooms.get(check_room(room_name))
        if room is None or user not in room.members:
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

    def directory(self) -> list[dict[str, Any]]:
        """Rooms by name with their member counts."""
        return [{"name": name, "members": len(room.members)} for name, room in sorted(self._rooms.items())]

    def presence(self, room_name: str, now: float, *, joined: str | None = None, left: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "presence", "room": room_name, "members": self.members(room_name), "ts": now}
        if joined is not None:
            event["joined"] = joined
        if left is not None:
            event["left"] = left
        return event
