"""RabbitRelay: a :class:`~sockjs_server.stomp.broker.Broker` that relays to RabbitMQ's STOMP plugin.

Connection design (measured, see the README's relay section): a hybrid of
Spring's one-connection-per-client relay and a multiplexed one.

* Two shared connections per server node. The *subscriber* connection holds
  the node's plain ``/topic/`` subscriptions (``ack:auto``, no options) and
  user-destination subscriptions, de-duplicated: one upstream SUBSCRIBE per
  distinct destination, whatever the number of local subscribers, each
  MESSAGE copied to them in-process. The *publisher* connection carries
  server-side publishes and clients' SENDs to ``/topic/`` keys. RabbitMQ
  then does one delivery per node instead of one per client, and a chat
  client costs it no connection at all.
* One connection of its own per client, opened on first need, for
  everything whose semantics live in a RabbitMQ connection: queue
  subscriptions, ``client`` / ``client-individual`` acks (RabbitMQ's ack ids
  and its cumulative ``client`` acks are per connection), subscriptions with
  options (``prefetch-count``, ``durable``, ``x-queue-name``...),
  ``/temp-queue/`` replies, ``/exchange/`` and ``/amq/queue/`` destinations.
  RabbitMQ answers a bad destination there with ERROR and closes the
  connection: only that client is affected.

Every frame relayed for a client is sent with a relay receipt, and the
server's RECEIPT to the client never confirms what RabbitMQ did not accept.
SENDs are pipelined: a client's SEND returns once written (up to
``max_unconfirmed`` unconfirmed ones per client); a frame with a client
``receipt`` (and any SUBSCRIBE, ACK...) first waits for the confirmation of
everything the client sent before (:meth:`RabbitRelay.confirmed`). A client's
frames stay in order: they all go on one connection at a time, and switching
connection waits for the previous one's confirmations. A SEND refused later
is still reported to its sender (ERROR, then the connection is closed, as
RabbitMQ does).

Isolation: RabbitMQ closes a connection on any frame it refuses, so the
shared publisher only carries frames it is known to accept: a plain
``/topic/`` SEND (no header RabbitMQ interprets, such as ``expiration`` or
``priority``) to a routing key that RabbitMQ already accepted from this relay.
Everything else goes on the sender's own connection, where a refusal ends
only that client; a routing key's first SEND (and one refused by topic
permissions) thus never touches the shared publisher. Should the shared
publisher fail all the same (permissions changed at run time), the frames it
had not confirmed are sent again, each on its sender's own connection, so
that the offender is refused there alone and the others are delivered
(possibly twice in that rare case: at least once, never lost).

Failover that keeps sessions: when a connection to RabbitMQ is lost (not
refused), the relay reconnects with exponential backoff, subscribes the
shared subscriptions again, reopens each affected client's own connection
with its subscriptions (same headers), and sends the SENDs RabbitMQ had not
confirmed again, in order, before the client's next frame; meanwhile a
client's frames wait (at most ``failover_timeout`` seconds, then ERROR
``Broker not available``). Every relayed SEND carries a relay id (node,
client, sequence); a resent one is marked, and a marked message a
subscription already got from that client is dropped on delivery (see
:meth:`RabbitRelay._duplicate`). What lives only in a lost connection
(``/temp-queue/`` replies, exclusive or auto-delete queues) cannot be
restored: that client alone gets ERROR ``Broker connection lost``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
import ssl as _ssl
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import uuid4
from urllib.parse import quote, unquote, urlsplit

from ..auth import Principal
from ..broker import _NO_HEADERS, Broker, BrokerClient, Message
from ..errors import AccessDenied, BrokerError, ProtocolError, StompError, frame_error
from ..frames import AckMode, Command, Frame
from ..registry import RegistryTransport
from .presence import REGISTRY_KEY_PREFIX, RabbitRegistry
from .upstream import Upstream

__all__ = ["RabbitRelay", "RelayState", "relay_from_url", "USER_ID_HEADER"]

logger = logging.getLogger(__name__)

#: Header carrying the sender's user name through RabbitMQ. RabbitMQ checks a
#: ``user-id`` header against the relay's own login (and closes the
#: connection when it differs), so the server's ``user-id`` travels under
#: this name and is restored on delivery.
USER_ID_HEADER = "x-sockjs-user-id"

#: Header carrying a SEND's own ``receipt`` header through RabbitMQ (which
#: copies SEND headers into MESSAGE frames): the relay's upstream frames carry
#: the relay's receipts, so the client's travels under this name and is
#: restored on delivery, as RabbitMQ shows it to its own clients.
RECEIPT_HEADER = "x-sockjs-receipt"
#: Likewise a SEND's ``transaction`` header (the relay carries out the
#: transaction itself; RabbitMQ must not see the name).
TRANSACTION_HEADER = "x-sockjs-transaction"
#: The relay's id of a relayed SEND, ``<node>:<client>:<sequence>`` (``:r``
#: appended when sent again after a lost connection): what duplicate
#: detection reads. Set by the relay only (a client's is dropped), removed on delivery.
RELAY_ID_HEADER = "x-sockjs-relay-id"
#: Client headers that travel under another name, restored on delivery.
_CARRIED = {"user-id": USER_ID_HEADER, "receipt": RECEIPT_HEADER, "transaction": TRANSACTION_HEADER}
_RESTORED = {v: k for k, v in _CARRIED.items()}

#: MESSAGE headers set by RabbitMQ or by the relay, not passed on as message headers.
_BROKER_HEADERS = frozenset(
    {
        "subscription",
        "destination",
        "message-id",
        "redelivered",
        "ack",
        "content-length",
        "receipt",
        "transaction",
        "user-id",
        USER_ID_HEADER,
        RECEIPT_HEADER,
        TRANSACTION_HEADER,
        RELAY_ID_HEADER,
    }
)

#: A /topic/ routing key the shared connection may subscribe or publish to:
#: anything RabbitMQ accepts without closing the connection.
_TOPIC_KEY = re.compile(r"[^/%\x00-\x1f]{1,255}")

#: SEND headers that RabbitMQ interprets (AMQP properties) and may refuse
#: (``expiration:abc`` closes the connection): such frames never go on the
#: shared publisher. ``content-type`` is allowed there when short enough.
_INTERPRETED_HEADERS = frozenset(
    {
        "content-encoding",
        "persistent",
        "priority",
        "correlation-id",
        "reply-to",
        "expiration",
        "amqp-message-id",
        "message-id",
        "timestamp",
        "type",
        "amqp-type",
        "app-id",
        "cluster-id",
        "user-id",
        "delivery-mode",
    }
)

#: Local verdicts on a dead connection (as opposed to RabbitMQ's ERROR, passed on as it is).
_CONNECTION_FAILURES = frozenset({"Broker heart-beat timeout", "Broker receipt timeout", "Broker protocol error"})

#: Routing keys RabbitMQ accepted on this relay's login, remembered for the shared publisher.
MAX_TEMP_QUEUES = 1000
"""Distinct ``reply-to:/temp-queue/<name>`` names one client connection may use."""

MAX_KNOWN_KEYS = 10_000

MAX_DEDUP_ENTRIES = 65_536
"""(subscription, sending client) pairs whose last relay sequence number a node remembers to drop duplicates."""

MAX_STALE_SESSIONS = 8
"""Earlier broker sessions of one client whose ack ids are answered as redelivered."""

#: Losses of a connection (as opposed to a frame RabbitMQ refused): the relay reconnects and restores.
_LOSSES = _CONNECTION_FAILURES | {"Broker connection lost", "Broker connection closed"}

_USER_KEY_PREFIX = "sockjs-user."
#: Ack ids of messages delivered in-process (nothing to acknowledge upstream).
_LOCAL_ACK_PREFIX = "relay-local@@"


class RelayState(enum.Enum):
    """Whether the relay can serve clients."""

    STOPPED = "stopped"  # start() not called yet
    CONNECTING = "connecting"  # first attempt under way
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"  # broker unreachable or lost; reconnecting with backoff
    CLOSED = "closed"


def _enc(text: str) -> str:
    # Routing keys are taken literally by RabbitMQ: percent-encode everything
    # but letters, digits and "_-~", and the dot too, so "user.suffix" splits one way only.
    return quote(text, safe="").replace(".", "%2E")


def backoff(
    initial: float, maximum: float, jitter: Callable[[float, float], float] = random.uniform
) -> Iterator[float]:
    """Reconnection delays: ``initial`` doubling up to ``maximum``, each times a
    random factor in [0.8, 1.2] so that nodes restarted together do not retry in step."""
    delay = initial
    while True:
        yield delay * jitter(0.8, 1.2)
        delay = min(delay * 2, maximum)


def _unavailable(detail: str) -> BrokerError:
    return BrokerError("Broker not available", detail)


def _plain_headers(pairs: Sequence[tuple[str, str]]) -> bool:
    """True if RabbitMQ takes every header of this SEND without interpreting it."""
    for name, value in pairs:
        if name in _INTERPRETED_HEADERS or len(name) > 255:
            return False
        if name == "content-type" and len(value) > 255:
            return False
    return True


def _as_lost(error: StompError) -> StompError:
    """A dead connection (not a refusal) is told to clients as ``Broker connection lost``."""
    if error.message in _CONNECTION_FAILURES or error.message == "Broker connection closed":
        return BrokerError("Broker connection lost", f"{error.message}: {error.detail}" if error.detail else error.message)
    return error


def _retrieved(future: asyncio.Future[None]) -> None:
    """Done callback of a frame nobody waits for: its failure (a lost connection) is handled elsewhere."""
    if not future.cancelled():
        future.exception()


def _marked(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A SEND's headers with its relay id marked as sent again (``:r``)."""
    return [(k, v + ":r" if k == RELAY_ID_HEADER and not v.endswith(":r") else v) for k, v in pairs]


