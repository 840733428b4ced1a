"""Presence: the asyncio side of the cluster-wide :class:`~.registry.Registry`.

One per :class:`~.server.StompServer`. The server tells it about its own
sessions (connected, subscribed, unsubscribed, gone); the broker's
:class:`~.registry.RegistryTransport` (the RabbitMQ relay has one) carries the
registry's messages to the other nodes and back. Without a transport (the
:class:`~.memory.MemoryBroker`) the registry holds this node only, behind the
same API.

Events go, in order, to the server's delivery callback (presence
subscriptions of clients, synchronously) and to the ``on_presence`` hook
(awaited one after the other when it is async, so that the hook sees the
events in the order they happened).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Union

from .registry import PresenceEvent, Registry, RegistryTransport, SessionInfo

__all__ = ["Presence", "PresenceHook"]

logger = logging.getLogger(__name__)

#: ``on_presence(event)``; may be async.
PresenceHook = Callable[[PresenceEvent], Union[None, Awaitable[None]]]

#: Seconds after (re)connecting during which the other nodes' snapshots are awaited by queries.
SYNC_WAIT = 1.0
#: Events waiting for a slow async ``on_presence`` hook; beyond, new ones are dropped (and logged).
MAX_HOOK_BACKLOG = 100_000


class Presence:
    """Who is connected where, cluster-wide (see :mod:`.registry`)."""

    def __init__(
        self,
        transport: RegistryTransport | None,
        deliver: Callable[[list[PresenceEvent]], None],
        *,
        node: str | None = None,
    ) -> None:
        self.node = node or secrets.token_hex(6)
        self.transport = transport
        self.registry = Registry(
            self.node,
            heartbeat=transport.heartbeat if transport is not None else 5.0,
            tolerance=transport.tolerance if transport is not None else 3.0,
        )
        self.on_presence: PresenceHook | None = None
        self._deliver = deliver
        self._hook_queue: deque[PresenceEvent] = deque()
        self._hook_task: asyncio.Task[None] | None = None
        self._synced: asyncio.Event | None = None
        self._sync_timer: asyncio.TimerHandle | None = None
        if transport is not None:
            transport.bind(self.node, self._on_message, self._on_connected, self._on_node_gone, self._on_tick)

    # --- queries ----------------------------------------------------------------

    async def ready(self) -> None:
        """Wait (at most :data:`SYNC_WAIT` seconds) for the other nodes' snapshots after a (re)connect."""
        synced = self._synced
        if synced is not None and not synced.is_set():
            try:
                await asyncio.wait_for(synced.wait(), SYNC_WAIT)
            except asyncio.TimeoutError:
                pass

    async def users(self) -> list[str]:
        await self.ready()
        return self.registry.users()

    async def subscribers(self, destination: str) -> list[str]:
        await self.ready()
        return self.registry.subscribers(destination)

    async def sessions(self, user: str | None = None) -> list[SessionInfo]:
        await self.ready()
        return self.registry.sessions(user)

    # --- this node's sessions -------------------------------------------------------

    def connected(self, session: str, user: str, since: float, attributes: Mapping[str, str]) -> None:
        self._dispatch(self.registry.connect(session, user, since, attributes))

    def disconnected(self, session: str) -> None:
        self._dispatch(self.registry.disconnect(session))

    def subscribed(self, session: str, destination: str) -> None:
        self._dispatch(self.registry.subscribe(session, destination))

    def unsubscribed(self, session: str, destination: str) -> None:
        self._dispatch(self.registry.unsubscribe(session, destination))

    # --- the transport -------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_message(self, body: bytes) -> None:
        self._dispatch(self.registry.receive(body, self._now()))

    def _on_connected(self) -> None:
        self.registry.hello()
        self._flush()
        # Queries wait a moment for the others' answers to the hello.
        if self._synced is None:
            self._synced = asyncio.Event()
        self._synced.clear()
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        self._sync_timer = asyncio.get_running_loop().call_later(SYNC_WAIT / 2, self._synced.set)

    def _on_node_gone(self, node: str) -> None:
        self._dispatch(self.registry.node_gone(node))

    def _on_tick(self) -> None:
        self.registry.beat()
        self._dispatch(self.registry.expire(self._now()))

    def _flush(self) -> None:
        out = self.registry.take_outgoing()
        if self.transport is not None:
            for body in out:
                self.transport.publish(body)

    # --- events ---------------------------------------------------------------------

    def _dispatch(self, events: list[PresenceEvent]) -> None:
        self._flush()
        if not events:
            return
        try:
            self._deliver(events)
        except Exception:
            logger.exception("delivering presence events failed")
        if self.on_presence is None:
            return
        if len(self._hook_queue) + len(events) > MAX_HOOK_BACKLOG:
            logger.error("on_presence hook %d events behind: %d events dropped", len(self._hook_queue), len(events))
            return
        self._hook_queue.extend(events)
        if self._hook_task is None:
            self._hook_task = asyncio.get_running_loop().create_task(self._run_hook())

    async def _run_hook(self) -> None:
        try:
            while self._hook_queue:
                event = self._hook_queue.popleft()
                hook = self.on_presence
                if hook is None:
                    continue
                try:
                    result = hook(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("on_presence hook failed")
        finally:
            self._hook_task = None
