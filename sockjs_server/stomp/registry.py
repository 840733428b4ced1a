"""The cluster-wide registry of users: who is connected, on which node, subscribed where.

Plain state, no I/O (stdlib only). Every server node holds a full copy: its
own sessions, changed by :meth:`Registry.connect` and friends, and the other
nodes' sessions, learnt from their messages (:meth:`Registry.receive`). The
runtime carries the messages of :meth:`Registry.take_outgoing` to every other
node (through RabbitMQ with the relay; nowhere with a single node).

Exactness: each node numbers its own changes (``seq``) and sends them in
order on one connection. A node that starts (or reconnects) says ``hello``
with a snapshot of its own sessions; every node answers with its snapshot,
taken at a given ``seq``. A receiver ignores a node's changes until it has
that node's snapshot, then applies only changes numbered after it, so a
snapshot and the live changes merge exactly, without duplicates. A gap (a
change numbered beyond the next) or a heart-beat announcing a later ``seq``
makes the receiver ask that node for a new snapshot (``sync``); what differs
from the old state is reported as events.

A node's sessions are removed when its queue is deleted (RabbitMQ's event
exchange, :meth:`Registry.node_gone`) or, as a fallback, when nothing was
heard from it for ``heartbeat * tolerance`` seconds (:meth:`Registry.expire`).

Events are per session (:class:`PresenceEvent`); ``joined`` / ``left`` tell
the user-level changes: a user with several sessions (tabs) on a destination
is counted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

__all__ = ["PresenceEvent", "Registry", "RegistryTransport", "SessionInfo", "REASONS"]

#: Why a session left a destination, or left altogether.
REASONS = ("unsubscribe", "disconnect", "node_lost")
#: Sessions per snapshot message (a snapshot of many sessions is sent in parts).
SNAPSHOT_PART = 200
#: Largest registry message accepted (bytes); larger ones are dropped.
MAX_MESSAGE = 1024 * 1024
#: Bytes of string attributes carried per session; beyond it none are carried.
MAX_ATTRIBUTES = 1024

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """One change of the registry.

    ``kind`` is ``connected``, ``disconnected``, ``subscribed`` or
    ``unsubscribed``; ``destination`` is set for the last two; ``reason``
    (one of :data:`REASONS`) for the leaving kinds. ``sessions`` counts the
    user's sessions after the change: connected anywhere (for
    ``connected``/``disconnected``) or subscribed to ``destination``.
    ``local`` is True when the session is on this node.
    """

    kind: str
    user: str
    session: str
    node: str
    destination: str | None = None
    reason: str | None = None
    sessions: int = 0
    local: bool = False

    @property
    def joined(self) -> bool:
        """The user's first session (anywhere, or on ``destination``)."""
        return self.kind in ("connected", "subscribed") and self.sessions == 1

    @property
    def left(self) -> bool:
        """The user's last session went (anywhere, or from ``destination``)."""
        return self.kind in ("disconnected", "unsubscribed") and self.sessions == 0


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as the registry knows it."""

    node: str
    session: str
    user: str
    #: Wall-clock time of its CONNECT, on its node's clock.
    since: float
    destinations: frozenset[str]
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


class RegistryTransport(Protocol):
    """Carries registry messages between nodes (implemented by the RabbitMQ relay).

    ``bind`` is called once, before the transport starts. The transport calls
    ``on_message(body)`` for each message of another node (its own may be
    skipped or not), ``on_connected()`` each time it (re)connects (the node
    then says hello), ``on_node_gone(node)`` when it learns that a node's
    queue is gone, and ``on_tick()`` every ``heartbeat`` seconds while
    connected. ``publish`` is fire-and-forget and keeps the order of the
    messages of this node.
    """

    #: Seconds between heart-beats; a node silent for ``heartbeat * tolerance`` is gone.
    heartbeat: float
    tolerance: float

    def bind(
        self,
        node: str,
        on_message: Callable[[bytes], None],
        on_connected: Callable[[], None],
        on_node_gone: Callable[[str], None],
        on_tick: Callable[[], None],
    ) -> None: ...

    def publish(self, body: bytes) -> None: ...


@dataclass(slots=True)
class _Session:
    user: str
    since: float
    attributes: Mapping[str, str]
    #: destination -> subscriptions of this session to it (always 1 for other nodes' sessions).
    destinations: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    #: Last change applied (or the seq of the snapshot taken).
    seq: int = 0
    #: A snapshot was received (or this is the local node): changes apply.
    known: bool = False
    seen: float = 0.0
    sessions: dict[str, _Session] = field(default_factory=dict)
    #: A sync was asked and not answered yet (so that it is asked once).
    asked: float | None = None


def _attributes(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return _EMPTY
    out = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    if sum(len(k) + len(v) for k, v in out.items()) > MAX_ATTRIBUTES:
        return _EMPTY
    return MappingProxyType(out)


class Registry:
    """The registry of one node: local changes in, events and messages out.

    ``node`` must be unique in the cluster (a random id per process).
    Times (``now``) are monotonic seconds, given by the caller.
    """

    def __init__(self, node: str, *, heartbeat: float = 5.0, tolerance: float = 3.0) -> None:
        if heartbeat <= 0 or tolerance < 1:
            raise ValueError("need heartbeat > 0 and tolerance >= 1")
        self.node = node
        self.heartbeat = heartbeat
        self.tolerance = tolerance
        self._nodes: dict[str, _Node] = {node: _Node(known=True)}
        #: user -> sessions anywhere.
        self._users: dict[str, int] = {}
        #: destination -> user -> sessions subscribed.
        self._subscribers: dict[str, dict[str, int]] = {}
        #: node -> (seq, hello, sessions so far) of a snapshot arriving in parts.
        self._parts: dict[str, tuple[int, bool, list[Any]]] = {}
        self._out: list[bytes] = []

    # --- queries ---------------------------------------------------------------

    def users(self) -> list[str]:
        """Users with at least one session anywhere, sorted."""
        return sorted(self._users)

    def subscribers(self, destination: str) -> list[str]:
        """Users with at least one session subscribed to ``destination``, sorted."""
        return sorted(self._subscribers.get(destination, ()))

    def destinations(self) -> dict[str, int]:
        """Every destination someone is subscribed to -> how many users (counted once)."""
        return {d: len(users) for d, users in sorted(self._subscribers.items())}

    def sessions(self, user: str | None = None) -> list[SessionInfo]:
        """The sessions of ``user`` (of everyone when None), oldest first."""
        out = [
            SessionInfo(name, sid, s.user, s.since, frozenset(s.destinations), s.attributes)
            for name, node in self._nodes.items()
            for sid, s in node.sessions.items()
            if user is None or s.user == user
        ]
        out.sort(key=lambda s: (s.since, s.node, s.session))
        return out

    def nodes(self) -> list[str]:
        """Nodes known to be alive (this one included), sorted."""
        return sorted(name for name, node in self._nodes.items() if node.known)

    @property
    def leader(self) -> bool:
        """Whether this node has the smallest id of the live nodes: who acts once for the cluster."""
        return min(self.nodes()) == self.node

    def take_outgoing(self) -> list[bytes]:
        """Messages to send to every other node, in order."""
        out, self._out = self._out, []
        return out

    # --- counting ----------------------------------------------------------------

    def _add(self, node: str, sid: str, session: _Session, local: bool) -> list[PresenceEvent]:
        count = self._users.get(session.user, 0) + 1
        self._users[session.user] = count
        events = [PresenceEvent("connected", session.user, sid, node, sessions=count, local=local)]
        for destination in session.destinations:
            events.append(self._subscribed(node, sid, session.user, destination, local))
        return events

    def _remove(self, node: str, sid: str, session: _Session, reason: str, local: bool) -> list[PresenceEvent]:
        events = [self._unsubscribed(node, sid, session.user, d, reason, local) for d in session.destinations]
        count = self._users.get(session.user, 0) - 1
        if count > 0:
            self._users[session.user] = count
        else:
            self._users.pop(session.user, None)
            count = 0
        events.append(PresenceEvent("disconnected", session.user, sid, node, reason=reason, sessions=count, local=local))
        return events

    def _subscribed(self, node: str, sid: str, user: str, destination: str, local: bool) -> PresenceEvent:
        users = self._subscribers.setdefault(destination, {})
        count = users[user] = users.get(user, 0) + 1
        return PresenceEvent("subscribed", user, sid, node, destination, sessions=count, local=local)

    def _unsubscribed(self, node: str, sid: str, user: str, destination: str, reason: str, local: bool) -> PresenceEvent:
        users = self._subscribers.get(destination, {})
        count = users.get(user, 0) - 1
        if count > 0:
            users[user] = count
        else:
            users.pop(user, None)
            count = 0
            if not users:
                self._subscribers.pop(destination, None)
        return PresenceEvent("unsubscribed", user, sid, node, destination, reason, count, local)

    # --- local changes -------------------------------------------------------------

    def _emit(self, op: str, **fields: object) -> None:
        me = self._nodes[self.node]
        me.seq += 1
        self._out.append(_encode({"op": op, "node": self.node, "seq": me.seq, **fields}))

    def connect(
        self, session: str, user: str, since: float, attributes: Mapping[str, str] | None = None
    ) -> list[PresenceEvent]:
        """A session of ``user`` connected on this node (``since``: wall-clock time)."""
        me = self._nodes[self.node]
        if session in me.sessions:
            return []
        attrs = _attributes(dict(attributes or {}))
        entry = me.sessions[session] = _Session(user, since, attrs)
        self._emit("join", session=session, user=user, since=since, attrs=dict(attrs))
        return self._add(self.node, session, entry, True)

    def disconnect(self, session: str) -> list[PresenceEvent]:
        """A session of this node ended."""
        entry = self._nodes[self.node].sessions.pop(session, None)
        if entry is None:
            return []
        self._emit("leave", session=session)
        return self._remove(self.node, session, entry, "disconnect", True)

    def subscribe(self, session: str, destination: str) -> list[PresenceEvent]:
        """A session of this node subscribed to ``destination`` (counted once per session)."""
        entry = self._nodes[self.node].sessions.get(session)
        if entry is None:
            return []
        count = entry.destinations.get(destination, 0)
        entry.destinations[destination] = count + 1
        if count:
            return []
        self._emit("sub", session=session, destination=destination)
        return [self._subscribed(self.node, session, entry.user, destination, True)]

    def unsubscribe(self, session: str, destination: str) -> list[PresenceEvent]:
        """A session of this node unsubscribed from ``destination``."""
        entry = self._nodes[self.node].sessions.get(session)
        if entry is None or destination not in entry.destinations:
            return []
        count = entry.destinations[destination] - 1
        if count:
            entry.destinations[destination] = count
            return []
        del entry.destinations[destination]
        self._emit("unsub", session=session, destination=destination)
        return [self._unsubscribed(self.node, session, entry.user, destination, "unsubscribe", True)]

    def hello(self) -> None:
        """Announce this node with its snapshot and ask the others for theirs (on every (re)connect)."""
        self._snapshot(hello=True)

    def beat(self) -> None:
        """A heart-beat: tells the others this node lives, and its last ``seq``."""
        self._out.append(_encode({"op": "beat", "node": self.node, "seq": self._nodes[self.node].seq}))

    def _snapshot(self, *, hello: bool) -> None:
        me = self._nodes[self.node]
        rows = [[sid, s.user, s.since, dict(s.attributes), sorted(s.destinations)] for sid, s in me.sessions.items()]
        parts = [rows[i : i + SNAPSHOT_PART] for i in range(0, len(rows), SNAPSHOT_PART)] or [[]]
        for n, part in enumerate(parts):
            self._out.append(
                _encode(
                    {
                        "op": "snapshot",
                        "node": self.node,
                        "seq": me.seq,
                        "hello": hello,
                        "part": n,
                        "end": n == len(parts) - 1,
                        "sessions": part,
                    }
                )
            )

    # --- other nodes -------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[PresenceEvent]:
        """A message from another node; malformed ones are ignored."""
        if len(data) > MAX_MESSAGE:
            return []
        try:
            msg = json.loads(data)
        except ValueError:
            return []
        if not isinstance(msg, dict):
            return []
        name, seq, op = msg.get("node"), msg.get("seq"), msg.get("op")
        if not isinstance(name, str) or not name or name == self.node or not isinstance(seq, int):
            return []
        if op == "sync":
            if msg.get("target") == self.node:
                self._snapshot(hello=False)
            return []
        try:
            return self._receive(name, seq, op, msg, now)
        except (KeyError, TypeError, ValueError):
            return []  # a malformed message changes nothing it has not checked

    def _receive(self, name: str, seq: int, op: object, msg: dict[str, Any], now: float) -> list[PresenceEvent]:
        node = self._nodes.get(name)
        if op == "snapshot":
            return self._snapshot_part(name, seq, msg, now)
        if node is None or not node.known:
            # Changes of a node whose snapshot has not come: ask for it (once).
            self._ask(name, now)
            return []
        node.seen = now
        if op == "beat":
            if seq > node.seq:
                self._ask(name, now)  # it changed things we did not get
            return []
        if seq <= node.seq:
            return []  # already in the snapshot, or a duplicate
        if seq != node.seq + 1:
            self._ask(name, now)
            return []
        node.seq = seq
        sid = msg["session"]
        if not isinstance(sid, str):
            return []
        if op == "join":
            user, since = msg["user"], msg["since"]
            if not isinstance(user, str) or not isinstance(since, (int, float)) or sid in node.sessions:
                return []
            new = node.sessions[sid] = _Session(user, float(since), _attributes(msg.get("attrs")))
            return self._add(name, sid, new, False)
        found = node.sessions.get(sid)
        if found is None:
            return []
        entry = found
        if op == "leave":
            del node.sessions[sid]
            return self._remove(name, sid, entry, "disconnect", False)
        destination = msg["destination"]
        if not isinstance(destination, str):
            return []
        if op == "sub" and destination not in entry.destinations:
            entry.destinations[destination] = 1
            return [self._subscribed(name, sid, entry.user, destination, False)]
        if op == "unsub" and destination in entry.destinations:
            del entry.destinations[destination]
            return [self._unsubscribed(name, sid, entry.user, destination, "unsubscribe", False)]
        return []

    def _ask(self, name: str, now: float) -> None:
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = _Node(seen=now)
        if node.asked is not None and now - node.asked < self.heartbeat:
            return
        node.asked = now
        self._out.append(_encode({"op": "sync", "node": self.node, "seq": self._nodes[self.node].seq, "target": name}))

    def _snapshot_part(self, name: str, seq: int, msg: dict[str, Any], now: float) -> list[PresenceEvent]:
        part, rows = msg["part"], msg["sessions"]
        if not isinstance(part, int) or not isinstance(rows, list):
            return []
        if part == 0:
            self._parts[name] = (seq, bool(msg.get("hello")), [])
        pending = self._parts.get(name)
        if pending is None or pending[0] != seq:
            self._parts.pop(name, None)
            return []
        pending[2].extend(rows)
        if not msg.get("end"):
            return []
        del self._parts[name]
        _seq, hello, all_rows = pending
        node = self._nodes.get(name)
        if node is not None and node.known and seq < node.seq:
            return []  # older than what was applied
        if hello:
            self._snapshot(hello=False)  # a node (re)starting: it needs ours
        sessions: dict[str, _Session] = {}
        for row in all_rows:
            sid, user, since, attrs, destinations = row
            if isinstance(sid, str) and isinstance(user, str) and isinstance(since, (int, float)) and isinstance(destinations, list):
                sessions[sid] = _Session(user, float(since), _attributes(attrs), {d: 1 for d in destinations if isinstance(d, str)})
        return self._replace(name, seq, sessions, now)

    def _replace(self, name: str, seq: int, sessions: dict[str, _Session], now: float) -> list[PresenceEvent]:
        """Make ``name``'s sessions these, reporting what changed."""
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = _Node()
        node.known, node.seq, node.seen, node.asked = True, seq, now, None
        events: list[PresenceEvent] = []
        old = node.sessions
        for sid in [s for s in old if s not in sessions or sessions[s].user != old[s].user]:
            events += self._remove(name, sid, old.pop(sid), "disconnect", False)
        for sid, new in sessions.items():
            entry = old.get(sid)
            if entry is None:
                old[sid] = new
                events += self._add(name, sid, new, False)
                continue
            for destination in [d for d in entry.destinations if d not in new.destinations]:
                del entry.destinations[destination]
                events.append(self._unsubscribed(name, sid, entry.user, destination, "unsubscribe", False))
            for destination in new.destinations:
                if destination not in entry.destinations:
                    entry.destinations[destination] = 1
                    events.append(self._subscribed(name, sid, entry.user, destination, False))
        return events

    def node_gone(self, name: str) -> list[PresenceEvent]:
        """``name`` is dead (its queue was deleted): its sessions are gone, reason ``node_lost``."""
        if name == self.node:
            return []
        node = self._nodes.pop(name, None)
        self._parts.pop(name, None)
        if node is None:
            return []
        events: list[PresenceEvent] = []
        for sid, entry in node.sessions.items():
            events += self._remove(name, sid, entry, "node_lost", False)
        return events

    def expire(self, now: float) -> list[PresenceEvent]:
        """Remove the nodes not heard from for ``heartbeat * tolerance`` seconds (the fallback)."""
        limit = self.heartbeat * self.tolerance
        events: list[PresenceEvent] = []
        for name in [n for n, node in self._nodes.items() if n != self.node and now - node.seen > limit]:
            events += self.node_gone(name)
        return events

    def forget_others(self) -> list[PresenceEvent]:
        """Every other node's sessions are gone (the runtime closes): reason ``node_lost``."""
        events: list[PresenceEvent] = []
        for name in [n for n in self._nodes if n != self.node]:
            events += self.node_gone(name)
        return events


def _encode(message: Mapping[str, object]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def user_events(events: Iterable[PresenceEvent]) -> Iterable[PresenceEvent]:
    """Only the user-level changes (a user's first session arriving, the last going)."""
    return (e for e in events if e.joined or e.left)