def _reason(error: StompError) -> str:
    """A short, stable name for a refusal, for statistics (RabbitMQ's ERROR message)."""
    word = re.sub(r"[^a-z0-9]+", "_", error.message.lower()).strip("_")
    return word[:40] or "error"


MAX_IDLE_SHARED = 256
"""Unused shared topic subscriptions kept open on the subscriber connection (see ``_leave_shared``)."""


@dataclass(eq=False, slots=True)
class _Shared:
    """One de-duplicated subscription on the subscriber connection."""

    upstream_id: str
    destination: str
    #: (client state, local subscription key) pairs receiving its messages.
    subscribers: dict[tuple[_Client, str], None] = field(default_factory=dict)
    ready: asyncio.Future[None] | None = None


@dataclass(eq=False, slots=True)
class _Publish:
    """A client's SEND written to RabbitMQ and not yet confirmed."""

    pairs: list[tuple[str, str]]
    body: bytes
    conn: Upstream
    #: On the shared publisher (sent again on the client's own connection if that fails).
    shared: bool
    #: Routing key to remember as accepted once confirmed (a plain /topic/ SEND on the own connection).
    key: str | None
    done: asyncio.Future[None]
    #: Times it was sent again after its connection was lost.
    replays: int = 0


@dataclass(eq=False, slots=True)
class _Client:
    client: BrokerClient
    principal: Principal | None
    own: Upstream | None = None
    opening: asyncio.Future[Upstream] | None = None
    #: Subscriptions on the own connection: key -> destination.
    own_subs: dict[str, str] = field(default_factory=dict)
    #: Client-ack subscriptions on the own connection: key -> mode.
    ack_modes: dict[str, AckMode] = field(default_factory=dict)
    #: Delivered, not yet acknowledged: RabbitMQ ack id -> subscription key, in delivery order.
    unacked: dict[str, str] = field(default_factory=dict)
    #: /temp-queue/ destinations the client listens to -> subscription key (the
    #: destination itself for the implicit subscription a reply-to makes).
    temp_subs: dict[str, str] = field(default_factory=dict)
    #: User-destination subscriptions: key -> user destination suffix ("/queue/x").
    user_subs: dict[str, str] = field(default_factory=dict)
    #: Anonymous sessions' user-destination subscriptions, served on this node
    #: only: key -> the server's per-session destination.
    local_subs: dict[str, str] = field(default_factory=dict)
    shared: dict[str, _Shared] = field(default_factory=dict)
    #: Pipelined SENDs not yet confirmed, oldest first.
    inflight: deque[_Publish] = field(default_factory=deque)
    #: Frames of a failed shared publisher being sent again on the own connection.
    replaying: bool = False
    #: Callers waiting in :meth:`RabbitRelay.confirmed` (they report a refusal themselves).
    barriers: int = 0
    #: The first of its SENDs RabbitMQ refused.
    refusal: StompError | None = None
    gone: bool = False
    #: Node-local number of this client, and of its relayed SENDs (the relay id).
    serial: int = 0
    seq: int = 0
    #: The SUBSCRIBE headers of each own-connection subscription, to subscribe again after a loss.
    own_pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: While its lost connection (or lost SENDs) is being restored: its frames wait for this.
    paused: asyncio.Future[None] | None = None
    #: When the restoration is given up (loop time).
    paused_until: float = 0.0
    #: Its own connection was lost and is not open again with its subscriptions yet.
    own_lost: bool = False
    #: Broker sessions of its earlier own connections (their ack ids are stale).
    stale: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_STALE_SESSIONS))

    @property
    def has_broker_state(self) -> bool:
        return bool(self.shared or self.own_subs or self.temp_subs) or self.own is not None


