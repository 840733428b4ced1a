#!/usr/bin/env python3
"""The built-in server and our ASGI app, driven without sockets: microseconds per ``xhr_send``.

    python3 bench/builtin_micro.py [--checkout PATH] [--requests 20000] [--uvloop]

The same load as asgi_micro.py (one ``xhr_send`` of a one-message body to an echo
endpoint, every twentieth request a poll that takes the echoes), but as request bytes
handed to the server's connection protocol, whose answers go to a transport that only
counts them: the server's parsing, scope, answer encoding and the app, without the
event loop's socket work. Run it with bench/.envs/py or the checkout's .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any


class _Transport:
    """Takes what the server writes; says nothing about sockets."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        raise AssertionError("the server closed a keep-alive connection")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def measure(requests: int, waiting_polls: bool = False, streaming: bool = False) -> float:
    from sockjs_server import Options, Session
    from sockjs_server.asgi import SockJSApp, SockJSRouter
    from sockjs_server.servers.builtin.server import Server, _Connection

    async def echo(session: Session) -> None:
        async for message in session:
            await session.send(message)

    options = Options(heartbeat_delay=25.0, disconnect_delay=5.0, response_limit=1 << 40)  # one stream throughout
    app = SockJSApp(echo, options=options, prefix="/echo")
    router = SockJSRouter({"/echo": app})
    server = Server(router, router.apps, lifespan=False)
    server.loop = asyncio.get_running_loop()
    send_conn = _Connection(server)
    send_conn.connection_made(_Transport())  # type: ignore[arg-type]
    poll_conn = _Connection(server)
    poll_conn.connection_made(_Transport())  # type: ignore[arg-type]
    head = b"POST /echo/0/s/%s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/plain;charset=UTF-8\r\n"
    send = head % b"xhr_send" + b"Content-Length: 7\r\n\r\n" + b'["abc"]'
    poll = head % b"xhr" + b"Content-Length: 0\r\n\r\n"
    poll_conn.data_received(poll)  # opens the session
    for _ in range(5):
        await asyncio.sleep(0)
    if streaming:
        # The xhr-streaming benchmark's pattern: each message an xhr_send, its echo a chunk of the open stream.
        stream_conn = _Connection(server)
        stream_conn.connection_made(_Transport())  # type: ignore[arg-type]
        stream_conn.data_received(b"POST /echo/0/t/xhr_streaming HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\n\r\n")
        send_t = send.replace(b"/0/s/", b"/0/t/")
        for _ in range(5):
            await asyncio.sleep(0)
        started = time.perf_counter()
        for i in range(requests):
            send_conn.data_received(send_t)
            for _ in range(3):
                await asyncio.sleep(0)  # the echo handler runs, the stream writes
        elapsed = time.perf_counter() - started
        await app.stop()
        return elapsed / requests * 1e6
    started = time.perf_counter()
    if waiting_polls:
        # The xhr-polling benchmark's pattern: the poll waits, then a message arrives and answers it.
        for i in range(requests):
            poll_conn.data_received(poll)
            send_conn.data_received(send)
            for _ in range(5):
                await asyncio.sleep(0)  # the echo handler runs, the poll is answered
        elapsed = time.perf_counter() - started
        await app.stop()
        return elapsed / requests * 1e6
    for i in range(requests):
        send_conn.data_received(send)
        if i % 20 == 19:
            for _ in range(5):
                await asyncio.sleep(0)  # the echo handler runs
            poll_conn.data_received(poll)  # takes the echoes
    elapsed = time.perf_counter() - started
    await app.stop()
    return elapsed / requests * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", default=str(Path(__file__).resolve().parent.parent), help="where sockjs_server is")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--streaming", action="store_true",
                    help="each message: an xhr_send whose echo is written to an open xhr_streaming answer")
    ap.add_argument("--waiting-polls", action="store_true",
                    help="each message: a poll that waits, the xhr_send that answers it (the xhr-polling benchmark)")
    args = ap.parse_args()
    sys.path.insert(0, args.checkout)
    if args.uvloop:
        import uvloop

        result = uvloop.run(measure(args.requests, args.waiting_polls, args.streaming))
    else:
        result = asyncio.run(measure(args.requests, args.waiting_polls, args.streaming))
    what = "a waiting poll and the xhr_send that answers it" if args.waiting_polls else "xhr_send (and a twentieth of a poll)"
    if args.streaming:
        what = "xhr_send and its echo written to an xhr_streaming answer"
    print(f"{result:.1f} us per {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
