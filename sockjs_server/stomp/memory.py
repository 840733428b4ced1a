"""MemoryBroker: the embedded broker, with RabbitMQ's STOMP destination semantics.

Destinations (as RabbitMQ's STOMP plugin names them, so an application
behaves the same when it later switches to the relay):

* ``/topic/<key>``: every subscriber gets every message. SUBSCRIBE patterns
  may use ``*`` (exactly one word) and ``#`` (zero or more words) over
  dot-separated words, like AMQP topic bindings. Nothing is stored for
  ``ack:auto`` subscriptions; a ``client`` / ``client-individual`` one gets a
  queue of its own (as RabbitMQ gives every topic subscription), so
  ``prefetch-count``, ACK and NACK work as on a queue, and the queue goes
  with the subscription.
  ``/exchange/amq.topic/<key>`` is the same thing under RabbitMQ's other name.
* ``/queue/<name>`` (also ``/amq/queue/<name>``): each message goes to one
  subscriber, round robin; messages wait in the queue while nobody can take
  them. Messages delivered to ``client`` / ``client-individual``
  subscriptions stay held until ACK; NACK, UNSUBSCRIBE or the subscriber's
  connection ending puts them back at the head of the queue, and they are
  redelivered with ``redelivered:true``.

Everything is bounded: messages per queue (the oldest is dropped, RabbitMQ's
default overflow behaviour), bytes stored across all queues (publishing is
refused with an error beyond it), and unacknowledged messages per
subscription (delivery to that subscription pauses, like a prefetch count).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from .auth import Principal
from .broker import _NO_HEADERS, Broker, BrokerClient, Message
from .destinations import display_destination, unknown_destination
from .errors import BrokerError, ProtocolError, frame_error
from .frames import AckMode

__all__ = ["MemoryBroker"]

logger = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * 1024
#: Names of the queues of topic subscriptions (no destination can name them: NUL is refused).
_PRIVATE = "\x00sub-"


def parse_destination(destination: str) -> tuple[str, str]:
    """Split a destination into ("topic" | "queue", key or name)."""
    for prefix, kind in (
        ("/topic/", "topic"),
        ("/queue/", "queue"),
        ("/exchange/amq.topic/", "topic"),
        ("/amq/queue/", "queue"),
    ):
        if destination.startswith(prefix):
            name = destination[len(prefix) :]
            if name:
                return kind, name
            break
    # RabbitMQ's words, for destinations the MemoryBroker does not model
    # (other exchanges, /temp-queue/, /reply-queue/, plain queue names).
    raise unknown_destination(destination)


def topic_matches(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""
    # Iterative matcher with backtracking to the last '#'.
    p = w = 0
    star_p = star_w = -1
    np, nw = len(pattern), len(words)
    while w < nw:
        if p < np and pattern[p] == "#":
            star_p, star_w = p, w
            p += 1
        elif p < np and (pattern[p] == "*" or pattern[p] == words[w]):
            p += 1
            w += 1
        elif star_p >= 0:
            star_w += 1
            w = star_w
            p = star_p + 1
        else:
            return False
    while p < np and pattern[p] == "#":
        p += 1
    return p == np


@dataclass(eq=False, slots=True)
class _Held:
    """A queue message waiting in a queue or held unacknowledged."""

    message: Message
    queue: str
    redelivered: bool = False


@dataclass(eq=False, slots=True)
class _Sub:
    client: _Client
    id: str
    kind: str
    name: str
    ack: AckMode
    prefetch: int
    auto_delete: bool = False
    #: The queue this subscription consumes: ``name`` for a queue; for a
    #: topic subscription with client acknowledgements, a queue of its own;
    #: "" for an ``ack:auto`` topic subscription (delivered directly).
    queue: str = ""
    #: Ends the message id of an ``ack:auto`` topic delivery (the message's
    #: own id + this): one id per delivery at the cost of one concatenation.
    suffix: str = ""
    #: Queue subscriptions in client modes: ack id -> held message, in delivery order.
    unacked: dict[str, _Held] = field(default_factory=dict)
    pattern: tuple[str, ...] = ()

    @property
    def has_room(self) -> bool:
        return self.ack is AckMode.AUTO or len(self.unacked) < self.prefetch


@dataclass(eq=False, slots=True)
class _Client:
    client: BrokerClient
    #: Message ids of held deliveries are ``<prefix><delivery tag>``, unique in
    #: the broker; ``ack:auto`` topic deliveries are ``T<n>@<prefix><subscription>``.
    prefix: str
    subs: dict[str, _Sub] = field(default_factory=dict)
    #: ack id -> subscription holding it.
    pending: dict[str, _Sub] = field(default_factory=dict)
    tag: int = 0


@dataclass(eq=False, slots=True)
class _Queue:
    name: str
    messages: deque[_Held] = field(default_factory=deque)
    subs: list[_Sub] = field(default_factory=list)
    next: int = 0


class MemoryBroker(Broker):
    """In-process broker; see the module docstring for its semantics."""

    def __init__(
        self,
        *,
        max_queue_messages: int = 10_000,
        max_stored_bytes: int = 64 * MiB,
        max_unacked: int = 1000,
    ) -> None:
        """
        :param max_queue_messages: messages waiting in one queue; beyond it the
            oldest is dropped.
        :param max_stored_bytes: bytes of queue messages held (waiting or
            unacknowledged) across the broker; a publish beyond it fails.
        :param max_unacked: unacknowledged messages per client-ack queue
            subscription (a lower ``prefetch-count`` SUBSCRIBE header wins);
            delivery to it pauses until ACK/NACK.
        """
        if min(max_queue_messages, max_stored_bytes, max_unacked) <= 0:
            raise ValueError("MemoryBroker limits must be positive")
        self.max_queue_messages = max_queue_messages
        self.max_stored_bytes = max_stored_bytes
        self.max_unacked = max_unacked
        self._clients: dict[str, _Client] = {}
        # Topic subscriptions: exact keys in a dict, patterns grouped by pattern.
        self._exact: dict[str, dict[_Sub, None]] = {}
        self._patterns: dict[tuple[str, ...], dict[_Sub, None]] = {}
        self._queues: dict[str, _Queue] = {}
        self._ids = itertools.count(1)
        self._private = itertools.count(1)
        self.stored_bytes = 0

    # --- introspection (tests, stats) --------------------------------------

    def queue_depth(self, name: str) -> int:
        """Messages waiting (not delivered) in queue ``name``."""
        q = self._queues.get(name)
        return len(q.messages) if q else 0

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def stats(self) -> dict[str, object]:
        """Clients, stored bytes and the depth of every queue (read by ``StompServer.stats``)."""
        return {
            "clients": len(self._clients),
            "stored_bytes": self.stored_bytes,
            "queues": {name: len(q.messages) for name, q in self._queues.items() if not name.startswith(_PRIVATE)},
        }

    # --- life cycle ------------------------------------------------------

    def _client(self, client: BrokerClient) -> _Client:
        state = self._clients.get(client.client_id)
        if state is None or state.client is not client:
            state = self._clients[client.client_id] = _Client(client, f"{next(self._ids)}-")
        return state

    async def connect(self, client: BrokerClient, principal: Principal | None = None) -> None:
        self._client(client)

    async def connection_lost(self, client: BrokerClient) -> None:
        state = self._clients.get(client.client_id)
        if state is None or state.client is not client:
            return
        del self._clients[client.client_id]
        for sub in list(state.subs.values()):
            self._remove_sub(state, sub)

    # --- subscriptions ---------------------------------------------------

    async def subscribe(
        self, client: BrokerClient, subscription: str, destination: str, ack: AckMode, headers: Mapping[str, str]
    ) -> None:
        kind, name = parse_destination(destination)
        state = self._client(client)
        if subscription in state.subs:
            raise ProtocolError("Duplicated subscription identifier", f"a subscription identified by {subscription[:80]!r} already exists")
        prefetch = self.max_unacked
        value = headers.get("prefetch-count")
        if value is not None and value.isdigit() and 0 < int(value) < prefetch:
            prefetch = int(value)
        sub = _Sub(state, subscription, kind, name, ack, prefetch, auto_delete=headers.get("auto-delete") == "true")
        sub.suffix = f"@{state.prefix}{subscription}"
        state.subs[subscription] = sub
        if kind == "topic":
            if ack is not AckMode.AUTO:
                sub.queue = f"{_PRIVATE}{next(self._private)}"
                self._queue(sub.queue).subs.append(sub)
            words = tuple(name.split("."))
            if "*" in words or "#" in words:
                sub.pattern = words
                self._patterns.setdefault(words, {})[sub] = None
            else:
                self._exact.setdefault(name, {})[sub] = None
        else:
            sub.queue = name
            q = self._queue(name)
            q.subs.append(sub)
            self._dispatch(q)

    async def unsubscribe(self, client: BrokerClient, subscription: str, headers: Mapping[str, str] = _NO_HEADERS) -> None:
        state = self._clients.get(client.client_id)
        sub = state.subs.get(subscription) if state is not None else None
        if state is None or sub is None:
            raise ProtocolError("No subscription found", "UNSUBSCRIBE must refer to an existing subscription")
        self._remove_sub(state, sub)

    def _remove_sub(self, state: _Client, sub: _Sub) -> None:
        state.subs.pop(sub.id, None)
        if sub.kind == "topic":
            if sub.pattern:
                subs = self._patterns.get(sub.pattern)
                if subs is not None:
                    subs.pop(sub, None)
                    if not subs:
                        del self._patterns[sub.pattern]
            else:
                subs = self._exact.get(sub.name)
                if subs is not None:
                    subs.pop(sub, None)
                    if not subs:
                        del self._exact[sub.name]
            if not sub.queue:
                return
        q = self._queues.get(sub.queue)
        if q is not None and sub in q.subs:
            index = q.subs.index(sub)
            q.subs.pop(index)
            if index < q.next:
                q.next -= 1
        # "If the connection fails before a client sends an ACK frame for the
        # message the server will assume the message has not been processed and
        # MAY redeliver the message to another client."
        held = list(sub.unacked.values())
        for ack_id in sub.unacked:
            state.pending.pop(ack_id, None)
        sub.unacked.clear()
        if q is not None and (sub.auto_delete or sub.kind == "topic") and not q.subs:
            # RabbitMQ's auto-delete: the queue goes with its last subscriber.
            self._drop_queue(q)
            for h in held:
                self.stored_bytes -= h.message.size
            return
        self._requeue(sub.queue, held)

    # --- queues ----------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue(name)
        return q

    def _drop_queue(self, q: _Queue) -> None:
        for held in q.messages:
            self.stored_bytes -= held.message.size
        q.messages.clear()
        self._queues.pop(q.name, None)

    def _gc(self, q: _Queue) -> None:
        if not q.messages and not q.subs:
            self._queues.pop(q.name, None)

    def _requeue(self, name: str, held: list[_Held]) -> None:
        if not held:
            return
        q = self._queue(name)
        for h in held:
            h.redelivered = True
        q.messages.extendleft(reversed(held))
        self._trim(q)
        self._dispatch(q)

    def _trim(self, q: _Queue) -> None:
        while len(q.messages) > self.max_queue_messages:
            dropped = q.messages.popleft()
            self.stored_bytes -= dropped.message.size
            logger.warning("queue %r over %d messages: oldest message dropped", q.name, self.max_queue_messages)

    def _dispatch(self, q: _Queue) -> None:
        """Hand waiting messages to subscribers with room, round robin."""
        while q.messages and q.subs:
            n = len(q.subs)
            for _ in range(n):
                if q.next >= n:
                    q.next = 0
                sub = q.subs[q.next]
                q.next += 1
                if sub.has_room:
                    break
            else:
                return
            held = q.messages.popleft()
            state = sub.client
            state.tag += 1
            ack_id = f"{state.prefix}{state.tag}"
            if sub.ack is AckMode.AUTO:
                self.stored_bytes -= held.message.size
            else:
                sub.unacked[ack_id] = held
                sub.client.pending[ack_id] = sub
            sub.client.client.deliver(sub.id, held.message, ack_id, held.redelivered)
        self._gc(q)

    # --- publishing ------------------------------------------------------

    async def publish(
        self,
        destination: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        sender: BrokerClient | None = None,
    ) -> None:
        kind, name = parse_destination(destination)
        if kind == "topic":
            message = Message(display_destination("/topic/", name), body, headers)
            self._fan_out(name, message)
            return
        message = Message(display_destination("/queue/", name), body, headers)
        size = message.size
        if self.stored_bytes + size > self.max_stored_bytes:
            raise BrokerError("Broker storage full", f"queued messages are limited to {self.max_stored_bytes} bytes")
        q = self._queue(name)
        self.stored_bytes += size
        q.messages.append(_Held(message, name))
        self._trim(q)
        self._dispatch(q)

    def _fan_out(self, key: str, message: Message) -> None:
        # The hot path: an ack:auto subscription costs a concatenation more
        # than handing the message over; only client-ack ones are held.
        message_id = f"T{next(self._ids)}"
        exact = self._exact.get(key)
        if exact:
            for sub in exact:
                if sub.queue:
                    self._hold(sub, message)
                else:
                    sub.client.client.deliver(sub.id, message, message_id + sub.suffix)
        if self._patterns:
            words = tuple(key.split("."))
            for pattern, subs in self._patterns.items():
                if topic_matches(pattern, words):
                    for sub in subs:
                        if sub.queue:
                            self._hold(sub, message)
                        else:
                            sub.client.client.deliver(sub.id, message, message_id + sub.suffix)

    def _hold(self, sub: _Sub, message: Message) -> None:
        """A topic message for a subscription with client acknowledgements: into its queue."""
        size = message.size
        if self.stored_bytes + size > self.max_stored_bytes:
            logger.warning("broker storage full: a /topic message for a client-ack subscription dropped")
            return
        q = self._queue(sub.queue)
        self.stored_bytes += size
        q.messages.append(_Held(message, sub.queue))
        self._trim(q)
        self._dispatch(q)

    # --- acknowledgements --------------------------------------------------

    def _lookup(self, client: BrokerClient, ack_id: str, subscription: str | None, command: str) -> tuple[_Client, _Sub]:
        state = self._clients.get(client.client_id)
        if state is not None:
            sub = state.pending.get(ack_id)
            if sub is not None:
                # A subscription header naming another subscription is ignored, as RabbitMQ does.
                return state, sub
            head, at, rest = ack_id.partition("@")
            if at and head[:1] == "T" and rest.startswith(state.prefix):
                tag = head[1:]  # an ack:auto topic delivery
            else:
                prefix, _, tag = ack_id.rpartition("-")
                if f"{prefix}-" != state.prefix:
                    tag = ""
            if tag.isdigit():
                # A message of this connection that holds nothing (acknowledged
                # already, or of an ack:auto subscription). RabbitMQ confirms the
                # frame, then its channel fails: RECEIPT, then ERROR and close.
                raise ProtocolError(
                    "precondition_failed", f"PRECONDITION_FAILED - unknown delivery tag {int(tag)}", error_after_receipt=True
                )
        # Not an id this connection was given; RabbitMQ keeps the connection.
        raise frame_error("Invalid header", f'"{command}" must include a valid "id" header\n')

    def _take(self, state: _Client, sub: _Sub, ack_id: str) -> list[_Held]:
        # "The ACK frames sent by the client will be treated as a cumulative
        # acknowledgment" in client mode; client-individual: "not cumulative".
        if sub.ack is AckMode.CLIENT:
            taken: list[_Held] = []
            for key in list(sub.unacked):
                taken.append(sub.unacked.pop(key))
                state.pending.pop(key, None)
                if key == ack_id:
                    break
            return taken
        state.pending.pop(ack_id, None)
        return [sub.unacked.pop(ack_id)]

    async def ack(self, client: BrokerClient, ack_id: str, *, subscription: str | None = None) -> None:
        state, sub = self._lookup(client, ack_id, subscription, "ACK")
        for held in self._take(state, sub, ack_id):
            self.stored_bytes -= held.message.size
        q = self._queues.get(sub.queue)
        if q is not None:
            self._dispatch(q)

    async def nack(
        self, client: BrokerClient, ack_id: str, *, subscription: str | None = None, requeue: bool = True
    ) -> None:
        state, sub = self._lookup(client, ack_id, subscription, "NACK")
        # "NACK applies either to one single message (client-individual) or to
        # all messages sent before and not yet ACK'ed or NACK'ed (client)."
        held = self._take(state, sub, ack_id)
        if requeue:
            self._requeue(sub.queue, held)
        else:
            for h in held:
                self.stored_bytes -= h.message.size
            q = self._queues.get(sub.queue)
            if q is not None:
                self._dispatch(q)
