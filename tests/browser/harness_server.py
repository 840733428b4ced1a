"""The server behind the SockJS browser tests.

Run as a script: ``python tests/browser/harness_server.py --host 127.0.0.1 --port P``
serves the conformance test server's endpoints (``sockjs_server.testserver``)
with their iframe page pointed at the sockjs-client served here, plus the test
pages. With ``--pages-only`` it serves only the pages and sockjs-client, which
makes a second origin for the cross-origin runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
        from sockjs_server.testserver import make_app as make_testserver

        app = make_testserver(sockjs_url=f"http://{host}:{port}/vendor/sockjs.min.js")
    add_pages(app)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pages-only", action="store_true")
    args = parser.parse_args()
    app = make_app(args.host, args.port, args.pages_only)
    web.run_app(app, host=args.host, port=args.port, print=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
