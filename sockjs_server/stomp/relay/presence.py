"""The user registry's transport through RabbitMQ: messages between nodes, and news of dead nodes.

Each node opens two connections of its own to RabbitMQ (beside the relay's):

* *registry*: subscribes to ``/exchange/<user_exchange>/sockjs-registry.<cluster>``
  with the queue name ``sockjs-registry.<cluster>.<node>`` (RabbitMQ makes it
  exclusive and auto-delete: it lives exactly as long as this connection) and
  publishes the node's registry messages to the same routing key, so every
  node of the cluster gets them, in the order each node sent them. Clients can
  neither subscribe nor send to these keys (the relay refuses them).
* *watch*: subscribes to ``/exchange/amq.rabbitmq.event/queue.deleted``
  (RabbitMQ's ``rabbitmq_event_exchange`` plugin): when a node's connection
  ends, however it ends (SIGKILL included), RabbitMQ deletes its queue and
  says so here, and the node's sessions are removed at once. Without the
  plugin (the subscription is refused) a warning is logged and dead nodes are
  found by the registry's heart-beat expiry alone; the watch is tried again
  every ``WATCH_RETRY`` seconds.

Both reconnect with the relay's backoff; on every (re)connect of the registry
connection the node says hello again with its full state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator

from ..errors import StompError
from ..frames import Command, Frame
from .upstream import OnMessage, Upstream

__all__ = ["RabbitRegistry", "REGISTRY_KEY_PREFIX", "EVENT_DESTINATION"]

logger = logging.getLogger(__name__)

#: Routing keys (and queue names) of the registry; reserved for the server.
REGISTRY_KEY_PREFIX = "sockjs-registry."
#: Where RabbitMQ's event exchange plugin tells of deleted queues.
EVENT_DESTINATION = "/exchange/amq.rabbitmq.event/queue.deleted"
#: Seconds between attempts to subscribe to the event exchange after a refusal.
WATCH_RETRY = 60.0

CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RabbitRegistry:
    """A :class:`~sockjs_server.stomp.registry.RegistryTransport` on RabbitMQ (made by the relay).

    :param upstream: ``upstream(name, on_message)`` -> a new, unopened connection.
    :param delays: a new iterator of reconnection delays.
    :param exchange: the exchange carrying the registry (the relay's user exchange).
    :param virtual_host: the relay's, to pick this cluster's queues among RabbitMQ's events.
    """

    def __init__(
        self,
        upstream: Callable[[str, OnMessage], Upstream],
        delays: Callable[[], Iterator[float]],
        *,
        exchange: str,
        virtual_host: str,
        cluster: str,
        heartbeat: float,
        tolerance: float,
    ) -> None:
        if not CLUSTER_NAME.fullmatch(cluster):
            raise ValueError(f"cluster names are 1-64 letters, digits, '-' or '_': {cluster!r}")
        self._upstream = upstream
        self._delays = delays
        self.cluster = cluster
        self.virtual_host = virtual_host
        self.heartbeat = heartbeat
        self.tolerance = tolerance
        self.key = f"{REGISTRY_KEY_PREFIX}{cluster}"
        self.destination = f"/exchange/{exchange}/{self.key}"
        self.node = ""
        #: Whether RabbitMQ's event exchange is being watched (False: heart-beat expiry only).
        self.watching = False
        self._on_message: Callable[[bytes], None] | None = None
        self._on_connected: Callable[[], None] | None = None
        self._on_node_gone: Callable[[str], None] | None = None
        self._on_tick: Callable[[], None] | None = None
        self._conn: Upstream | None = None
        self._watch_conn: Upstream | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def bind(
        self,
        node: str,
        on_message: Callable[[bytes], None],
        on_connected: Callable[[], None],
        on_node_gone: Callable[[str], None],
        on_tick: Callable[[], None],
    ) -> None:
        self.node = node
        self._on_message, self._on_connected, self._on_node_gone, self._on_tick = (
            on_message,
            on_connected,
            on_node_gone,
            on_tick,
        )

    @property
    def queue(self) -> str:
        """This node's queue: deleted by RabbitMQ when the node's registry connection ends."""
        return f"{self.key}.{self.node}"

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (once; nothing happens before :meth:`bind`)."""
        if self._tasks or self._closed or not self.node:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="relay-registry"),
            loop.create_task(self._watch(), name="relay-registry-watch"),
        ]

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for conn in (self._conn, self._watch_conn):
            if conn is not None:
                conn.close()
        self._conn = self._watch_conn = None

    # --- the registry connection ------------------------------------------------------

    def publish(self, body: bytes) -> None:
        conn = self._conn
        if conn is None or not conn.connected:
            return  # the next hello carries the state
        try:
            confirmation = conn.send_nowait(
                Command.SEND, [("destination", self.destination), ("content-type", "application/json")], body
            )
        except StompError as exc:
            logger.warning("registry message not sent: %s", exc)
            return
        confirmation.add_done_callback(_consume)

    async def _run(self) -> None:
        delays = self._delays()
        while not self._closed:
            lost = asyncio.Event()
            conn = self._upstream("relay-registry", self._on_registry_frame)
            conn.on_lost = lambda error, reported: lost.set()
            try:
                await conn.open()
                await conn.send(
                    Command.SUBSCRIBE,
                    [("id", "registry"), ("destination", self.destination), ("x-queue-name", self.queue)],
                    receipt=True,
                )
            except StompError as exc:
                conn.close()
                logger.info("registry connection failed: %s; retrying", exc)
                await asyncio.sleep(next(delays))
                continue
            delays = self._delays()
            self._conn = conn
            if self._on_connected is not None:
                self._on_connected()
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self.heartbeat)
                except asyncio.TimeoutError:
                    if self._on_tick is not None:
                        self._on_tick()
            self._conn = None
            logger.warning("registry connection lost: %s", conn.failure)
            await asyncio.sleep(next(delays))

    def _on_registry_frame(self, frame: Frame) -> None:
        if self._on_message is not None:
            self._on_message(frame.body)

    # --- RabbitMQ's event exchange ----------------------------------------------------------

    async def _watch(self) -> None:
        delays = self._delays()
        warned = False
        while not self._closed:
            lost = asyncio.Event()
            conn = self._upstream("relay-registry-watch", self._on_event)
            conn.on_lost = lambda error, reported: lost.set()
            try:
                await conn.open()
                await conn.send(Command.SUBSCRIBE, [("id", "watch"), ("destination", EVENT_DESTINATION)], receipt=True)
            except StompError as exc:
                conn.close()
                if conn.session is not None:
                    # Connected, but the subscription was refused: the plugin is not enabled.
                    if not warned:
                        logger.warning(
                            "RabbitMQ's event exchange is not available (%s): enable the rabbitmq_event_exchange "
                            "plugin; until then a dead node is noticed after %.0f s of silence",
                            exc,
                            self.heartbeat * self.tolerance,
                        )
                        warned = True
                    await asyncio.sleep(WATCH_RETRY)
                else:
                    await asyncio.sleep(next(delays))
                continue
            delays = self._delays()
            self.watching = True
            self._watch_conn = conn
            await lost.wait()
            self.watching = False
            self._watch_conn = None
            await asyncio.sleep(next(delays))

    def _on_event(self, frame: Frame) -> None:
        if frame.get("vhost") != self.virtual_host:
            return
        name = frame.get("name") or ""
        prefix = self.key + "."
        if name.startswith(prefix) and self._on_node_gone is not None:
            node = name[len(prefix) :]
            if node and node != self.node:
                self._on_node_gone(node)


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a lost connection is handled by the loop
