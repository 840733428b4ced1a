#!/usr/bin/env python3
"""Our ASGI app alone, driven without a server: microseconds per ``xhr_send``.

    python3 bench/asgi_micro.py [--checkout PATH] [--requests 20000]

Each message is one ``xhr_send`` of a one-message body to an echo endpoint behind a
SockJSRouter, and every twentieth request a poll that takes the echoes; ``receive`` and
``send`` are plain coroutines that never wait, so what is left is sockjs_server's own
work per request (dispatch, session, answer, the echo handler). Run it with the
environment of the benchmark (bench/.envs/py) or the checkout's .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any


async def measure(requests: int) -> float:
    from sockjs_server import Options, Session
    from sockjs_server.asgi import SockJSApp, SockJSRouter

    async def echo(session: Session) -> None:
        async for message in session:
            await session.send(message)

    app = SockJSApp(echo, options=Options(heartbeat_delay=25.0, disconnect_delay=5.0), prefix="/echo")
    router = SockJSRouter({"/echo": app})
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-type", b"text/plain"), (b"content-length", b"7"),
               (b"connection", b"keep-alive"), (b"user-agent", b"bench")]  # fmt: skip

    def scope(path: str) -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
        }  # fmt: skip

    async def send(message: Any) -> None:
        pass

    async def body() -> dict[str, Any]:
        return {"type": "http.request", "body": b'["abc"]', "more_body": False}

    async def empty() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await router(scope("/echo/0/s/xhr"), empty, send)  # opens the session
    started = time.perf_counter()
    for i in range(requests):
        await router(scope("/echo/0/s/xhr_send"), body, send)
        if i % 20 == 19:
            for _ in range(5):
                await asyncio.sleep(0)  # the echo handler runs
            await router(scope("/echo/0/s/xhr"), empty, send)  # takes the echoes
    elapsed = time.perf_counter() - started
    await app.stop()
    return elapsed / requests * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", default=str(Path(__file__).resolve().parent.parent), help="where sockjs_server is")
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    sys.path.insert(0, args.checkout)
    print(f"{asyncio.run(measure(args.requests)):.1f} us per xhr_send (and a twentieth of a poll)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