class RabbitRelay(Broker):
    """Relay STOMP to RabbitMQ: ``StompServer(broker=RabbitRelay("127.0.0.1", 61613, "guest", "guest", "/"))``.

    :param host, port: RabbitMQ's STOMP listener.
    :param login, passcode, virtual_host: what the relay logs in with, on
        every connection it opens (client CONNECT credentials are only seen
        by the server's ``authenticate`` hook).
    :param client_credentials: optional ``f(principal) -> (login, passcode)``:
        each client then gets its own connection, logged in with these, and
        nothing is shared.
    :param heartbeat: seconds between heart-beats each way with the broker;
        a broker silent for ``heartbeat_tolerance`` intervals is considered lost.
    :param connect_timeout: seconds to open and log in a connection.
    :param receipt_timeout: seconds RabbitMQ may take to confirm a frame
        before the connection is considered broken.
    :param reconnect_delay, max_reconnect_delay: backoff after a failed or
        lost connection: the first retry after ``reconnect_delay`` seconds,
        doubling (with jitter) up to ``max_reconnect_delay``.
    :param share_topics: de-duplicate plain ``/topic/`` subscriptions on the
        shared connection (default). False gives every client its own
        connection for everything, as Spring's relay does.
    :param user_exchange: the exchange carrying user destinations between
        nodes (``amq.direct`` exists in every virtual host).
    :param max_unacked: unacknowledged messages per ``client`` /
        ``client-individual`` subscription: RabbitMQ's ``prefetch-count``
        (unlimited by default there), lowered by a smaller client value.
    :param ssl: an :class:`ssl.SSLContext` for TLS to RabbitMQ (e.g. its
        ``stomp.listeners.ssl`` port 61614), or True for
        ``ssl.create_default_context()`` (certificates verified, host name
        checked); None (default): plain TCP.
    :param addresses: several ``(host, port)`` of one RabbitMQ cluster,
        tried in turn (replaces ``host`` and ``port``): when the connection is
        lost or refused the relay moves on to the next address, with the
        same backoff.
    :param max_unconfirmed: a client's pipelined SENDs in flight before its
        next SEND waits for the oldest confirmation.
    :param max_unconfirmed_bytes: bytes written to one RabbitMQ connection
        and not confirmed yet; past it (RabbitMQ not reading, e.g. during a
        memory or disk alarm) a SEND is answered with ERROR ``Broker busy``
        instead of being buffered.
    :param cluster: the name of the user registry the nodes share (nodes on
        one virtual host with the same name see each other's users).
    :param registry_heartbeat: seconds between the registry's heart-beats; a
        node silent for three of them is taken for dead (the fallback when
        RabbitMQ's event exchange plugin is not enabled).
    :param failover_timeout: seconds a client's frames may wait for a lost
        broker connection to be restored (its sessions are kept meanwhile);
        past it the client gets ERROR ``Broker not available``. 0: no
        failover, every session holding broker state gets ERROR ``Broker
        connection lost`` at once.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 61613,
        login: str | None = "guest",
        passcode: str | None = "guest",
        virtual_host: str | None = "/",
        *,
        client_credentials: Callable[[Principal | None], tuple[str, str]] | None = None,
        heartbeat: float = 10.0,
        heartbeat_tolerance: float = 3.0,
        connect_timeout: float = 10.0,
        receipt_timeout: float = 30.0,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 30.0,
        share_topics: bool = True,
        user_exchange: str = "amq.direct",
        max_unacked: int = 1000,
        ssl: _ssl.SSLContext | bool | None = None,
        addresses: Sequence[tuple[str, int]] | None = None,
        max_unconfirmed: int = 256,
        max_unconfirmed_bytes: int = 8 * 1024 * 1024,
        cluster: str = "default",
        registry_heartbeat: float = 5.0,
        failover_timeout: float = 30.0,
    ) -> None:
        if heartbeat < 0 or heartbeat_tolerance < 1:
            raise ValueError("heartbeat must be >= 0 and heartbeat_tolerance >= 1")
        if connect_timeout <= 0 or receipt_timeout <= 0:
            raise ValueError("connect_timeout and receipt_timeout must be positive")
        if reconnect_delay <= 0 or max_reconnect_delay < reconnect_delay:
            raise ValueError("need 0 < reconnect_delay <= max_reconnect_delay")
        if not user_exchange or "/" in user_exchange:
            raise ValueError(f"invalid user_exchange {user_exchange!r}")
        if max_unacked <= 0:
            raise ValueError("max_unacked must be positive")
        if max_unconfirmed <= 0 or max_unconfirmed_bytes <= 0:
            raise ValueError("max_unconfirmed and max_unconfirmed_bytes must be positive")
        if failover_timeout < 0:
            raise ValueError("failover_timeout must be >= 0")
        self.addresses: list[tuple[str, int]] = list(addresses) if addresses else [(host, port)]
        if not all(h and 0 < p < 65536 for h, p in self.addresses):
            raise ValueError(f"invalid broker addresses {self.addresses!r}")
        self._address = 0
        self.host, self.port = self.addresses[0]
        self.ssl: _ssl.SSLContext | None = _ssl.create_default_context() if ssl is True else (ssl or None)
        self.max_unconfirmed = max_unconfirmed
        self.max_unconfirmed_bytes = max_unconfirmed_bytes
        self.failover_timeout = failover_timeout
        #: This node's part of relay ids (see RELAY_ID_HEADER).
        self.node_id = uuid4().hex[:12]
        self._serials = 0
        #: (subscription scope, sending client) -> highest relay sequence delivered, LRU.
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        #: When the clients waiting for the lost subscriber connection get ERROR (loop time).
        self._failover_until: float | None = None
        self._failover_timer: asyncio.TimerHandle | None = None
        #: Resolved (and replaced) whenever availability or a client's pause changes.
        self._change: asyncio.Future[None] | None = None
        #: Failover statistics: shared-connection losses survived with their
        #: sessions, client connections restored, SENDs sent again, duplicates
        #: dropped, stale acks answered, sessions ended because of a loss.
        self.failovers_kept = 0
        self.clients_restored = 0
        self.replayed = 0
        self.duplicates_dropped = 0
        self.stale_acks = 0
        self.sessions_lost = 0
        #: Frames RabbitMQ refused (ERROR), by reason; shared publisher failures; address changes.
        self.refused: dict[str, int] = {}
        self.publisher_failures = 0
        self.failovers = 0
        self._known_keys: OrderedDict[str, None] = OrderedDict()
        self.login = login
        self.passcode = passcode
        self.virtual_host = virtual_host
        self.client_credentials = client_credentials
        self.heartbeat = heartbeat
        self.heartbeat_tolerance = heartbeat_tolerance
        self.connect_timeout = connect_timeout
        self.receipt_timeout = receipt_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.share_topics = share_topics and client_credentials is None
        self.user_exchange = user_exchange
        self.max_unacked = max_unacked
        self._user_prefix = f"/exchange/{user_exchange}/{_USER_KEY_PREFIX}"
        #: Destinations only the server uses: user destinations and the user registry.
        self._reserved = (self._user_prefix, f"/exchange/{user_exchange}/{REGISTRY_KEY_PREFIX}", f"/amq/queue/{REGISTRY_KEY_PREFIX}")
        if registry_heartbeat <= 0:
            raise ValueError("registry_heartbeat must be positive")
        self._registry = RabbitRegistry(
            lambda name, on_message: self._upstream(name, on_message=on_message),
            partial(backoff, reconnect_delay, max_reconnect_delay),
            exchange=user_exchange,
            virtual_host=virtual_host or "/",
            cluster=cluster,
            heartbeat=registry_heartbeat,
            tolerance=3.0,
        )
        #: Called with the new state on every change (e.g. to export it).
        self.on_state_change: Callable[[RelayState], None] | None = None
        self._state = RelayState.STOPPED
        self.last_error: StompError | None = None
        self._clients: dict[str, _Client] = {}
        self._shared: dict[str, _Shared] = {}  # destination -> shared subscription
        # Shared subscriptions nobody uses any more, oldest first (see _leave_shared).
        self._idle_shared: dict[str, _Shared] = {}
        self._shared_ids: dict[str, _Shared] = {}  # upstream id -> shared subscription
        self._next_id = 0
        self._subscriber: Upstream | None = None
        self._publisher: Upstream | None = None
        self._publisher_opening: asyncio.Future[Upstream] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._first_attempt: asyncio.Event | None = None
        #: Reconnections of the shared connections since start (statistics).
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<RabbitRelay {self.host}:{self.port} vhost={self.virtual_host!r} {self._state.value}>"

    # --- state -----------------------------------------------------------------

    @property
    def state(self) -> RelayState:
        return self._state

    @property
    def available(self) -> bool:
        return self._state is RelayState.AVAILABLE

    def _set_state(self, state: RelayState) -> None:
        if state is self._state:
            return
        self._state = state
        self._notify()
        if state is RelayState.AVAILABLE:
            logger.info("broker %s:%s available", self.host, self.port)
        elif state is RelayState.UNAVAILABLE:
            logger.warning("broker %s:%s unavailable: %s", self.host, self.port, self.last_error)
        if self.on_state_change is not None:
            self.on_state_change(state)

    @property
    def connection_count(self) -> int:
        """Open connections to RabbitMQ (shared and per-client)."""
        count = sum(1 for c in (self._subscriber, self._publisher) if c is not None and c.connected)
        return count + sum(1 for c in self._clients.values() if c.own is not None and c.own.connected)

    @property
    def address(self) -> str:
        """The broker address in use (or tried next)."""
        return f"{self.host}:{self.port}"

    def _next_address(self) -> None:
        if len(self.addresses) > 1:
            self._address = (self._address + 1) % len(self.addresses)
            self.host, self.port = self.addresses[self._address]
            self.failovers += 1
            logger.info("broker address now %s:%s", self.host, self.port)

    def _connections(self) -> Iterator[Upstream]:
        """The open connections to RabbitMQ."""
        for conn in (self._subscriber, self._publisher, *(c.own for c in self._clients.values())):
            if conn is not None and conn.connected:
                yield conn

    def stats(self) -> dict[str, Any]:
        """Relay health (a stable dict; numbers are gauges for the metrics endpoint).

        ``connections_*``: open RabbitMQ connections per kind; ``unconfirmed``:
        pipelined SENDs awaiting RabbitMQ's confirmation (``unconfirmed_bytes``:
        their bytes with every other unconfirmed frame); ``refused``: frames
        RabbitMQ refused, ``refused_by_reason`` by its ERROR message;
        ``address``: the broker address in use; ``registry_connected`` /
        ``registry_watching``: the user registry's connection, and whether it
        watches RabbitMQ's event exchange (0: dead nodes by heart-beat expiry only).
        Failover: ``failovers_kept``
        (losses of the shared connections after which the sessions went on),
        ``clients_restored`` (client connections reopened with their
        subscriptions), ``replayed`` (SENDs sent again), ``duplicates_dropped``,
        ``stale_acks`` (ACK/NACK of a delivery from before a restored
        connection), ``sessions_lost`` (clients ended because something could
        not be restored in time), ``paused_clients`` (waiting now).
        """
        subscriber = int(self._subscriber is not None and self._subscriber.connected)
        publisher = int(self._publisher is not None and self._publisher.connected)
        own = sum(1 for c in self._clients.values() if c.own is not None and c.own.connected)
        return {
            "state": self._state.value,
            "address": self.address,
            "tls": int(self.ssl is not None),
            "clients": len(self._clients),
            "connections": subscriber + publisher + own,
            "connections_subscriber": subscriber,
            "connections_publisher": publisher,
            "connections_client": own,
            "shared_subscriptions": len(self._shared) - len(self._idle_shared),
            "idle_shared_subscriptions": len(self._idle_shared),
            "reconnects": self.reconnects,
            "failovers": self.failovers,
            "unconfirmed": sum(len(c.inflight) for c in self._clients.values()),
            "unconfirmed_bytes": sum(c.pending_bytes for c in self._connections()),
            "refused": sum(self.refused.values()),
            "refused_by_reason": dict(self.refused),
            "publisher_failures": self.publisher_failures,
            "known_routing_keys": len(self._known_keys),
            "registry_connected": int(self._registry.connected),
            "registry_watching": int(self._registry.watching),
            "failovers_kept": self.failovers_kept,
            "clients_restored": self.clients_restored,
            "replayed": self.replayed,
            "duplicates_dropped": self.duplicates_dropped,
            "stale_acks": self.stale_acks,
            "sessions_lost": self.sessions_lost,
            "paused_clients": sum(1 for c in self._clients.values() if c.paused is not None),
        }

    # --- life cycle --------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting; returns after the first attempt (successful or not).

        Called on the first client CONNECT if the application did not call it.
        The relay keeps retrying in the background while the broker is unreachable.
        """
        if self._state is RelayState.CLOSED:
            return
        self._registry.start()
        if self._supervisor is None:
            self._first_attempt = asyncio.Event()
            self._set_state(RelayState.CONNECTING)
            self._supervisor = asyncio.create_task(self._supervise(), name="rabbit-relay")
        assert self._first_attempt is not None
        try:
            await asyncio.wait_for(self._first_attempt.wait(), 2 * self.connect_timeout + 1)
        except asyncio.TimeoutError:  # pragma: no cover - bounded by connect_timeout
            pass

    async def close(self) -> None:
        """Close every broker connection; live clients are the server's to close."""
        self._set_state(RelayState.CLOSED)
        await self._registry.close()
        if self._failover_timer is not None:
            self._failover_timer.cancel()
            self._failover_timer = None
        self._notify()
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
            self._supervisor = None
        for state in list(self._clients.values()):
            self._close_own(state)
        for conn in (self._subscriber, self._publisher):
            if conn is not None:
                conn.close()
        self._subscriber = self._publisher = None

    def _upstream(self, name: str, **kwargs: object) -> Upstream:
        login, passcode = self.login, self.passcode
        credentials = kwargs.pop("credentials", None)
        if credentials is not None:
            login, passcode = credentials  # type: ignore[misc]
        return Upstream(
            self.host,
            self.port,
            login=login,
            passcode=passcode,
            virtual_host=self.virtual_host,
            ssl=self.ssl,
            max_pending_bytes=self.max_unconfirmed_bytes,
            heartbeat=(self.heartbeat, self.heartbeat),
            heartbeat_tolerance=self.heartbeat_tolerance,
            connect_timeout=self.connect_timeout,
            receipt_timeout=self.receipt_timeout,
            name=name,
            **kwargs,  # type: ignore[arg-type]
        )

    async def _supervise(self) -> None:
        """Keep the shared connections up: connect, wait for loss, back off, repeat."""
        delays = backoff(self.reconnect_delay, self.max_reconnect_delay)
        first = True
        while self._state is not RelayState.CLOSED:
            self._lost = lost = asyncio.Event()
            subscriber = self._upstream("relay-subscriber", on_message=self._on_shared_message)
            subscriber.on_lost = self._subscriber_lost_handler(subscriber)
            try:
                await subscriber.open()
                publisher = await self._open_publisher()
                if subscriber.connected:
                    await self._restore_shared(subscriber)
                if not subscriber.connected:
                    publisher.close()
                    failure = subscriber.failure
                    raise BrokerError(failure.message, failure.detail) if failure else _unavailable("connection lost")
            except BrokerError as exc:
                subscriber.close()
                self.last_error = exc
                self._set_state(RelayState.UNAVAILABLE)
                self._next_address()
                if first and self._first_attempt is not None:
                    self._first_attempt.set()
                first = False
                pause = next(delays)
                logger.info("reconnecting to the broker in %.1f s", pause)
                await asyncio.sleep(pause)
                continue
            if not first:
                self.reconnects += 1
            first = False
            self._subscriber = subscriber
            self._publisher = publisher
            self.last_error = None
            delays = backoff(self.reconnect_delay, self.max_reconnect_delay)
            if self._failover_until is not None:
                self.failovers_kept += 1
                self._failover_until = None
                if self._failover_timer is not None:
                    self._failover_timer.cancel()
                    self._failover_timer = None
            self._set_state(RelayState.AVAILABLE)
            if self._first_attempt is not None:
                self._first_attempt.set()
            await lost.wait()
            self._next_address()
            await asyncio.sleep(next(delays))

    def _subscriber_lost_handler(self, subscriber: Upstream) -> Callable[[StompError, bool], None]:
        def on_lost(error: StompError, reported: bool) -> None:
            if subscriber is self._subscriber:
                self._on_subscriber_lost(error)
            # else: lost while opening; the supervisor sees it and retries.

        return on_lost

    async def _restore_shared(self, subscriber: Upstream) -> None:
        """Subscribe the kept shared subscriptions again on a new subscriber connection."""
        self._shared_ids.clear()
        confirmations = []
        for sub in self._shared.values():
            self._next_id += 1
            sub.upstream_id = f"s{self._next_id}"
            self._shared_ids[sub.upstream_id] = sub
            pairs = [("id", sub.upstream_id), ("destination", sub.destination)]
            confirmations.append(subscriber.send_nowait(Command.SUBSCRIBE, pairs))
        for confirmation in confirmations:
            try:
                await asyncio.shield(confirmation)
            except StompError as exc:
                raise BrokerError(exc.message, exc.detail) from None
        for sub in self._shared.values():
            if sub.ready is not None and not sub.ready.done():
                sub.ready.set_result(None)

    def _on_subscriber_lost(self, error: StompError) -> None:
        """The node's shared subscriptions are gone: restore them, or end the sessions holding state."""
        if self._state is RelayState.CLOSED:
            return
        self.last_error = error
        self._subscriber = None
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()
        if self.failover_timeout > 0:
            # Sessions are kept: the supervisor subscribes the shared
            # subscriptions again (unused ones are dropped) before the relay is
            # available again; frames wait until then, at most failover_timeout.
            for destination in list(self._idle_shared):
                sub = self._shared.pop(destination)
                self._shared_ids.pop(sub.upstream_id, None)
            self._idle_shared.clear()
            if self._failover_until is None:
                loop = asyncio.get_running_loop()
                self._failover_until = loop.time() + self.failover_timeout
                self._failover_timer = loop.call_at(self._failover_until, self._failover_expired)
            self._set_state(RelayState.UNAVAILABLE)
            if self._lost is not None:
                self._lost.set()
            return
        self._set_state(RelayState.UNAVAILABLE)
        shared = list(self._shared.values())
        self._shared.clear()
        self._idle_shared.clear()
        self._shared_ids.clear()
        for sub in shared:
            if sub.ready is not None and not sub.ready.done():
                sub.ready.set_exception(BrokerError(error.message, error.detail))
                sub.ready.exception()
        lost = BrokerError("Broker connection lost", f"{error.message}: {error.detail}" if error.detail else error.message)
        for state in list(self._clients.values()):
            if state.has_broker_state:
                state.shared.clear()
                self._fail_client(state, lost)
        if self._lost is not None:
            self._lost.set()

    def _failover_expired(self) -> None:
        """The broker did not come back within failover_timeout: the kept sessions get ERROR."""
        self._failover_timer = None
        if self.available or self._failover_until is None:
            return
        self._failover_until = None
        error = _unavailable(f"the message broker did not come back within {self.failover_timeout:g} s")
        for state in list(self._clients.values()):
            if state.has_broker_state or state.inflight or state.paused is not None:
                state.shared.clear()
                self.sessions_lost += 1
                self._fail_client(state, error)
        self._shared.clear()
        self._idle_shared.clear()
        self._shared_ids.clear()
        self._notify()

    def _notify(self) -> None:
        """Wake every frame waiting in :meth:`_ready` to look again."""
        change, self._change = self._change, None
        if change is not None and not change.done():
            change.set_result(None)

    async def _ready(self, state: _Client | None, *, restoring: bool = False) -> None:
        """Return once the relay is available and ``state`` not paused; wait (bounded) while a loss is restored.

        Raises ``Broker not available`` at once when the broker is away and no
        failover is under way, or when the failover takes longer than
        ``failover_timeout``. ``restoring``: the caller is the client's own
        restoration (it waits for the relay only).
        """
        loop = asyncio.get_running_loop()
        timed_out = _unavailable(f"the message broker did not come back within {self.failover_timeout:g} s")
        waited = False
        while True:
            if self._state is RelayState.CLOSED:
                raise self._not_available()
            if state is not None and state.gone:
                raise timed_out if waited else _unavailable("the broker connection of this session was lost")
            paused = state is not None and state.paused is not None
            if self.available and (restoring or not paused):
                return
            deadline = state.paused_until if state is not None and (paused or restoring) else self._failover_until
            if deadline is None:
                raise timed_out if waited else self._not_available()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise timed_out
            if self._change is None:
                self._change = loop.create_future()
            await asyncio.wait([self._change], timeout=remaining)
            waited = True

    def _fail_client(self, state: _Client, error: StompError) -> None:
        if state.gone:
            return
        error = _as_lost(error)
        state.gone = True
        self._close_own(state)
        for entry in list(state.inflight):
            # Nothing sends them again: whoever waits for them learns the error.
            self._complete(state, entry, error)
        self._resume(state)
        state.client.broker_lost(BrokerError(error.message, error.detail))

    # --- the publisher connection -------------------------------------------------

    async def _open_publisher(self) -> Upstream:
        publisher = self._upstream("relay-publisher")

        def on_lost(error: StompError, reported: bool) -> None:
            # A failed publish (e.g. to an exchange that does not exist) ends
            # this connection only: its callers got the error; the next
            # publish opens a new one.
            if publisher is self._publisher:
                self._publisher = None
            if self._state is not RelayState.CLOSED and error.message != "Broker connection closed":
                self.publisher_failures += 1
                if error.message not in _LOSSES:
                    # Something it carried was refused after all: trust no routing key until confirmed again.
                    self._known_keys.clear()
                logger.warning("broker publisher connection lost: %s", error)

        publisher.on_lost = on_lost
        await publisher.open()
        return publisher

    async def _get_publisher(self) -> Upstream:
        publisher = self._publisher
        if publisher is not None and publisher.connected:
            return publisher
        await self._ready(None)
        opening = self._publisher_opening
        if opening is None:
            opening = self._publisher_opening = asyncio.get_running_loop().create_future()
            try:
                publisher = await self._open_publisher()
            except BaseException as exc:
                self._publisher_opening = None
                opening.set_exception(exc if isinstance(exc, BrokerError) else _unavailable(str(exc)))
                opening.exception()
                raise
            self._publisher_opening = None
            if not self.available:
                publisher.close()
                raise self._not_available()
            self._publisher = publisher
            opening.set_result(publisher)
            return publisher
        return await asyncio.shield(opening)

    def _not_available(self) -> BrokerError:
        reason = f": {self.last_error.message}" if self.last_error is not None else ""
        return _unavailable(f"the message broker at {self.host}:{self.port} is not available{reason}; try again later")

    # --- clients -----------------------------------------------------------------

    def _client(self, client: BrokerClient) -> _Client:
        state = self._clients.get(client.client_id)
        if state is None or state.client is not client or state.gone:
            raise _unavailable("the broker connection of this session was lost")
        return state

    async def connect(self, client: BrokerClient, principal: Principal | None) -> None:
        if self._state is RelayState.STOPPED or self._state is RelayState.CONNECTING:
            await self.start()
        self._registry.start()  # bound after start() (a server made after its relay started)
        await self._ready(None)
        self._serials += 1
        state = _Client(client, principal, serial=self._serials)
        self._clients[client.client_id] = state
        if self.client_credentials is not None:
            # The client's own login decides; a refusal is this CONNECT's ERROR.
            try:
                await self._own(state)
            except StompError:
                self._clients.pop(client.client_id, None)
                raise

    async def connection_lost(self, client: BrokerClient) -> None:
        state = self._clients.get(client.client_id)
        if state is None or state.client is not client:
            return
        del self._clients[client.client_id]
        state.gone = True
        self._resume(state)
        for key, sub in list(state.shared.items()):
            self._leave_shared(state, key, sub)
        state.shared.clear()
        self._close_own(state)

    async def _own(self, state: _Client, *, restoring: bool = False) -> Upstream:
        """The client's own connection, opened on first need (waiting while a lost one is restored)."""
        while state.paused is not None and not restoring:
            await self._ready(state)  # being restored: the client's frames wait
        own = state.own
        if own is not None:
            if own.connected:
                return own
            raise BrokerError("Broker connection lost", "this session's broker connection is closed")
        if state.opening is not None:
            return await asyncio.shield(state.opening)
        loop = asyncio.get_running_loop()
        state.opening = opening = loop.create_future()
        credentials = self.client_credentials(state.principal) if self.client_credentials is not None else None

        def on_message(frame: Frame) -> None:
            self._on_own_message(state, frame)

        def on_lost(error: StompError, reported: bool) -> None:
            if state.gone or upstream is not state.own:
                return  # replaced meanwhile, or the client left
            if error.message in _LOSSES and self.failover_timeout > 0 and self._state is not RelayState.CLOSED:
                self._pause(state)  # lost, not refused: reopened with its subscriptions
                return
            if not reported or (state.inflight and state.barriers == 0):
                # Pipelined SENDs have nobody waiting: the sender learns of it through ERROR now.
                if state.inflight and state.refusal is None:
                    state.refusal = error
                    self._count_refusal(error)
                self._fail_client(state, error)
            state.gone = True

        upstream = self._upstream(
            f"relay-client-{state.client.client_id}", on_message=on_message, on_lost=on_lost, credentials=credentials
        )
        try:
            await upstream.open()
        except BaseException as exc:
            state.opening = None
            opening.set_exception(exc if isinstance(exc, StompError) else _unavailable(str(exc)))
            opening.exception()
            raise
        state.opening = None
        if state.gone:
            upstream.close()
            opening.set_exception(_unavailable("session closed"))
            opening.exception()
            raise _unavailable("session closed")
        state.own = upstream
        opening.set_result(upstream)
        return upstream

    def _close_own(self, state: _Client) -> None:
        own, state.own = state.own, None
        if own is not None:
            own.close()

    # --- failover: restoring a client ---------------------------------------------------

    def _pause(self, state: _Client) -> None:
        """Something of ``state`` was lost with a connection: its frames wait while it is restored."""
        if state.paused is not None or state.gone:
            return
        loop = asyncio.get_running_loop()
        state.paused = loop.create_future()
        state.paused_until = loop.time() + self.failover_timeout
        loop.create_task(self._restore(state), name=f"relay-restore-{state.client.client_id}")

    def _resume(self, state: _Client) -> None:
        paused, state.paused = state.paused, None
        if paused is not None:
            if not paused.done():
                paused.set_result(None)
            self._notify()

    def _unrestorable(self, state: _Client) -> str | None:
        """What of the client's lost connection cannot be had again, if anything."""
        if state.temp_subs:
            return "its temporary queues (/temp-queue/) vanished with the broker connection"
        for key, pairs in state.own_pairs.items():
            destination = state.own_subs.get(key, "")
            if destination.startswith("/reply-queue/"):
                return f"subscription {key}: reply queues vanish with the broker connection"
            for name, value in pairs:
                if name in ("exclusive", "auto-delete") and value == "true" and destination.startswith(("/queue/", "/amq/queue/")):
                    return f"subscription {key}: its {name} queue vanished with the broker connection"
        return None

    def _lost_something(self, state: _Client) -> bool:
        own = state.own
        if state.own_lost or (own is not None and not own.connected):
            return True
        return any(not e.done.done() and not e.conn.connected for e in state.inflight)

    async def _restore(self, state: _Client) -> None:
        """Reopen the client's lost connection with its subscriptions, then send its lost SENDs again, in order."""
        delays = backoff(self.reconnect_delay, self.max_reconnect_delay)
        loop = asyncio.get_running_loop()
        timed_out = _unavailable(f"the message broker did not come back within {self.failover_timeout:g} s")
        try:
            while not state.gone and self._state is not RelayState.CLOSED:
                try:
                    # Bounded as a whole: one connection attempt may take connect_timeout.
                    remaining = max(state.paused_until - loop.time(), 0.001)
                    if await asyncio.wait_for(self._restore_once(state), remaining):
                        return
                except asyncio.TimeoutError:
                    raise timed_out from None
                except StompError as exc:
                    if exc.message not in _LOSSES and exc.message != "Broker not available":
                        raise  # RabbitMQ refused a subscription or a SEND
                    if loop.time() >= state.paused_until:
                        raise timed_out from None
                    # Lost again, or the broker refused the connection: back off and start over.
                    await asyncio.sleep(min(next(delays), max(0.0, state.paused_until - loop.time())))
        except StompError as exc:
            if not state.gone:
                self.sessions_lost += 1
                self._fail_client(state, BrokerError(exc.message, exc.detail))
        finally:
            self._resume(state)

    async def _restore_once(self, state: _Client) -> bool:
        """One attempt of :meth:`_restore`; True when nothing is left to restore."""
        await self._ready(state, restoring=True)
        own = state.own
        if own is not None and not own.connected:
            reason = self._unrestorable(state)
            if reason is not None:
                self.sessions_lost += 1
                self._fail_client(state, BrokerError("Broker connection lost", reason))
                return True
            if own.session:
                state.stale.append(own.session)
            # RabbitMQ gives back what the lost connection had unacknowledged.
            state.unacked.clear()
            state.own = None
            state.own_lost = True
        if state.own_lost:
            own = await self._own(state, restoring=True)
            confirmations = [own.send_nowait(Command.SUBSCRIBE, pairs) for pairs in state.own_pairs.values()]
            for confirmation in confirmations:
                await asyncio.shield(confirmation)
            state.own_lost = False
            self.clients_restored += 1
        await self._send_again(state)
        # No await since this check: nothing can be lost unseen.
        return not self._lost_something(state)

    async def _send_again(self, state: _Client) -> None:
        """Send the client's SENDs whose connection was lost again, oldest first, marked as sent again."""
        for entry in list(state.inflight):
            if entry.done.done() or entry.conn.connected:
                continue
            target = await (self._get_publisher() if entry.shared else self._own(state, restoring=True))
            pairs = _marked(entry.pairs)
            while True:
                try:
                    confirmation = target.send_nowait(Command.SEND, pairs, entry.body)
                    break
                except BrokerError as exc:
                    if exc.message != "Broker busy":
                        raise
                    # Many SENDs sent again at once: wait for RabbitMQ to confirm some.
                    earlier = [e.done for e in state.inflight if e.conn is target and not e.done.done()]
                    remaining = state.paused_until - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        raise
                    if earlier:
                        await asyncio.wait(earlier[:1], timeout=remaining)
                    else:
                        await asyncio.sleep(min(0.05, remaining))  # others' frames fill the connection
            entry.pairs, entry.conn = pairs, target
            entry.replays += 1
            self.replayed += 1
            confirmation.add_done_callback(partial(self._on_confirmation, state, entry, target))

    # --- deliveries ------------------------------------------------------------------

    @staticmethod
    def _message(frame: Frame) -> tuple[Message, str, bool]:
        headers: list[tuple[str, str]] = []
        restored: dict[str, str] = {}
        for name, value in frame.headers:
            if name in _BROKER_HEADERS:
                original = _RESTORED.get(name)
                if original is not None:
                    restored.setdefault(original, value)
                continue
            headers.append((name, value))
        headers += restored.items()
        message_id = frame.get("ack") or frame.get("message-id") or ""
        message = Message(frame.get("destination") or "", frame.body, tuple(headers))
        return message, message_id, frame.get("redelivered") == "true"

    def _duplicate(self, scope: str, frame: Frame) -> bool:
        """True for a SEND sent again after a lost connection that this subscription already got.

        A client's relayed SENDs reach RabbitMQ in order (one connection at a
        time; resent ones before any newer one), so a subscription gets one
        client's relay sequence numbers increasing: a resent message (``:r``)
        whose number is not above the highest seen from that client is a copy.
        Remembered for MAX_DEDUP_ENTRIES (subscription, client) pairs.
        """
        relay_id = frame.get(RELAY_ID_HEADER)
        if relay_id is None:
            return False
        node, _, rest = relay_id.partition(":")
        serial, _, seq_text = rest.partition(":")
        seq_text, _, mark = seq_text.partition(":")
        if not seq_text.isdigit():
            return False
        seq = int(seq_text)
        key = (scope, f"{node}:{serial}")
        seen = self._seen.get(key)
        if seen is not None and seq <= seen:
            if mark and frame.get("redelivered") != "true":
                self.duplicates_dropped += 1
                return True
            return False
        self._seen[key] = seq
        self._seen.move_to_end(key)
        if len(self._seen) > MAX_DEDUP_ENTRIES:
            self._seen.popitem(last=False)
        return False

    def _on_shared_message(self, frame: Frame) -> None:
        sub = self._shared_ids.get(frame.get("subscription") or "")
        if sub is None:
            return  # unsubscribed meanwhile
        if self._duplicate(sub.destination, frame):
            return
        message, message_id, redelivered = self._message(frame)
        subscribers = list(sub.subscribers)
        if len(subscribers) == 1:
            state, key = subscribers[0]
            state.client.deliver(key, message, message_id, redelivered)
            return
        # RabbitMQ gives each subscription a message id of its own.
        for n, (state, key) in enumerate(subscribers):
            state.client.deliver(key, message, f"{message_id}@@{n}", redelivered)

    def _on_own_message(self, state: _Client, frame: Frame) -> None:
        if state.gone:
            return
        key = frame.get("subscription") or ""
        if key not in state.own_subs:
            # Replies to a reply-to:/temp-queue/x arrive under subscription
            # "/temp-queue/x": delivered to the client's subscription of it.
            temp = state.temp_subs.get(key)
            if temp is None:
                return
            key = temp
        if self._duplicate(f"{state.client.client_id}\x00{key}", frame):
            mode = state.ack_modes.get(key)
            ack_id = frame.get("ack")
            own = state.own
            if mode is AckMode.CLIENT_INDIVIDUAL and ack_id and own is not None and own.connected:
                try:
                    settled = own.send_nowait(Command.ACK, [("id", ack_id)])  # not the client's: settled here
                except StompError:
                    return  # RabbitMQ not reading: it stays unacknowledged on this connection
                settled.add_done_callback(_retrieved)
            elif mode is AckMode.CLIENT and ack_id:
                state.unacked[ack_id] = key  # settled by the client's next cumulative ACK
            return
        message, message_id, redelivered = self._message(frame)
        if key in state.ack_modes:
            state.unacked[message_id] = key
        state.client.deliver(key, message, message_id, redelivered)

    # --- user destinations ------------------------------------------------------------
    #
    # The server subscribes a session's "/user/queue/x" as "/queue/x-user<session>"
    # and sends to one session (a reply_to handler) by publishing there. Through
    # the relay, an authenticated user's subscription becomes a binding of the
    # user's key on the user exchange, on whichever node the session is, and
    # send_to_user publishes to that key once (user_destination); anonymous
    # sessions, reachable only from their own node, are served in-process.

    def registry_transport(self) -> RegistryTransport:
        """The user registry's transport (see :mod:`.presence`): bound by the server, started with the relay."""
        return self._registry

    def user_destination(self, user: str, destination: str) -> str | None:
        """``/user/queue/x`` of ``user`` on every node: a binding on :attr:`user_exchange`."""
        return f"{self._user_prefix}{_enc(user)}.{_enc(destination)}"

    def _session_destination(self, state: _Client, destination: str) -> str | None:
        """The user suffix if ``destination`` is the server's per-session name for this client."""
        tail = "-user" + state.client.client_id
        if destination.endswith(tail) and destination.startswith(("/queue/", "/topic/")):
            suffix = destination[: -len(tail)]
            if len(suffix) > len("/queue/"):
                return suffix
        return None

    def _deliver_to_session(self, destination: str, body: bytes, headers: tuple[tuple[str, str], ...]) -> bool:
        """A server publish to one local session's user destination: delivered here."""
        _, sep, session = destination.rpartition("-user")
        state = self._clients.get(session) if sep else None
        if state is None or state.gone:
            return False
        suffix = self._session_destination(state, destination)
        if suffix is None:
            return False
        keys = [k for k, d in state.local_subs.items() if d == destination]
        keys += [k for k, s in state.user_subs.items() if s == suffix]
        if keys:
            message = Message(destination, body, headers)
            for key in keys:
                self._next_id += 1
                state.client.deliver(key, message, f"{_LOCAL_ACK_PREFIX}{self._next_id}")
        return True

    # --- subscriptions ------------------------------------------------------------------

    def _shareable_topic(self, destination: str) -> bool:
        return self.share_topics and destination.startswith("/topic/") and _TOPIC_KEY.fullmatch(destination[7:]) is not None

    async def subscribe(
        self, client: BrokerClient, subscription: str, destination: str, ack: AckMode, headers: Mapping[str, str]
    ) -> None:
        state = self._client(client)
        await self._ready(state)
        if state.inflight:
            await self._settle(state)
        await self._ready(state)
        if destination.startswith(self._reserved):
            # Reached only through the server's user destinations (/user/...) and registry.
            raise AccessDenied("Access refused", f"cannot subscribe to {destination[:200]}")
        suffix = self._session_destination(state, destination)
        if suffix is not None:
            if state.principal is None:
                state.local_subs[subscription] = destination
                return
            destination = self.user_destination(state.principal.name, suffix) or destination
            headers = {k: v for k, v in headers.items() if k != "auto-delete"}
            state.user_subs[subscription] = suffix
            try:
                if self.share_topics and ack is AckMode.AUTO and not headers:
                    await self._join_shared(state, subscription, destination)
                else:
                    await self._subscribe_own(state, subscription, destination, ack, headers)
            except BaseException:
                state.user_subs.pop(subscription, None)
                raise
            return
        if self._shareable_topic(destination) and ack is AckMode.AUTO and not headers:
            await self._join_shared(state, subscription, destination)
            return
        if destination.startswith("/temp-queue/"):
            # RabbitMQ creates temporary queues on SEND reply-to and refuses
            # SUBSCRIBE to them; the subscription only routes the replies.
            await self._own(state)
            state.temp_subs[destination] = subscription
            return
        await self._subscribe_own(state, subscription, destination, ack, headers)

    async def _subscribe_own(
        self, state: _Client, subscription: str, destination: str, ack: AckMode, headers: Mapping[str, str]
    ) -> None:
        own = await self._own(state)
        pairs = [("id", subscription), ("destination", destination)]
        options = dict(headers)
        if ack is not AckMode.AUTO:
            pairs.append(("ack", ack.value))
            # Bounded like the in-memory broker: delivery pauses until ACK/NACK.
            asked = options.get("prefetch-count", "")
            limit = int(asked) if asked.isdigit() and 0 < int(asked) < self.max_unacked else self.max_unacked
            options["prefetch-count"] = str(limit)
        pairs += options.items()
        state.own_subs[subscription] = destination
        state.own_pairs[subscription] = pairs
        if ack is not AckMode.AUTO:
            state.ack_modes[subscription] = ack
        try:
            await own.send(Command.SUBSCRIBE, pairs, receipt=True)
        except BaseException as exc:
            if isinstance(exc, StompError) and exc.message in _LOSSES and state.paused is not None:
                # Lost on its way: the restoration subscribes it with the others.
                await self._ready(state)
                return
            state.own_subs.pop(subscription, None)
            state.own_pairs.pop(subscription, None)
            state.ack_modes.pop(subscription, None)
            if isinstance(exc, StompError) and own.failure is not None:
                # RabbitMQ still confirms a SUBSCRIBE it refused (ERROR, then RECEIPT).
                exc.receipt_after = True
            raise

    async def _join_shared(self, state: _Client, key: str, destination: str) -> None:
        sub = self._shared.get(destination)
        if sub is None:
            subscriber = self._subscriber
            if subscriber is None or not subscriber.connected:
                raise self._not_available()
            self._next_id += 1
            sub = _Shared(f"s{self._next_id}", destination)
            sub.ready = asyncio.get_running_loop().create_future()
            self._shared[destination] = sub
            self._shared_ids[sub.upstream_id] = sub
            ready = sub.ready
            sub.subscribers[(state, key)] = None
            state.shared[key] = sub
            try:
                try:
                    await subscriber.send(Command.SUBSCRIBE, [("id", sub.upstream_id), ("destination", destination)], receipt=True)
                except StompError as exc:
                    if exc.message not in _LOSSES or self._failover_until is None:
                        raise
                    # Lost on its way: subscribed again with the others before the relay is available.
                    await self._ready(state)
            except StompError as exc:
                if not ready.done():
                    ready.set_exception(BrokerError(exc.message, exc.detail))
                    ready.exception()
                raise
            if not ready.done():
                ready.set_result(None)
            return
        self._idle_shared.pop(destination, None)
        sub.subscribers[(state, key)] = None
        state.shared[key] = sub
        if sub.ready is not None and not sub.ready.done():
            await asyncio.shield(sub.ready)

    def _leave_shared(self, state: _Client, key: str, sub: _Shared) -> None:
        sub.subscribers.pop((state, key), None)
        if sub.subscribers or self._shared.get(sub.destination) is not sub:
            return
        # RabbitMQ's STOMP plugin answers an UNSUBSCRIBE that crosses a MESSAGE
        # already on its way to that subscription with "ERROR Subscription not
        # found" and closes the connection, which would fail every client of the
        # shared connection whenever the last local subscriber left a busy topic.
        # So an unused shared subscription stays (its messages are dropped here)
        # until MAX_IDLE_SHARED newer ones have gone idle, and is reused if
        # someone subscribes again.
        self._idle_shared[sub.destination] = sub
        if len(self._idle_shared) <= MAX_IDLE_SHARED:
            return
        oldest = next(iter(self._idle_shared))
        sub = self._idle_shared.pop(oldest)
        del self._shared[sub.destination]
        self._shared_ids.pop(sub.upstream_id, None)
        subscriber = self._subscriber
        if subscriber is not None and subscriber.connected:
            # No one waits for it: deliveries already in flight are dropped above.
            asyncio.get_running_loop().create_task(self._unsubscribe_shared(subscriber, sub.upstream_id))

    @staticmethod
    async def _unsubscribe_shared(subscriber: Upstream, upstream_id: str) -> None:
        try:
            await subscriber.send(Command.UNSUBSCRIBE, [("id", upstream_id)])
        except StompError:
            pass  # the connection is gone, and the subscription with it

    async def unsubscribe(
        self, client: BrokerClient, subscription: str, headers: Mapping[str, str] = _NO_HEADERS
    ) -> None:
        state = self._client(client)
        await self._ready(state)
        if state.inflight:
            await self._settle(state)
        state.user_subs.pop(subscription, None)
        if state.local_subs.pop(subscription, None) is not None:
            return
        sub = state.shared.pop(subscription, None)
        if sub is not None:
            self._leave_shared(state, subscription, sub)
            return
        for destination, key in list(state.temp_subs.items()):
            if key == subscription:
                del state.temp_subs[destination]
                return
        if subscription not in state.own_subs:
            raise ProtocolError("No subscription found", "UNSUBSCRIBE must refer to an existing subscription")
        own = await self._own(state)
        del state.own_subs[subscription]
        state.own_pairs.pop(subscription, None)
        if state.ack_modes.pop(subscription, None) is not None:
            # RabbitMQ requeues what the subscription left unacknowledged.
            for ack_id in [a for a, k in state.unacked.items() if k == subscription]:
                del state.unacked[ack_id]
        # The client's other headers go along: RabbitMQ deletes a durable
        # subscription's queue only when UNSUBSCRIBE says durable:true.
        pairs = [("id", subscription)]
        pairs += [(k, v) for k, v in headers.items() if k not in ("id", "receipt")]
        await self._send_or_restore(state, own, Command.UNSUBSCRIBE, pairs)

    async def _send_or_restore(self, state: _Client, own: Upstream, command: Command, pairs: list[tuple[str, str]]) -> None:
        """Send a frame on the client's own connection; if the connection is lost meanwhile, wait for its restoration.

        Used for UNSUBSCRIBE, ACK and NACK: the restored connection has
        neither the subscription nor the delivery (RabbitMQ delivers an
        unacknowledged message again, redelivered, unless it carried out the
        ACK before the loss), and the frame's RECEIPT follows the restoration.
        """
        try:
            await own.send(command, pairs, receipt=True)
        except StompError as exc:
            if exc.message not in _LOSSES or state.paused is None:
                raise
            await self._ready(state)

    # --- publishing -----------------------------------------------------------------

    async def publish(
        self,
        destination: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        sender: BrokerClient | None = None,
    ) -> None:
        pairs: list[tuple[str, str]] = [("destination", destination)]
        for name, value in headers:
            carried = _CARRIED.get(name)
            if carried is not None:
                name = carried
            elif name in _RESTORED or name == RELAY_ID_HEADER:
                continue  # only the client's own headers travel under these names; the relay id is the relay's
            pairs.append((name, value))
        if sender is None:
            if self._deliver_to_session(destination, body, headers):
                return
            upstream = await self._get_publisher()
            await upstream.send(Command.SEND, pairs, body, receipt=True)
            return
        state = self._client(sender)
        await self._ready(state)
        if destination.startswith(self._reserved):
            raise AccessDenied("Access refused", f"cannot send to {destination[:200]}")
        state.seq += 1
        pairs.append((RELAY_ID_HEADER, f"{self.node_id}:{state.serial}:{state.seq}"))
        reply_to = False
        for name, value in headers:
            if name == "reply-to":
                reply_to = True
                if value.startswith("/temp-queue/") and value not in state.temp_subs:
                    # RabbitMQ makes the temporary queue on the connection that
                    # carries this SEND and delivers the replies there under
                    # subscription "/temp-queue/<name>", without a SUBSCRIBE.
                    if len(state.temp_subs) >= MAX_TEMP_QUEUES:
                        raise frame_error("Too many temporary queues", f"at most {MAX_TEMP_QUEUES} /temp-queue/ names per connection")
                    state.temp_subs[value] = value
        key: str | None = None
        shared = False
        if self._shareable_topic(destination) and not reply_to and self.client_credentials is None and _plain_headers(pairs):
            key = destination[7:]
            shared = key in self._known_keys and not state.replaying
        if shared:
            upstream = await self._get_publisher()
            self._known_keys.move_to_end(key)  # type: ignore[arg-type]
            key = None
        else:
            upstream = await self._own(state)
        await self._write(state, upstream, shared, key, pairs, body)

    async def _write(
        self, state: _Client, upstream: Upstream, shared: bool, key: str | None, pairs: list[tuple[str, str]], body: bytes
    ) -> None:
        """Pipeline one SEND of ``state`` on ``upstream``: returns once written (window permitting)."""
        inflight = state.inflight
        while True:
            if inflight and inflight[-1].conn is not upstream:
                await self._settle(state)  # a client's frames stay in order across connections
            while len(inflight) >= self.max_unconfirmed:
                await self._wait(inflight[0])
            if state.gone:
                raise _unavailable("the broker connection of this session was lost")
            if state.paused is not None:
                await self._ready(state)  # its lost SENDs go first
                continue
            if upstream.connected:
                break
            # Replaced while waiting (a publisher that failed, a probe connection closed).
            upstream = await (self._get_publisher() if shared else self._own(state))
        try:
            confirmation = upstream.send_nowait(Command.SEND, pairs, body)
        except BrokerError as exc:
            if exc.message == "Broker busy":
                self._count_refusal(exc)  # refused here, RabbitMQ not reading (e.g. a resource alarm)
            raise
        entry = _Publish(pairs, body, upstream, shared, key, asyncio.get_running_loop().create_future())
        inflight.append(entry)
        confirmation.add_done_callback(partial(self._on_confirmation, state, entry, upstream))

    @staticmethod
    async def _wait(entry: _Publish) -> None:
        try:
            await asyncio.shield(entry.done)
        except StompError as exc:
            raise BrokerError(exc.message, exc.detail) from None

    async def _settle(self, state: _Client) -> None:
        """Wait until every SEND of ``state`` in flight is confirmed (raise the refusal if one was refused)."""
        while state.inflight:
            await self._wait(state.inflight[-1])

    async def confirmed(self, client: BrokerClient) -> None:
        state = self._clients.get(client.client_id)
        if state is None or state.client is not client or not state.inflight:
            return
        state.barriers += 1
        try:
            await self._settle(state)
        finally:
            state.barriers -= 1

    def _on_confirmation(self, state: _Client, entry: _Publish, conn: Upstream, confirmation: asyncio.Future[None]) -> None:
        if entry.conn is not conn:
            return  # sent again elsewhere meanwhile
        error: BaseException | None
        if confirmation.cancelled():
            error = _unavailable("the broker connection was closed")
        else:
            error = confirmation.exception()
        if error is None:
            if entry.key is not None:
                self._known(entry.key)
            self._complete(state, entry, None)
            if entry.key is not None and not state.inflight:
                asyncio.get_running_loop().call_soon(self._close_probe, state)
            return
        assert isinstance(error, StompError)
        refusal = error.message not in _LOSSES
        if not refusal and self.failover_timeout > 0 and not state.gone and self._state is not RelayState.CLOSED:
            self._pause(state)  # lost with its connection: sent again once restored
            return
        if entry.shared and refusal and not state.gone and self._state is RelayState.AVAILABLE:
            # The shared publisher failed under this client's frame, or someone else's:
            # sent again on the client's own connection, where only the offender is refused.
            if not state.replaying:
                state.replaying = True
                asyncio.get_running_loop().create_task(self._replay(state))
            return
        # The relay closed that connection (it lost the broker): said as a loss.
        self._complete(state, entry, _as_lost(error) if error.message == "Broker connection closed" else error)

    def _complete(self, state: _Client, entry: _Publish, error: StompError | None) -> None:
        done = entry.done
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(BrokerError(error.message, error.detail))
                done.exception()  # a waiter re-raises it; none may be left
        inflight = state.inflight
        while inflight and inflight[0].done.done():
            inflight.popleft()
        if error is not None and state.refusal is None:
            state.refusal = error
            self._count_refusal(error)  # also when its connection's end was reported first
        if error is not None and not state.gone:
            if state.barriers == 0:
                # Nobody waits for a RECEIPT: the sender learns of it through ERROR now.
                self._fail_client(state, error)

    def _close_probe(self, state: _Client) -> None:
        """Close a client's own connection opened only to try a new routing key.

        Its SEND is confirmed and the key is now known: the client's next
        SENDs there go on the shared publisher, and a chat client costs
        RabbitMQ no connection of its own.
        """
        if state.gone or state.own is None or state.opening is not None or state.inflight:
            return
        if state.own_subs or state.temp_subs or state.unacked or state.ack_modes or self.client_credentials is not None:
            return
        self._close_own(state)

    def _count_refusal(self, error: StompError) -> None:
        if error.message in ("Broker connection lost", "Broker not available"):
            return  # the connection went away: nothing was refused
        reason = _reason(error)
        self.refused[reason] = self.refused.get(reason, 0) + 1
        logger.info("broker refused a frame: %s: %s", error.message, error.detail)

    def _known(self, key: str) -> None:
        keys = self._known_keys
        keys[key] = None
        keys.move_to_end(key)
        if len(keys) > MAX_KNOWN_KEYS:
            keys.popitem(last=False)

    async def _replay(self, state: _Client) -> None:
        """Send a failed shared publisher's unconfirmed frames of ``state`` again, on its own connection."""
        try:
            try:
                own = await self._own(state)
            except StompError as exc:
                for entry in list(state.inflight):
                    self._complete(state, entry, exc)
                return
            for entry in list(state.inflight):
                if entry.done.done() or not entry.shared or entry.conn.connected:
                    continue
                entry.conn, entry.shared = own, False
                pairs = _marked(entry.pairs)
                try:
                    confirmation = own.send_nowait(Command.SEND, pairs, entry.body)
                except StompError as exc:
                    self._complete(state, entry, exc)
                    continue
                entry.pairs = pairs
                confirmation.add_done_callback(partial(self._on_confirmation, state, entry, own))
        finally:
            state.replaying = False

    # --- acknowledgements ----------------------------------------------------------------

    async def ack(self, client: BrokerClient, ack_id: str, *, subscription: str | None = None) -> None:
        await self._acknowledge(client, Command.ACK, ack_id, ())

    async def nack(
        self, client: BrokerClient, ack_id: str, *, subscription: str | None = None, requeue: bool = True
    ) -> None:
        await self._acknowledge(client, Command.NACK, ack_id, () if requeue else (("requeue", "false"),))

    async def _acknowledge(
        self, client: BrokerClient, command: Command, ack_id: str, extra: tuple[tuple[str, str], ...]
    ) -> None:
        state = self._client(client)
        await self._ready(state)
        if state.inflight:
            await self._settle(state)
        if ack_id.startswith(_LOCAL_ACK_PREFIX):
            return
        subscriber = self._subscriber
        if subscriber is not None and subscriber.session and f"@@{subscriber.session}@@" in ack_id:
            # A message of a shared auto-ack subscription: nothing is held for it,
            # and RabbitMQ refuses it so on a connection of the client's own.
            parts = ack_id.split("@@")
            tag = parts[2] if len(parts) > 2 else "0"
            # RabbitMQ confirms the frame, then its channel fails: RECEIPT, then ERROR and close.
            raise BrokerError(
                "precondition_failed", f"PRECONDITION_FAILED - unknown delivery tag {tag}", error_after_receipt=True
            )
        key = state.unacked.get(ack_id)
        own = state.own
        if key is None and any(f"@@{session}@@" in ack_id for session in state.stale):
            # Delivered on a connection that was lost and restored since: RabbitMQ
            # took the message back and delivers it again (redelivered:true) under
            # a new id. That delivery no longer exists: done (RECEIPT), nothing sent.
            self.stale_acks += 1
            return
        if key is None:
            if own is not None and own.session and f"@@{own.session}@@" in ack_id:
                # One of RabbitMQ's ids for this connection, no longer held (acknowledged
                # twice, say): RabbitMQ answers it itself (RECEIPT, then ERROR and close).
                await own.send(command, [("id", ack_id), *extra], receipt=True)
                return
            # Not an id RabbitMQ gave this client: refused as RabbitMQ words it.
            raise frame_error("Invalid header", f'"{command.value}" must include a valid "id" header\n')
        own = await self._own(state)
        if state.unacked.get(ack_id) != key:
            # Its connection was restored while this waited: the message comes again.
            self.stale_acks += 1
            return
        if state.ack_modes.get(key) is AckMode.CLIENT:
            # "client" acknowledgements are cumulative over the subscription.
            for held in list(state.unacked):
                if state.unacked[held] == key:
                    del state.unacked[held]
                if held == ack_id:
                    break
        else:
            del state.unacked[ack_id]
        await self._send_or_restore(state, own, command, [("id", ack_id), *extra])


