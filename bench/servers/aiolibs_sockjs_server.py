"""aio-libs sockjs 0.13.0 on aiohttp with the benchmark's two endpoints.

/echo sends every message back to its session; /broadcast sends every message
to every session of the endpoint.  Usage:
    python aiolibs_sockjs_server.py --host 127.0.0.1 --port 8082
"""

from __future__ import annotations

import argparse

import sockjs
from aiohttp import web


async def echo(manager: sockjs.SessionManager, session: sockjs.Session, msg: sockjs.SockjsMessage) -> None:
    if msg.type == sockjs.MsgType.MESSAGE:
        session.send(msg.data)


async def broadcast(manager: sockjs.SessionManager, session: sockjs.Session, msg: sockjs.SockjsMessage) -> None:
    if msg.type == sockjs.MsgType.MESSAGE:
        manager.broadcast(msg.data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    args = parser.parse_args()
    app = web.Application()
    # The same settings every server in the benchmark runs with.
    settings = dict(cookie_needed=False, heartbeat_delay=25, disconnect_delay=5)
    sockjs.add_endpoint(app, echo, name="echo", prefix="/echo", **settings)
    sockjs.add_endpoint(app, broadcast, name="broadcast", prefix="/broadcast", **settings)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
