"""Fan-out: one publisher, 1000 subscribers, every message to everyone, in order."""

from __future__ import annotations

import asyncio

from stomp_testing import harness  # noqa: F401

from sockjs_server.stomp import MemoryBroker, StompServer

SUBSCRIBERS = 1000
MESSAGES = 50


async def test_one_publisher_a_thousand_subscribers(harness):
    stomp = StompServer(MemoryBroker())
    h = await harness("tcp", stomp=stomp)

    async def subscriber(i: int):
        c = await h.connected()
        await c.subscribe("/topic/fan.out", f"s{i}")
        return c

    subscribers = []
    for start in range(0, SUBSCRIBERS, 100):  # bounded concurrency while connecting
        subscribers += await asyncio.gather(*(subscriber(i) for i in range(start, start + 100)))
    assert len(stomp.connections) == SUBSCRIBERS

    pub = await h.connected()
    for n in range(MESSAGES):
        await pub.send("/topic/fan.out", f"message {n}", seq=str(n))
    await pub.send_frame("DISCONNECT", {"receipt": "done"})
    await pub.receipt("done")

    async def collect(c):
        frames = [await c.expect("MESSAGE") for _ in range(MESSAGES)]
        return [(f["seq"], f.text) for f in frames]

    results = await asyncio.gather(*(collect(c) for c in subscribers))
    expected = [(str(n), f"message {n}") for n in range(MESSAGES)]
    assert all(r == expected for r in results)