def _addresses(netloc: str, default_port: int, url: str) -> list[tuple[str, int]]:
    """``host1:61613,host2,[::1]:61613`` -> ``[(host, port), ...]`` (the port defaults to ``default_port``)."""
    out: list[tuple[str, int]] = []
    for item in netloc.split(","):
        if item.startswith("["):
            host, sep, rest = item[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad address {item!r} in relay URL {url!r}")
            port_text = rest[1:]
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ValueError(f"relay URL has no host: {url!r}")
        if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
            raise ValueError(f"bad port {port_text!r} in relay URL {url!r}")
        out.append((unquote(host), int(port_text) if port_text else default_port))
    return out


def relay_from_url(url: str, **options: object) -> RabbitRelay:
    """``stomp://login:passcode@host:port/vhost`` -> :class:`RabbitRelay`.

    Several addresses of one cluster are separated by commas
    (``stomp://guest:guest@rabbit1:61613,rabbit2:61613/``); the relay moves to
    the next one when a connection is refused or lost. The path is the
    virtual host, percent-encoded ("/" or "" for the default "/", "%2F" for
    "/", "/test" for "test"); query parameters set numeric options, e.g.
    ``?heartbeat=10&reconnect_delay=1``; ``options`` override.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("stomp", "stomps", "stomp+ssl"):
        raise ValueError(f"relay URL must start with stomp:// or stomps://, got {url!r}")
    tls = parts.scheme != "stomp"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise ValueError(f"relay URL has no host: {url!r}")
    addresses = _addresses(hosts, 61614 if tls else 61613, url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    virtual_host = unquote(path) if path else "/"
    kwargs: dict[str, object] = {}
    floats = {
        "heartbeat", "heartbeat_tolerance", "connect_timeout", "receipt_timeout", "reconnect_delay",
        "max_reconnect_delay", "registry_heartbeat", "failover_timeout",
    }
    ints = {"max_unacked", "max_unconfirmed", "max_unconfirmed_bytes"}
    for item in filter(None, parts.query.split("&")):
        name, _, value = item.partition("=")
        if name in floats:
            try:
                kwargs[name] = float(value)
            except ValueError:
                raise ValueError(f"relay URL option {name} must be a number, got {value!r}") from None
        elif name in ints:
            if not value.isdigit():
                raise ValueError(f"relay URL option {name} must be an integer, got {value!r}")
            kwargs[name] = int(value)
        elif name == "share_topics":
            kwargs[name] = value.lower() not in ("0", "false", "no")
        elif name in ("user_exchange", "cluster"):
            kwargs[name] = unquote(value)
        else:
            raise ValueError(f"unknown relay URL option {name!r}")
    if tls:
        kwargs["ssl"] = True  # ssl.create_default_context(): verified; an ``ssl`` option overrides it
    kwargs.update(options)
    if len(addresses) > 1:
        kwargs.setdefault("addresses", addresses)
    username, colon, password = userinfo.partition(":")
    login = unquote(username) if at else "guest"
    passcode = unquote(password) if colon else ("guest" if not at else "")
    host, port = addresses[0]
    return RabbitRelay(host, port, login, passcode, virtual_host, **kwargs)  # type: ignore[arg-type]
