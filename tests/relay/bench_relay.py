"""Fan-out through the relay, end to end: SockJS websocket clients of a ``sockjs-server stomp`` process.

    python3 tests/relay/bench_relay.py [--clients 100] [--messages 300]

For each broker set-up (in-memory; relay with shared topic subscriptions, the
default; relay with one RabbitMQ connection per client, as Spring's relay
does), N websocket clients subscribe to one /topic, one more client SENDs M
messages of 100 bytes (a receipt every 20), and the time until every client
got every message gives deliveries per second. RabbitMQ's connection count is
read with ``rabbitmqctl list_stomp_connections``. Numbers are printed;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def frame(command: str, headers: dict[str, str], body: str = "") -> str:
    return command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n" + body + "\x00"


class Client:
    """A websocket SockJS session carrying STOMP; counts MESSAGE frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages = 0
        self.receipts: dict[str, asyncio.Future[None]] = {}
        self.connected = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] | None = None
        self.expected = 0
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> Client:
        ws = await http.ws_connect(f"{base}/000/{uuid.uuid4().hex[:12]}/websocket", max_msg_size=0)
        self = cls(ws)
        await self.send(frame("CONNECT", {"accept-version": "1.2", "host": "/", "heart-beat": "0,0"}))
        await asyncio.wait_for(self.connected, 30)
        return self

    async def send(self, text: str) -> None:
        await self.ws.send_str(json.dumps([text]))

    async def _read(self) -> None:
        async for msg in self.ws:
            data = msg.data
            if not data.startswith("a"):
                continue
            for text in json.loads(data[1:]):
                if text.startswith("CONNECTED"):
                    self.connected.set_result(None)
                    continue
                if text.startswith("RECEIPT"):
                    for line in text.split("\n"):
                        if line.startswith("receipt-id:"):
                            fut = self.receipts.pop(line[11:].rstrip("\x00"), None)
                            if fut is not None:
                                fut.set_result(None)
                    continue
                if text.startswith("ERROR"):
                    raise RuntimeError(text)
                self.messages += text.count("MESSAGE\n")
                if self.done is not None and self.messages >= self.expected and not self.done.done():
                    self.done.set_result(None)

    async def request(self, command: str, headers: dict[str, str], body: str = "") -> None:
        rid = uuid.uuid4().hex[:8]
        fut = asyncio.get_running_loop().create_future()
        self.receipts[rid] = fut
        await self.send(frame(command, {**headers, "receipt": rid}, body))
        await asyncio.wait_for(fut, 60)

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


def rabbit_connections() -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_stomp_connections", "peer_port"], capture_output=True, text=True, timeout=60)
    return len([line for line in out.stdout.splitlines() if line.strip().isdigit()])


async def run_case(label: str, relay: str | None, clients: int, messages: int, publishers: int) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "sockjs_server", "stomp", "--host", "127.0.0.1", "--port", str(port)]
    if relay is not None:
        cmd += ["--relay", relay]
    baseline = rabbit_connections()
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        base = f"http://127.0.0.1:{port}/stomp"
        topic = f"/topic/bench.{uuid.uuid4().hex[:8]}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            readers = []
            for i in range(clients):
                reader = await Client.open(http, base)
                await reader.request("SUBSCRIBE", {"id": "s", "destination": topic})
                readers.append(reader)
            writers = [await Client.open(http, base) for _ in range(publishers)]
            for writer in writers:
                await writer.request("SEND", {"destination": topic}, "warm-up")
            for reader in readers:
                reader.expected = publishers + messages
                reader.done = asyncio.get_running_loop().create_future()
            connections = rabbit_connections() - baseline
            body = "x" * 100

            async def publish(writer: Client, count: int) -> None:
                for i in range(count):
                    if i % 20 == 19 or i == count - 1:
                        await writer.request("SEND", {"destination": topic}, body)
                    else:
                        await writer.send(frame("SEND", {"destination": topic}, body))

            t0 = time.perf_counter()
            await asyncio.gather(*(publish(w, messages // publishers) for w in writers))
            sent = time.perf_counter() - t0
            await asyncio.wait_for(asyncio.gather(*(r.done for r in readers if r.done is not None)), 300)
            elapsed = time.perf_counter() - t0
            total = clients * messages
            print(
                f"{label:<44} {total / elapsed:>8.0f} deliveries/s  ({messages / sent:>5.0f} SEND/s accepted; "
                f"{connections} RabbitMQ connections for {clients + publishers} clients)"
            )
            # One client alone, nobody subscribed: SEND + RECEIPT round trips.
            idle_topic = f"/topic/bench.idle.{uuid.uuid4().hex[:8]}"
            t0 = time.perf_counter()
            for _ in range(200):
                await writers[0].request("SEND", {"destination": idle_topic}, body)
            print(f"{'  '}one client's SEND+RECEIPT with no subscriber: {200 / (time.perf_counter() - t0):.0f}/s")
            for client in readers + writers:
                await client.close()
    finally:
        server.terminate()
        server.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url = "stomp://guest:guest@127.0.0.1:61613/"
    print(f"{args.clients} websocket subscribers of one /topic, {args.publishers} publisher(s), {args.messages} SENDs of 100 bytes")
    for _ in range(args.rounds):
        for label, relay in (
            ("in-memory broker", None),
            ("relay, shared topic subscriptions (default)", url),
            ("relay, one connection per client", url + "?share_topics=false"),
        ):
            await run_case(label, relay, args.clients, args.messages, args.publishers)


if __name__ == "__main__":
    asyncio.run(main())
