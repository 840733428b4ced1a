"""Running a coroutine in the caller until it first has to wait.

A websocket write nearly always goes through without waiting; only a client
that stopped reading makes it wait for the connection to drain. Where a write
might wait (aiohttp: the connection's buffer is near its high-water mark; an
ASGI server gives no such sign beforehand), it is started by hand: it costs
no task when it does not wait after all, and when it does, the rest goes on
in a task of its own. Whoever started it (the endpoint's shared flush task,
which writes every session a broadcast woke) moves on at once, and one
stalled client holds up nobody else.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_eagerly"]


@types.coroutine
def _go_on(steps: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Drive ``steps``, a coroutine started by hand that now waits for ``waiting``, to its end
    (what ``await`` would have done had it not been started by hand)."""
    while True:
        try:
            yield waiting
        except BaseException as exc:  # thrown in by the task: its cancellation
            try:
                waiting = steps.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = steps.send(None)
        except StopIteration:
            return


async def _finish(steps: Coroutine[Any, Any, None], waiting: Any) -> None:
    await _go_on(steps, waiting)


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` in the caller until it first waits; the rest goes on in a task (returned),
    ``None`` when it finished without waiting. An exception before it waits is raised here."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coro, waiting))
