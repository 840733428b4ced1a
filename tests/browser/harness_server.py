"""The server behind the SockJS browser tests.

Run as a script: ``python tests/browser/harness_server.py --host 127.0.0.1 --port P``
serves the conformance test server's endpoints (``sockjs_server.cli.testserver``)
with their iframe page pointed at the sockjs-client served here, plus the test
pages. With ``--pages-only`` it serves only the pages and sockjs-client, which
makes a second origin for the cross-origin runs. ``--asgi-server uvicorn`` (or
``--asgi``) and ``--asgi-server builtin`` serve the same endpoints and pages as
one Starlette app on uvicorn or on the package's own server
(``sockjs_server.servers.builtin.server``) instead of aiohttp.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).resolve().parent
SOCKJS_DIST = HERE.parents[1] / "demo" / "node_modules" / "sockjs-client" / "dist"


def add_pages(app: web.Application) -> None:
    async def sockjs_client(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return web.FileResponse(SOCKJS_DIST / name, headers={"Cache-Control": "no-cache"})

    async def page(request: web.Request) -> web.StreamResponse:
        path = HERE / "pages" / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    app.router.add_get("/vendor/{name:sockjs(\\.min)?\\.js(\\.map)?}", sockjs_client)
    app.router.add_get("/pages/{name:[a-z_-]+\\.html}", page)


def make_app(host: str, port: int, pages_only: bool) -> web.Application:
    if pages_only:
        app = web.Application()
    else:
        from sockjs_server.cli.testserver import make_app as make_testserver

        app = make_testserver(sockjs_url=f"http://{host}:{port}/vendor/sockjs.min.js")
    add_pages(app)
    return app


def serve_asgi(host: str, port: int, server: str) -> None:
    """The same endpoints and pages as a Starlette app, each endpoint a mounted SockJSApp, on ``server``."""
    import contextlib
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, PlainTextResponse, Response
    from starlette.routing import BaseRoute, Mount, Route

    from sockjs_server.cli.testserver import make_asgi_app

    sockjs = make_asgi_app(sockjs_url=f"http://{host}:{port}/vendor/sockjs.min.js")

    async def vendor(request: Request) -> Response:
        name = request.path_params["name"]
        if not re.fullmatch(r"sockjs(\.min)?\.js(\.map)?", name):
            return PlainTextResponse("404: Not Found", status_code=404)
        return FileResponse(SOCKJS_DIST / name, headers={"Cache-Control": "no-cache"})

    async def page(request: Request) -> Response:
        name = request.path_params["name"]
        path = HERE / "pages" / name
        if not re.fullmatch(r"[a-z_-]+\.html", name) or not path.is_file():
            return PlainTextResponse("404: Not Found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for endpoint in sockjs.apps:
                await stack.enter_async_context(endpoint.lifespan())
            yield

    routes: list[BaseRoute] = [Route("/vendor/{name}", vendor), Route("/pages/{name}", page)]
    routes += [Mount(prefix, app) for prefix, app in sockjs.routes.items()]
    app = Starlette(routes=routes, lifespan=lifespan)
    print(f"======== Running on http://{host}:{port} ({server}) ========", flush=True)
    if server == "builtin":
        from sockjs_server.servers.builtin.server import run

        run(app, sockjs.apps, host=host, port=port)  # until SIGTERM or SIGINT; sessions get close frames first
    else:
        import uvicorn

        uvicorn.run(app, host=host, port=port, log_level="warning", ws="websockets-sansio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pages-only", action="store_true")
    parser.add_argument(
        "--asgi-server", choices=["uvicorn", "builtin"], help="the endpoints on the ASGI layer (Starlette) on this server"
    )
    parser.add_argument("--asgi", action="store_const", const="uvicorn", dest="asgi_server", help="same as --asgi-server uvicorn")
    args = parser.parse_args()
    if args.asgi_server and not args.pages_only:
        serve_asgi(args.host, args.port, args.asgi_server)
        return
    app = make_app(args.host, args.port, args.pages_only)
    web.run_app(app, host=args.host, port=args.port, print=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
