"""Broker-side cost of the two relay designs, measured against RabbitMQ's STOMP plugin.

    python3 tests/relay/bench_design.py [--clients 200] [--messages 500]

* connections: what one upstream connection per client costs RabbitMQ
  (Erlang memory and processes per connection, time to connect);
* fan-out: N subscribers of one /topic destination, with
  (a) one connection per subscriber (the per-client design),
  (b) one shared connection holding N subscriptions (multiplexed),
  (c) one shared connection holding one subscription, copied N times in
      the relay (multiplexed with de-duplication).

Numbers are printed; nothing is asserted (not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
import uuid

from sockjs_server.stomp.frames import Command, Frame
from sockjs_server.stomp.relay.upstream import Upstream

HOST, PORT = "127.0.0.1", 61613


def erlang(expr: str) -> int:
    out = subprocess.run(["rabbitmqctl", "eval", expr], capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.strip())


def broker_memory() -> int:
    return erlang("[erlang:garbage_collect(P) || P <- erlang:processes()], erlang:memory(total).")


def broker_processes() -> int:
    return erlang("erlang:system_info(process_count).")


def upstream(on_message: object = None) -> Upstream:
    return Upstream(
        HOST,
        PORT,
        login="guest",
        passcode="guest",
        virtual_host="/",
        on_message=on_message,  # type: ignore[arg-type]
        name="bench",
    )


async def bench_connections(n: int) -> None:
    mem0, proc0 = broker_memory(), broker_processes()
    conns = []
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        u = upstream()
        await u.open()
        await u.send(Command.SUBSCRIBE, [("id", "s"), ("destination", f"/topic/bench.{uuid.uuid4().hex}")], receipt=True)
        times.append(time.perf_counter() - t0)
        conns.append(u)
    await asyncio.sleep(1)
    mem1, proc1 = broker_memory(), broker_processes()
    print(f"connections: {n} upstream connections with one topic subscription each")
    print(f"  connect+subscribe median {statistics.median(times) * 1000:.2f} ms, p95 {sorted(times)[int(n * 0.95)] * 1000:.2f} ms")
    print(f"  RabbitMQ memory +{(mem1 - mem0) / n / 1024:.0f} KiB per connection, +{(proc1 - proc0) / n:.1f} Erlang processes per connection")
    # Same subscriptions on one shared connection, for comparison.
    for u in conns:
        u.close()
    await asyncio.sleep(1)
    mem0, proc0 = broker_memory(), broker_processes()
    shared = upstream()
    await shared.open()
    for i in range(n):
        await shared.send(Command.SUBSCRIBE, [("id", f"s{i}"), ("destination", f"/topic/bench.{uuid.uuid4().hex}")], receipt=True)
    await asyncio.sleep(1)
    mem1, proc1 = broker_memory(), broker_processes()
    print(f"  multiplexed: one connection with {n} subscriptions: +{(mem1 - mem0) / n / 1024:.0f} KiB per subscription, +{(proc1 - proc0) / n:.1f} processes per subscription")
    shared.close()


async def fan_out(label: str, subscribers: int, messages: int, mode: str) -> None:
    topic = f"/topic/bench.fan.{uuid.uuid4().hex}"
    expected = subscribers * messages
    done = asyncio.get_running_loop().create_future()
    count = 0

    def deliver(frame: Frame) -> None:
        nonlocal count
        count += 1
        if count == expected and not done.done():
            done.set_result(None)

    def deliver_copied(frame: Frame) -> None:
        # The relay's local fan-out: one callback per local subscriber.
        for _ in range(subscribers):
            deliver(frame)

    conns: list[Upstream] = []
    if mode == "per-client":
        for i in range(subscribers):
            u = upstream(deliver)
            await u.open()
            await u.send(Command.SUBSCRIBE, [("id", "s"), ("destination", topic)], receipt=True)
            conns.append(u)
    elif mode == "multiplexed":
        u = upstream(deliver)
        await u.open()
        for i in range(subscribers):
            await u.send(Command.SUBSCRIBE, [("id", f"s{i}"), ("destination", topic)], receipt=True)
        conns.append(u)
    else:
        u = upstream(deliver_copied)
        await u.open()
        await u.send(Command.SUBSCRIBE, [("id", "s"), ("destination", topic)], receipt=True)
        conns.append(u)
    publisher = upstream()
    await publisher.open()
    body = b"x" * 100
    t0 = time.perf_counter()
    for i in range(messages):
        await publisher.send(Command.SEND, [("destination", topic)], body, receipt=(i % 50 == 49))
    await asyncio.wait_for(done, 120)
    elapsed = time.perf_counter() - t0
    print(f"  {label:<42} {expected / elapsed:>9.0f} deliveries/s ({expected} in {elapsed:.2f} s)")
    publisher.close()
    for u in conns:
        u.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    await bench_connections(args.clients)
    print(f"fan-out: {args.subscribers} subscribers x {args.messages} messages of 100 bytes to one /topic")
    for _ in range(2):
        await fan_out("(a) per-client connections", args.subscribers, args.messages, "per-client")
        await fan_out("(b) multiplexed, one subscription each", args.subscribers, args.messages, "multiplexed")
        await fan_out("(c) multiplexed, de-duplicated in the relay", args.subscribers, args.messages, "dedup")


if __name__ == "__main__":
    asyncio.run(main())
