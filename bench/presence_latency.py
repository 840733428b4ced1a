#!/usr/bin/env python3
"""How fast a node's death reaches the others' user registry: SIGKILL to ``left`` (reason ``node_lost``).

    python3 bench/presence_latency.py [--runs 5]

Two ``sockjs-server demo --relay`` processes of a new cluster on the RabbitMQ at
127.0.0.1:61613 (guest/guest, with the rabbitmq_event_exchange plugin); ann on node 1
watches ``/presence``, bob connects to node 2, node 2 is SIGKILLed, and the time until
ann's ``left`` event is printed. Run from the checkout with its .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import time

sys.path[:0] = ["tests/relay", "tests/stomp"]  # the relay tests' helpers
import aiohttp  # noqa: E402
from conftest import unique  # noqa: E402
from tcp_proxy import free_port  # noqa: E402
from test_deployment import wait_port  # noqa: E402
from test_presence import Chatter, demo_url  # noqa: E402


async def main(runs: int) -> None:
    deaths = []
    for _ in range(runs):
        cluster = unique("measure")
        procs = []
        for _ in range(2):
            port = free_port()
            p = subprocess.Popen([sys.executable, "-m", "sockjs_server", "demo", "--port", str(port), "--relay", demo_url(cluster)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            procs.append((port, p))
        for port, p in procs: wait_port(port, p, "demo")
        async with aiohttp.ClientSession() as http:
            ann = await Chatter.connect(http, procs[0][0], "ann")
            await Chatter.connect(http, procs[1][0], "bob")
            ev = await ann.next_on("users")
            assert ev["type"] == "joined"
            t = time.perf_counter()
            procs[1][1].send_signal(signal.SIGKILL)
            ev = await ann.next_on("users")
            assert ev["reason"] == "node_lost", ev
            deaths.append((time.perf_counter() - t) * 1000)
            await ann.client.close()
        for _, p in procs: p.kill(); p.wait()
    print("SIGKILL -> left (node_lost) on the other node, ms:", [round(x, 1) for x in deaths], "median", round(statistics.median(deaths), 1))
if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
