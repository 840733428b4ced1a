#!/usr/bin/env python3
"""What one broadcast delivery costs the server in Python, without sockets.

    python3 bench/push_cost.py                        # this checkout
    python3 bench/push_cost.py . ../other-checkout    # several checkouts, interleaved

Opens 1000 websocket-like sessions on an Endpoint (their receivers flush by taking
frames, as the websocket transport does, but write nowhere), then broadcasts a short
message 3000 times, letting the flush queue run after each. Prints nanoseconds per
delivery of the push alone (Endpoint.broadcast_nowait) and of push plus flush, and per
message of one session's echo path (deliver, receive, send written directly): the
minimum and the 10th percentile over the rounds (other work on the machine only ever
adds time). Each checkout runs in its own process (PYTHONPATH=checkout), rounds
interleaved. Needs checkouts with the framework-free Endpoint.new_session (1bf4035 on).
Standard library only (plus the checkout's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PY_ENV_PYTHON = BENCH / ".envs" / "py" / "bin" / "python"

CHILD = r"""
import asyncio, json, sys, time
from multidict import CIMultiDict, CIMultiDictProxy
from sockjs_server import Options
from sockjs_server.runtime.endpoint import Endpoint
from sockjs_server.runtime.session import Receiver

SESSIONS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])

async def main() -> None:
    async def handler(session):
        await session.wait_closed()

    endpoint = Endpoint("/b", handler, Options(heartbeat_delay=25.0, disconnect_delay=5.0), "b")
    headers = CIMultiDictProxy(CIMultiDict())
    for i in range(SESSIONS):
        session = endpoint.new_session(str(i), "websocket", remote=None, headers=headers, query_string="",
                                       addressable=False)

        async def flush(session=session):
            while session.next_frame() is not None:
                pass

        receiver = Receiver(flush=flush, queue=endpoint.flush_queue)
        session.attach(receiver)
        receiver.wake()
    await asyncio.sleep(0.01)
    push, total = [], []
    for _ in range(ROUNDS):
        a = time.perf_counter()
        endpoint.broadcast_nowait("hello world message")
        b = time.perf_counter()
        await asyncio.sleep(0)  # the flush task runs
        await asyncio.sleep(0)
        c = time.perf_counter()
        push.append((b - a) / SESSIONS * 1e9)
        total.append((c - a) / SESSIONS * 1e9)
    push.sort()
    total.sort()
    p10 = ROUNDS // 10

    # The echo path of one websocket session: a message delivered, received and sent back
    # (the direct write: the receiver's write is a no-op coroutine).
    async def write(frame):
        pass

    session = endpoint.new_session("echo", "websocket", remote=None, headers=headers, query_string="",
                                   addressable=False)
    receiver = Receiver(flush=lambda: asyncio.sleep(0), queue=endpoint.flush_queue, write=write)
    session.attach(receiver)
    assert session.next_frame() == "o"
    echo = []
    for _ in range(ROUNDS):
        a = time.perf_counter()
        for _ in range(100):
            session.deliver(["hello world message"])
            await session.send(await session.receive())
        echo.append((time.perf_counter() - a) / 100 * 1e9)
    echo.sort()
    print(json.dumps({"push_min": push[0], "push_p10": push[p10], "total_min": total[0], "total_p10": total[p10],
                      "echo_min": echo[0], "echo_p10": echo[p10]}))

asyncio.run(main())
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkouts", nargs="*", default=[str(BENCH.parent)], help="repository checkouts (default: this one)")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3000, help="broadcasts per measurement")
    ap.add_argument("--reps", type=int, default=3, help="measurements per checkout, interleaved")
    ap.add_argument("--cpu", default="0", help="core to pin to (taskset), empty for none")
    args = ap.parse_args()
    python = str(PY_ENV_PYTHON) if PY_ENV_PYTHON.exists() else sys.executable
    results: dict[str, list[dict[str, float]]] = {c: [] for c in args.checkouts}
    for rep in range(args.reps):
        for checkout in args.checkouts:
            cmd = [python, "-c", CHILD, str(args.sessions), str(args.rounds)]
            if args.cpu:
                cmd = ["taskset", "-c", args.cpu, *cmd]
            where = str(Path(checkout).resolve())
            # Run in the checkout: "python -c" puts the working directory first on sys.path.
            env = {**os.environ, "PYTHONPATH": where}
            out = subprocess.run(cmd, env=env, cwd=where, capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            results[checkout].append(res)
            print(f"rep {rep + 1}/{args.reps} {checkout}: push min {res['push_min']:.0f} p10 {res['push_p10']:.0f} ns, "
                  f"push+flush min {res['total_min']:.0f} p10 {res['total_p10']:.0f} ns per delivery; "
                  f"echo min {res['echo_min']:.0f} p10 {res['echo_p10']:.0f} ns per message", flush=True)
    keys = ("push_min", "push_p10", "total_min", "total_p10", "echo_min", "echo_p10")
    print("\nmedians (ns): checkout | " + " | ".join(keys))
    for checkout, runs in results.items():
        print(f"{checkout} | " + " | ".join(f"{statistics.median(r[k] for r in runs):.0f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
