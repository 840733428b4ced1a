"""Event-loop stall: how long one big batch holds up every other session.

    python3 bench/stall.py                     # 5 repetitions, updates the stall block of bench/RESULTS.md
    python3 bench/stall.py --messages 50000 --reps 3 --no-write
    python3 bench/stall.py --repo ../other-checkout   # measure another checkout of sockjs_server

One server process (bench/servers/ours_server.py, pinned to core 0 like compare.py's servers)
serves /echo. A "flooder" websocket session sends one SockJS frame carrying ``--messages``
small messages and reads every echo; meanwhile a "pinger" session sends one message, waits
for its echo, pauses 2 ms and repeats. Reported per repetition: the pinger's worst round
trip while the batch was being processed (the stall other sessions see), its median, and
the batch's duration. The figure is the median over repetitions of the worst round trip.
Loopback only; bounded in messages and time (each repetition gives up after 120 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import compare  # the run lock, server start/stop and pinning are shared with the comparison

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
BEGIN, END = "<!-- stall -->", "<!-- /stall -->"
TARGET_MS = 50.0


async def _frames(ws: object, wanted: int, deadline: float) -> None:
    import aiohttp

    assert isinstance(ws, aiohttp.ClientWebSocketResponse)
    got = 0
    while got < wanted:
        msg = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"flooder: unexpected {msg.type.name} after {got} echoes")
        data = msg.data
        if data.startswith("c"):
            raise RuntimeError(f"flooder closed after {got} echoes: {data}")
        if data.startswith("a"):
            got += len(json.loads(data[1:]))


async def flood(port: int, messages: int) -> None:
    """The flooder, in a process of its own (so that reading its echoes never delays the pinger):
    says ``ready``, waits for a line on stdin, sends the frame, reads every echo, says ``done SECONDS``."""
    import aiohttp

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://{compare.HOST}:{port}/echo/000/flood/websocket", max_msg_size=0)
        assert (await ws.receive()).data == "o"
        frame = json.dumps([f"m{i}" for i in range(messages)])
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        start = time.perf_counter()
        await ws.send_str(frame)
        await _frames(ws, messages, time.monotonic() + 120)
        print(f"done {time.perf_counter() - start:.4f}", flush=True)
        await ws.close()


async def one_run(port: int, messages: int) -> dict[str, float]:
    import aiohttp

    flooder = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--flooder", str(port), str(messages),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert flooder.stdin is not None and flooder.stdout is not None
    async with aiohttp.ClientSession() as http:
        pinger = await http.ws_connect(f"ws://{compare.HOST}:{port}/echo/000/ping/websocket")
        assert (await pinger.receive()).data == "o"
        # Warm up the pinger so that its first round trip is not an outlier of its own.
        for _ in range(20):
            await pinger.send_str('["w"]')
            await pinger.receive()
        line = await asyncio.wait_for(flooder.stdout.readline(), 60)
        assert line.strip() == b"ready", line
        rtts: list[float] = []
        done = asyncio.Event()

        async def ping() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await pinger.send_str('["p"]')
                while True:
                    msg = await asyncio.wait_for(pinger.receive(), 60)
                    if msg.data == 'a["p"]':
                        break
                rtts.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.002)

        pinging = asyncio.ensure_future(ping())
        await asyncio.sleep(0.05)
        rtts.clear()  # only round trips that overlap the batch count
        flooder.stdin.write(b"go\n")
        await flooder.stdin.drain()
        line = await asyncio.wait_for(flooder.stdout.readline(), 130)
        done.set()
        await pinging
        await pinger.close()
        await flooder.wait()
        if not line.startswith(b"done "):
            raise RuntimeError(f"the flooder failed: {line!r}")
        batch = float(line.split()[1])
    return {"worst_ms": max(rtts), "median_ms": statistics.median(rtts), "pings": len(rtts), "batch_s": batch}


def measure(repo: Path, messages: int, reps: int, log_dir: Path) -> list[dict[str, float]]:
    compare.OURS_PATH[:] = [str(repo)]
    server = compare.SERVERS["ours"]
    runs = []
    for rep in range(reps):
        with compare.running_server(server, log_dir, "ws-echo") as (port, _pid):
            result = asyncio.run(one_run(port, messages))
        runs.append(result)
        print(
            f"rep {rep + 1}/{reps}: worst ping {result['worst_ms']:.1f} ms, median {result['median_ms']:.2f} ms "
            f"({result['pings']:.0f} pings), batch of {messages} echoed in {result['batch_s']:.2f} s",
            flush=True,
        )
    return runs


def write_block(text: str) -> None:
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in current:
        current = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000, help="messages in the flooder's one frame (default 100000)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--repo", type=Path, default=compare.REPO, help="checkout whose sockjs_server is measured")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--flooder", nargs=2, type=int, metavar=("PORT", "MESSAGES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.flooder:
        asyncio.run(flood(*args.flooder))
        return 0
    compare.ensure_envs(print)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        # The client needs aiohttp: run under the benchmark's own environment, which has it.
        python = compare._py()
        os.execv(python, [python, __file__, *(sys.argv[1:] if argv is None else argv)])
    lock = compare.exclusive_machine(print)
    log_dir = compare.WORK / "stall-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        runs = measure(args.repo.resolve(), args.messages, args.reps, log_dir)
    finally:
        compare.stop_all()
        del lock
    worst = statistics.median(r["worst_ms"] for r in runs)
    median = statistics.median(r["median_ms"] for r in runs)
    batch = statistics.median(r["batch_s"] for r in runs)
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(f"\nworst concurrent ping round trip (median of {args.reps}): {worst:.1f} ms; target < {TARGET_MS:.0f} ms: {verdict}")
    if not args.no_write and args.repo.resolve() == compare.REPO:
        cmd = "python3 bench/stall.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
        write_block(
            f"""## Event-loop stall (`{cmd}`)

Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, sockjs_server pinned to core 0: while one websocket
session's single frame of {args.messages:,} messages is decoded, handed to its handler and echoed, a second
session ping-pongs. Medians of {args.reps} repetitions:

| worst concurrent ping round trip | median ping round trip | batch echoed in | target |
|---|---|---|---|
| {worst:.1f} ms | {median:.2f} ms | {batch:.2f} s | < {TARGET_MS:.0f} ms: {verdict} |

Per repetition (worst ms): {', '.join(f"{r['worst_ms']:.1f}" for r in runs)}.
"""
        )
        print(f"updated {RESULTS.relative_to(compare.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
