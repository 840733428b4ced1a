"""Single publisher through the RabbitMQ relay: SEND frames per second.

    python bench/relay_publish.py [--messages 20000] [--rounds 3] [--relay stomp://guest:guest@127.0.0.1:61613/]
    python bench/relay_publish.py --candidate OTHER_CHECKOUT   # before/after, interleaved

Starts ``python -m sockjs_server stomp --relay URL --stomp-port N`` (of this
checkout, or of ``--candidate``'s too, alternating rounds), connects one plain
TCP STOMP client and sends M SEND frames of 100 bytes to a fresh /topic
without ``receipt``, the last one with ``receipt``; the rate is M divided by
the time until that RECEIPT (the relay sends it only once RabbitMQ confirmed
the last frame, and RabbitMQ confirms a connection's frames in order). One
more client subscribes to the topic and must count all M messages (checked,
not timed). ``--direct`` also runs the same two clients straight on
RabbitMQ's port: the ceiling on this machine. Prints the median per server
and the ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- relay -->", "<!-- /relay -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n"
    return head.encode() + body + b"\x00"


class StompTcp:
    """A raw STOMP 1.2 client over TCP that counts MESSAGE frames and resolves receipts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.messages = 0
        self.errors: list[bytes] = []
        self.receipts: dict[str, asyncio.Future[None]] = {}
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, login: dict[str, str] | None = None) -> StompTcp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self = cls(reader, writer)
        writer.write(frame("CONNECT", {"accept-version": "1.2", "host": "/", "heart-beat": "0,0", **(login or {})}))
        await asyncio.wait_for(self.connected, 30)
        return self

    async def _read(self) -> None:
        buf = b""
        while True:
            data = await self.reader.read(1 << 16)
            if not data:
                return
            buf += data
            while b"\x00" in buf:
                text, _, buf = buf.partition(b"\x00")
                text = text.lstrip(b"\r\n")
                if text.startswith(b"CONNECTED"):
                    self.connected.set_result(None)
                elif text.startswith(b"MESSAGE"):
                    self.messages += 1
                elif text.startswith(b"RECEIPT"):
                    for line in text.split(b"\n"):
                        if line.startswith(b"receipt-id:"):
                            fut = self.receipts.pop(line[11:].decode(), None)
                            if fut is not None and not fut.done():
                                fut.set_result(None)
                elif text.startswith(b"ERROR"):
                    self.errors.append(text)
                    for fut in self.receipts.values():
                        if not fut.done():
                            fut.set_exception(RuntimeError(text.decode(errors="replace")))
                    if not self.connected.done():
                        self.connected.set_exception(RuntimeError(text.decode(errors="replace")))

    async def request(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        rid = uuid.uuid4().hex[:8]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.receipts[rid] = fut
        self.writer.write(frame(command, {**headers, "receipt": rid}, body))
        await asyncio.wait_for(fut, 120)

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()


async def run_direct(messages: int, port: int = 61613) -> float:
    """The same publisher and subscriber straight on RabbitMQ's STOMP port: the ceiling."""
    return await measure(port, messages, {"login": "guest", "passcode": "guest"})


async def measure(stomp_port: int, messages: int, login: dict[str, str] | None = None) -> float:
    topic = f"/topic/bench.single.{uuid.uuid4().hex[:8]}"
    reader = await StompTcp.open(stomp_port, login)
    await reader.request("SUBSCRIBE", {"id": "s", "destination": topic})
    writer = await StompTcp.open(stomp_port, login)
    await writer.request("SEND", {"destination": topic}, b"warm-up")
    body = b"x" * 100
    plain = frame("SEND", {"destination": topic}, body)
    t0 = time.perf_counter()
    for i in range(messages - 1):
        writer.writer.write(plain)
        if i % 256 == 255:
            await writer.writer.drain()
    await writer.request("SEND", {"destination": topic}, body)
    elapsed = time.perf_counter() - t0
    deadline = time.monotonic() + 60
    while reader.messages < messages + 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if reader.messages != messages + 1 or writer.errors:
        raise RuntimeError(f"subscriber got {reader.messages} of {messages + 1}; errors {writer.errors[:1]}")
    await reader.close()
    await writer.close()
    return messages / elapsed


async def run_once(python: str, cwd: Path, relay: str, messages: int) -> float:
    port, stomp_port = free_port(), free_port()
    cmd = [python, "-m", "sockjs_server", "stomp", "--host", "127.0.0.1", "--port", str(port),
           "--stomp-port", str(stomp_port), "--relay", relay, "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(cwd)})
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", stomp_port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        return await measure(stomp_port, messages)
    finally:
        server.terminate()
        server.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--relay", default="stomp://guest:guest@127.0.0.1:61613/")
    parser.add_argument("--candidate", default=None, help="another checkout, measured alternately ('candidate')")
    parser.add_argument("--direct", action="store_true", help="also measure straight on RabbitMQ (no server): the ceiling")
    parser.add_argument("--results", action="store_true", help="write the medians into bench/RESULTS.md (relay block)")
    parser.add_argument("--note", default="", help="a line added under the table in bench/RESULTS.md (e.g. a related measurement)")
    args = parser.parse_args()
    subjects = {"ours": ROOT}
    if args.candidate:
        subjects["candidate"] = Path(args.candidate).resolve()
    rates: dict[str, list[float]] = {name: [] for name in subjects}
    if args.direct:
        rates["direct"] = []
    for _ in range(args.rounds):
        if args.direct:
            rate = await run_direct(args.messages)
            rates["direct"].append(rate)
            print(f"{'direct':<10} {rate:>9.0f} SEND/s  ({args.messages} frames, straight on RabbitMQ)", flush=True)
        for name, cwd in subjects.items():
            rate = await run_once(sys.executable, cwd, args.relay, args.messages)
            rates[name].append(rate)
            print(f"{name:<10} {rate:>9.0f} SEND/s  ({args.messages} frames, one publisher)", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"median {name:<10} {value:>9.0f} SEND/s")
    if "candidate" in medians:
        print(f"ratio candidate/ours: {medians['candidate'] / medians['ours']:.1f}x")
    if "direct" in medians:
        print(f"ratio ours/direct: {medians['ours'] / medians['direct']:.2f}")
    if args.results:
        write_results(args, rates, medians)


def write_results(args: argparse.Namespace, rates: dict[str, list[float]], medians: dict[str, float]) -> None:
    """Replace (or append) the relay block of bench/RESULTS.md."""
    command = f"python3 bench/relay_publish.py --messages {args.messages} --rounds {args.rounds}"
    command += " --candidate BEFORE_CHECKOUT" if args.candidate else ""
    command += " --direct" if args.direct else ""
    names = {"ours": "this checkout", "candidate": "before (`--candidate`)", "direct": "straight on RabbitMQ (ceiling)"}
    rows = "".join(
        f"| {names[name]} | {medians[name]:,.0f} | {', '.join(f'{v:,.0f}' for v in rates[name])} |\n" for name in medians
    )
    ratios = []
    if "candidate" in medians:
        ratios.append(f"this checkout / before: {medians['ours'] / medians['candidate']:.1f}x")
    if "direct" in medians:
        ratios.append(f"this checkout / straight on RabbitMQ: {medians['ours'] / medians['direct']:.2f}")
    text = (
        f"## One publisher through the RabbitMQ relay (`{command}`)\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, unpinned, medians of {args.rounds} interleaved rounds "
        f"of {args.messages} SEND frames (100 B, no receipt but the last) from one TCP client:\n\n"
        "| subject | SEND/s (median) | rounds |\n|---|---|---|\n" + rows + "\n" + "; ".join(ratios) + "\n"
        + (f"\n{args.note}\n" if args.note else "")
    )
    block = f"{BEGIN}\n{text}{END}"
    current = RESULTS.read_text() if RESULTS.exists() else ""
    if BEGIN in current:
        current = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current)


if __name__ == "__main__":
    asyncio.run(main())
