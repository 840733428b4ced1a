"""The Python ceiling: bare aiohttp handlers that put the same bytes on the wire as
SockJS sessions, with the least work possible.

/echo/<server>/<session>/websocket (and /broadcast/...) sends the open frame "o" and
turns each client frame '["msg"]' into the server frame 'a["msg"]' by prefixing one
byte, without decoding it.  The HTTP transports (xhr_streaming, xhr, eventsource, with
xhr_send) do the same: an xhr_send body '["a","b"]' is queued as the frame
'a["a","b"]' for the session's receiving request.  No JSON decoding or encoding, no
heartbeats, timeouts, limits or validation: it only bounds what aiohttp itself costs.
Usage:
    python bare_aiohttp_server.py --host 127.0.0.1 --port 8083
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web

MEMBERS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("members", set)
SESSIONS: web.AppKey[dict[str, BareSession]] = web.AppKey("sessions", dict)
RESPONSE_LIMIT = 128 * 1024
STREAM_HEADERS = {"Content-Type": "application/javascript; charset=UTF-8", "Cache-Control": "no-store"}
ES_HEADERS = {"Content-Type": "text/event-stream; charset=UTF-8", "Cache-Control": "no-store"}


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


class BareSession:
    __slots__ = ("frames", "waiter")

    def __init__(self) -> None:
        self.frames: list[str] = ["o"]
        self.waiter: asyncio.Future[None] | None = None

    def push(self, frame: str) -> None:
        self.frames.append(frame)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def take(self) -> list[str]:
        while not self.frames:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        frames, self.frames = self.frames, []
        return frames


def _session(request: web.Request) -> BareSession:
    sessions = request.app[SESSIONS]
    sid = request.match_info["session"]
    session = sessions.get(sid)
    if session is None:
        session = sessions[sid] = BareSession()
    return session


async def _stream(request: web.Request, headers: dict[str, str], prelude: bytes, before: str, after: str) -> web.StreamResponse:
    session = _session(request)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    await response.write(prelude)
    sent = 0
    while sent < RESPONSE_LIMIT:
        data = "".join(before + frame + after for frame in await session.take()).encode()
        await response.write(data)
        sent += len(data)
    await response.write_eof()
    return response


async def xhr_streaming(request: web.Request) -> web.StreamResponse:
    return await _stream(request, STREAM_HEADERS, b"h" * 2048 + b"\n", "", "\n")


async def eventsource(request: web.Request) -> web.StreamResponse:
    return await _stream(request, ES_HEADERS, b"\r\n", "data: ", "\r\n\r\n")


async def xhr_polling(request: web.Request) -> web.Response:
    frames = await _session(request).take()
    return web.Response(text="".join(frame + "\n" for frame in frames), headers=STREAM_HEADERS)


async def xhr_send(request: web.Request) -> web.Response:
    session = request.app[SESSIONS].get(request.match_info["session"])
    if session is None:
        return web.Response(status=404)
    session.push("a" + await request.text())
    return web.Response(status=204)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    loop = None
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    app = web.Application()
    app[MEMBERS] = set()
    app[SESSIONS] = {}
    app.router.add_get("/echo/{server}/{session}/websocket", echo)
    app.router.add_get("/broadcast/{server}/{session}/websocket", broadcast)
    app.router.add_post("/echo/{server}/{session}/xhr_streaming", xhr_streaming)
    app.router.add_post("/echo/{server}/{session}/xhr", xhr_polling)
    app.router.add_get("/echo/{server}/{session}/eventsource", eventsource)
    app.router.add_post("/echo/{server}/{session}/xhr_send", xhr_send)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=1, loop=loop)


if __name__ == "__main__":
    main()
