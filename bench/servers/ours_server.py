"""sockjs_server (this project) with the benchmark's two endpoints, through the public API.

/echo sends every message back to its session; /broadcast sends every message to
every session of the endpoint (encoded once by Endpoint.broadcast); /stomp is our
STOMP server on the in-memory broker, /stomp-relay the same on the RabbitMQ relay.  Same settings
as the peers, no access log.  Usage (with the repository on PYTHONPATH):
    python ours_server.py --host 127.0.0.1 --port 8080 [--metrics-path /metrics]
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from aiohttp import web

from sockjs_server import Endpoint, Options, Session, add_endpoint


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


def add_stomp(app: web.Application, options: Options, relay: str | None) -> None:
    """/stomp: STOMP over SockJS through the in-memory broker, when the STOMP layer is there;
    /stomp-relay: the same through the RabbitMQ relay (``--relay stomp://...``)."""
    try:
        from sockjs_server.stomp import MemoryBroker, StompServer
    except ImportError:
        return
    brokers = [MemoryBroker()]
    add_endpoint(app, "/stomp", StompServer(broker=brokers[0]), options=options)
    if relay:
        from sockjs_server.stomp.relay import relay_from_url

        brokers.append(relay_from_url(relay))
        add_endpoint(app, "/stomp-relay", StompServer(broker=brokers[1]), options=options)

    async def broker_lifetime(app: web.Application) -> AsyncIterator[None]:
        for broker in brokers:
            await broker.start()
        yield
        for broker in brokers:
            await broker.close()

    app.cleanup_ctx.append(broker_lifetime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--relay", default=None, help="RabbitMQ STOMP URL for /stomp-relay")
    parser.add_argument("--metrics-path", default=None, help="also serve Prometheus metrics at this path")
    args = parser.parse_args()
    loop = None
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    app = web.Application()
    # The same settings every server in the benchmark runs with.
    options = Options(heartbeat_delay=25.0, disconnect_delay=5.0, response_limit=128 * 1024, cookie_needed=False)
    add_endpoint(app, "/echo", echo, options=options)
    endpoints: list[Endpoint] = []

    async def broadcast(session: Session) -> None:
        async for message in session:
            await endpoints[0].broadcast(message)

    endpoints.append(add_endpoint(app, "/broadcast", broadcast, options=options))
    add_stomp(app, options, args.relay)
    if args.metrics_path:
        from sockjs_server.metrics import add_metrics_route

        add_metrics_route(app, args.metrics_path)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=1, loop=loop)


if __name__ == "__main__":
    main()
