"""aio-libs sockjs 0.13.0 on aiohttp with the benchmark's two endpoints.

/echo sends every message back to its session; /broadcast sends every message
to every session of the endpoint; /stomp is a minimal STOMP topic fan-out.  Usage:
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


class MinimalStomp:
    """/stomp: a minimal STOMP topic fan-out written for the benchmark (CONNECT, SUBSCRIBE,
    UNSUBSCRIBE, SEND, DISCONNECT, receipts; no header escaping, acks or transactions):
    the least a STOMP broker on aio-libs sockjs has to do per message."""

    def __init__(self) -> None:
        self.topics: dict[str, dict[sockjs.Session, str]] = {}
        self.subscriptions: dict[sockjs.Session, dict[str, str]] = {}
        self.message_id = 0

    async def handle(self, manager: sockjs.SessionManager, session: sockjs.Session, msg: sockjs.SockjsMessage) -> None:
        if msg.type == sockjs.MsgType.CLOSED:
            for dest in self.subscriptions.pop(session, {}).values():
                self.topics.get(dest, {}).pop(session, None)
            return
        if msg.type != sockjs.MsgType.MESSAGE:
            return
        for raw in msg.data.split("\0"):
            frame = raw.lstrip("\r\n")
            if not frame:
                continue
            head, _, body = frame.partition("\n\n")
            lines = head.split("\n")
            command = lines[0]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if colon and name not in headers:
                    headers[name] = value
            if command in ("CONNECT", "STOMP"):
                session.send("CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0")
            elif command == "SUBSCRIBE":
                self.topics.setdefault(headers["destination"], {})[session] = headers["id"]
                self.subscriptions.setdefault(session, {})[headers["id"]] = headers["destination"]
            elif command == "UNSUBSCRIBE":
                dest = self.subscriptions.get(session, {}).pop(headers.get("id", ""), None)
                if dest is not None:
                    self.topics[dest].pop(session, None)
            elif command == "SEND":
                members = self.topics.get(headers.get("destination", ""))
                if members:
                    self.message_id += 1
                    tail = (f"\nmessage-id:{self.message_id}\ndestination:{headers['destination']}\n"
                            f"content-length:{len(body.encode())}\n\n{body}\0")
                    for member, sub_id in list(members.items()):
                        member.send(f"MESSAGE\nsubscription:{sub_id}{tail}")
            if "receipt" in headers:
                session.send(f"RECEIPT\nreceipt-id:{headers['receipt']}\n\n\0")
            if command == "DISCONNECT":
                session.close()


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
    sockjs.add_endpoint(app, MinimalStomp().handle, name="stomp", prefix="/stomp", **settings)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
