"""sockjs_server's ASGI layer on uvicorn (httptools, uvloop), granian or the package's own server
(``--server builtin``) with the benchmark's endpoints.

The same /echo, /broadcast (and /stomp when the STOMP layer is there) and settings as
ours_server.py, as SockJSApps behind one SockJSRouter.  Usage (repository on PYTHONPATH):
    python ours_asgi_server.py --host 127.0.0.1 --port 8080 [--server granian|builtin]
"""

from __future__ import annotations

import argparse

from sockjs_server import Options, Session
from sockjs_server.asgi import SockJSApp, SockJSRouter


async def echo(session: Session) -> None:
    async for message in session:
        await session.send(message)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--server", choices=["uvicorn", "granian", "builtin"], default="uvicorn")
    args = parser.parse_args()
    # The same settings every server in the benchmark runs with.
    options = Options(heartbeat_delay=25.0, disconnect_delay=5.0, response_limit=128 * 1024, cookie_needed=False)
    routes = {"/echo": SockJSApp(echo, options=options, prefix="/echo")}

    async def broadcast(session: Session) -> None:
        async for message in session:
            await routes["/broadcast"].endpoint.broadcast(message)

    routes["/broadcast"] = SockJSApp(broadcast, options=options, prefix="/broadcast")
    try:
        from sockjs_server.stomp import MemoryBroker, StompServer

        routes["/stomp"] = SockJSApp(StompServer(broker=MemoryBroker()), options=options, prefix="/stomp")
    except ImportError:
        pass
    router = SockJSRouter(routes)
    if args.server == "builtin":
        from sockjs_server.servers.builtin.server import run

        run(router, router.apps, host=args.host, port=args.port, uvloop=args.loop == "uvloop")
        return
    if args.server == "granian":
        from sockjs_server.servers.granian import run

        loop_factory = None
        if args.loop == "uvloop":
            import uvloop

            loop_factory = uvloop.new_event_loop
        run(router, router.apps, host=args.host, port=args.port, loop_factory=loop_factory, log_level="warning")
        return
    from sockjs_server.servers.uvicorn import Server, config

    settings = config(router, host=args.host, port=args.port, loop=args.loop, access_log=False, log_level="warning")
    Server(settings, router.apps).run()


if __name__ == "__main__":
    main()
