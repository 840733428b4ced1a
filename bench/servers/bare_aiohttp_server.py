"""The Python ceiling: a bare aiohttp websocket server that puts the same bytes
on the wire as a SockJS websocket session, with the least work possible.

It answers /echo/<server>/<session>/websocket and /broadcast/.../websocket,
sends the open frame "o", and turns each client frame '["msg"]' into the
server frame 'a["msg"]' by prefixing one byte, without decoding it.  It has no
sessions, heartbeats or HTTP transports: it only bounds what aiohttp itself
costs.  Usage:
    python bare_aiohttp_server.py --host 127.0.0.1 --port 8083
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web

MEMBERS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("members", set)


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("o")
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str("a" + msg.data)
    return ws


async def broadcast(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    members = request.app[MEMBERS]
    members.add(ws)
    try:
        await ws.send_str("o")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                frame = "a" + msg.data
                for member in list(members):
                    if not member.closed:
                        await member.send_str(frame)
    finally:
        members.discard(ws)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8083)
    args = parser.parse_args()
    app = web.Application()
    app[MEMBERS] = set()
    app.router.add_get("/echo/{server}/{session}/websocket", echo)
    app.router.add_get("/broadcast/{server}/{session}/websocket", broadcast)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
