"""The broker interface: what the STOMP server needs from a message broker.

Two implementations are planned: :class:`~.memory.MemoryBroker` (embedded,
the default) and a relay to RabbitMQ's STOMP plugin. Every operation is a
coroutine so that an implementation may wait for its upstream (the relay only
confirms a SUBSCRIBE once RabbitMQ's RECEIPT arrived); the server sends the
client's RECEIPT after the coroutine returns, and an exception from it
(a :class:`~.errors.StompError`) becomes the client's ERROR frame.

Deliveries go the other way through :class:`BrokerClient`, synchronously and
without blocking: a broker calls ``client.deliver(...)`` for each MESSAGE and
``client.broker_lost(error)`` when the client's broker-side state is gone
(e.g. the upstream connection dropped), after which the server sends ERROR
and closes that client.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from .auth import Principal
from .codec import message_tail
from .errors import StompError
from .frames import AckMode, Version
from .registry import RegistryTransport

__all__ = ["Broker", "BrokerClient", "Message"]

logger = logging.getLogger(__name__)

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """A published message, shared by every subscriber it is delivered to.

    The part of the MESSAGE frame that is the same for all subscribers
    (destination, user headers, content-length, body) is serialized once per
    version and cached here, so fan-out to N subscribers costs N small
    per-subscriber prefixes, not N serializations.
    """

    destination: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    _tails: dict[tuple[Version | None, bool], bytes] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """Approximate bytes held in memory (used for storage limits)."""
        return len(self.body) + len(self.destination) + sum(len(k) + len(v) + 2 for k, v in self.headers) + 64

    def tail(self, version: Version | None, *, text: bool = False, destination: str | None = None) -> bytes:
        """Serialized shared part of its MESSAGE frames (:func:`~.codec.message_tail`), cached per version.

        ``destination`` overrides the destination header (not cached).
        """
        key = (version, text)
        if destination is None:
            cached = self._tails.get(key)
            if cached is not None:
                return cached
            data = self._tails[key] = message_tail(self.destination, self.headers, self.body, version, text=text)
            return data
        return message_tail(destination, self.headers, self.body, version, text=text)


class BrokerClient(Protocol):
    """What a broker sees of one client connection (implemented by the server)."""

    @property
    def client_id(self) -> str:
        """Unique among the live clients of a broker (the STOMP session id)."""
        ...

    def deliver(self, subscription: str, message: Message, message_id: str, redelivered: bool = False) -> None:
        """Queue a MESSAGE for ``subscription``; ``message_id`` is also its ack id.

        Must not block and must not call back into the broker: a client that
        cannot keep up is failed and closed later, and only then does the
        server call :meth:`Broker.connection_lost`.
        """
        ...

    def broker_lost(self, error: StompError) -> None:
        """The client's state in the broker is gone: send ERROR and close."""
        ...


class Broker(abc.ABC):
    """Base class of brokers.

    Transactions are not the broker's business: the server holds a
    transaction's SEND/ACK/NACK frames and carries them out in order on
    COMMIT (as RabbitMQ's STOMP plugin does), so a broker only ever sees
    committed operations, and /app handlers and user destinations take part
    in transactions too.
    """

    async def start(self) -> None:
        """Open upstream resources (no-op by default)."""

    async def close(self) -> None:
        """Release resources; live clients are the server's to close."""

    # --- connection life cycle -------------------------------------------

    async def connect(self, client: BrokerClient, principal: Principal | None) -> None:
        """A client finished CONNECT (before CONNECTED is sent)."""

    @abc.abstractmethod
    async def connection_lost(self, client: BrokerClient) -> None:
        """The client is gone (DISCONNECT, ERROR or transport loss): drop its
        subscriptions and redeliver what it left unacknowledged."""

    # --- subscriptions ---------------------------------------------------

    @abc.abstractmethod
    async def subscribe(
        self, client: BrokerClient, subscription: str, destination: str, ack: AckMode, headers: Mapping[str, str]
    ) -> None:
        """Start delivering ``destination`` to ``client`` under ``subscription``.

        ``headers`` are the other SUBSCRIBE headers (e.g. ``prefetch-count``,
        ``auto-delete``); unknown ones are ignored, ``selector`` never evaluated.
        """

    @abc.abstractmethod
    async def unsubscribe(
        self, client: BrokerClient, subscription: str, headers: Mapping[str, str] = _NO_HEADERS
    ) -> None:
        """Stop a subscription; its unacknowledged messages are redelivered.

        ``headers`` are the other UNSUBSCRIBE headers: RabbitMQ deletes the
        queue of a durable subscription only when they say ``durable:true``
        (or ``persistent:true``).
        """

    # --- publishing and acknowledgements ----------------------------------

    @abc.abstractmethod
    async def publish(
        self,
        destination: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        sender: BrokerClient | None = None,
    ) -> None:
        """Route one message (``sender`` is None for server-side publishes).

        ``headers`` are the message's user headers, already cleaned of
        server-set ones (destination, message-id, subscription, ack, ...).
        """

    async def confirmed(self, client: BrokerClient) -> None:
        """Wait until everything ``client`` published so far is accepted; raise
        the StompError of a publish that was refused.

        The server calls it before each RECEIPT. :meth:`publish` may return
        before its message is confirmed (the relay pipelines SENDs to
        RabbitMQ); this default returns at once, for brokers whose publish is
        done when it returns.
        """

    @abc.abstractmethod
    async def ack(self, client: BrokerClient, ack_id: str, *, subscription: str | None = None) -> None:
        """Acknowledge the delivery ``ack_id`` (cumulatively in ``client`` mode);
        unknown ids raise a StompError."""

    @abc.abstractmethod
    async def nack(
        self, client: BrokerClient, ack_id: str, *, subscription: str | None = None, requeue: bool = True
    ) -> None:
        """Reject a delivery: redeliver it (``requeue``) or drop it."""

    # --- user destinations -------------------------------------------------

    def user_destination(self, user: str, destination: str) -> str | None:
        """The broker destination reaching every session of ``user`` subscribed to
        ``<user_prefix><destination>``, on every server node sharing this broker.

        None (the default): the server sends to the user's sessions it holds
        itself. A broker shared by several nodes (the RabbitMQ relay) returns
        one, and :meth:`StompServer.send_to_user` publishes there once.
        """
        return None

    # --- the cluster-wide user registry --------------------------------------

    def registry_transport(self) -> RegistryTransport | None:
        """What carries the user registry between nodes sharing this broker.

        None (the default): the registry holds this node only. The RabbitMQ
        relay returns one (a :class:`~.registry.RegistryTransport`); the
        server binds it once, at its creation.
        """
        return None
