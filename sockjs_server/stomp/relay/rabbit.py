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

When the subscriber connection drops (broker stopped or restarted) every
client with state in the broker gets ERROR and is closed; the relay
reconnects with exponential backoff. While the broker is unavailable CONNECT,
SEND and SUBSCRIBE are answered with ERROR ``Broker not available``.
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
        self.addresses: list[tuple[str, int]] = list(addresses) if addresses else [(host, port)]
        if not all(h and 0 < p < 65536 for h, p in self.addresses):
            raise ValueError(f"invalid broker addresses {self.addresses!r}")
        self._address = 0
        self.host, self.port = self.addresses[0]
        self.ssl: _ssl.SSLContext | None = _ssl.create_default_context() if ssl is True else (ssl or None)
        self.max_unconfirmed = max_unconfirmed
        self.max_unconfirmed_bytes = max_unconfirmed_bytes
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

    def _on_subscriber_lost(self, error: StompError) -> None:
        """The node's shared subscriptions are gone: so are the sessions holding state."""
        if self._state is RelayState.CLOSED:
            return
        self.last_error = error
        self._subscriber = None
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()
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

    def _fail_client(self, state: _Client, error: StompError) -> None:
        if state.gone:
            return
        error = _as_lost(error)
        state.gone = True
        self._close_own(state)
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
        if not self.available:
            raise self._not_available()
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
        if not self.available:
            raise self._not_available()
        state = _Client(client, principal)
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
        for key, sub in list(state.shared.items()):
            self._leave_shared(state, key, sub)
        state.shared.clear()
        self._close_own(state)

    async def _own(self, state: _Client) -> Upstream:
        """The client's own connection, opened on first need."""
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
            if not state.gone and (not reported or (state.inflight and state.barriers == 0)):
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

    def _on_shared_message(self, frame: Frame) -> None:
        sub = self._shared_ids.get(frame.get("subscription") or "")
        if sub is None:
            return  # unsubscribed meanwhile
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
        if state.inflight:
            await self._settle(state)
        if not self.available:
            raise self._not_available()
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
        if ack is not AckMode.AUTO:
            state.ack_modes[subscription] = ack
        try:
            await own.send(Command.SUBSCRIBE, pairs, receipt=True)
        except BaseException as exc:
            state.own_subs.pop(subscription, None)
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
                await subscriber.send(Command.SUBSCRIBE, [("id", sub.upstream_id), ("destination", destination)], receipt=True)
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
        if state.ack_modes.pop(subscription, None) is not None:
            # RabbitMQ requeues what the subscription left unacknowledged.
            for ack_id in [a for a, k in state.unacked.items() if k == subscription]:
                del state.unacked[ack_id]
        # The client's other headers go along: RabbitMQ deletes a durable
        # subscription's queue only when UNSUBSCRIBE says durable:true.
        pairs = [("id", subscription)]
        pairs += [(k, v) for k, v in headers.items() if k not in ("id", "receipt")]
        await own.send(Command.UNSUBSCRIBE, pairs, receipt=True)

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
            elif name in _RESTORED:
                continue  # only the client's own headers travel under these names
            pairs.append((name, value))
        if sender is None:
            if self._deliver_to_session(destination, body, headers):
                return
            upstream = await self._get_publisher()
            await upstream.send(Command.SEND, pairs, body, receipt=True)
            return
        state = self._client(sender)
        if not self.available:
            raise self._not_available()
        if destination.startswith(self._reserved):
            raise AccessDenied("Access refused", f"cannot send to {destination[:200]}")
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
        confirmation.add_done_callback(partial(self._on_confirmation, state, entry))

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

    def _on_confirmation(self, state: _Client, entry: _Publish, confirmation: asyncio.Future[None]) -> None:
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
        refusal = error.message not in _CONNECTION_FAILURES and error.message not in ("Broker connection lost", "Broker connection closed")
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
                try:
                    confirmation = own.send_nowait(Command.SEND, entry.pairs, entry.body)
                except StompError as exc:
                    self._complete(state, entry, exc)
                    continue
                confirmation.add_done_callback(partial(self._on_confirmation, state, entry))
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
        if key is None:
            if own is not None and own.session and f"@@{own.session}@@" in ack_id:
                # One of RabbitMQ's ids for this connection, no longer held (acknowledged
                # twice, say): RabbitMQ answers it itself (RECEIPT, then ERROR and close).
                await own.send(command, [("id", ack_id), *extra], receipt=True)
                return
            # Not an id RabbitMQ gave this client: refused as RabbitMQ words it.
            raise frame_error("Invalid header", f'"{command.value}" must include a valid "id" header\n')
        own = await self._own(state)
        if state.ack_modes.get(key) is AckMode.CLIENT:
            # "client" acknowledgements are cumulative over the subscription.
            for held in list(state.unacked):
                if state.unacked[held] == key:
                    del state.unacked[held]
                if held == ack_id:
                    break
        else:
            del state.unacked[ack_id]
        await own.send(command, [("id", ack_id), *extra], receipt=True)


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
    floats = {"heartbeat", "heartbeat_tolerance", "connect_timeout", "receipt_timeout", "reconnect_delay", "max_reconnect_delay", "registry_heartbeat"}
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
