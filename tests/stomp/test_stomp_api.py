"""Public API: exports, imports, handlers registry, the stomp subcommand."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import aiohttp
import pytest
import asyncio
import json

from stomp_testing import StompClient, TcpPipe, WebSocketPipe, harness  # noqa: F401

import sockjs_server.stomp as stomp_pkg
from sockjs_server.stomp import AppHandlers, StompServer
from sockjs_server.stomp.handlers import encode_body


def test_all_is_honest():
    for name in stomp_pkg.__all__:
        assert hasattr(stomp_pkg, name), name


def test_every_module_imports():
    for module in pkgutil.iter_modules(stomp_pkg.__path__):
        if module.name != "__main__":
            importlib.import_module(f"sockjs_server.stomp.{module.name}")


def test_handler_patterns():
    h = AppHandlers()

    @h.message("/chat.{room}")
    def chat(msg):
        return None

    @h.message("/a/{x}/b/{y}")
    def ab(msg):
        return None

    @h.subscribe("/history/{room}")
    def hist(msg):
        return None

    route, params = h.match_message("/chat.room1")
    assert route.handler is chat and params == {"room": "room1"}
    route, params = h.match_message("/a/1/b/2")
    assert route.handler is ab and params == {"x": "1", "y": "2"}
    assert h.match_message("/a/1/2/b/3") is None
    assert h.match_message("/history/x") is None
    assert h.match_subscribe("/history/x")[1] == {"room": "x"}
    assert len(h) == 3
    with pytest.raises(ValueError):
        h.message("no-slash")
    with pytest.raises(ValueError):
        h.message("/{a}/{a}")
    with pytest.raises(ValueError):
        h.message("/x", send_to="/topic/a", reply_to="/queue/b")


def test_encode_body():
    assert encode_body("é") == ("é".encode(), "text/plain;charset=utf-8")
    assert encode_body(b"\x00") == (b"\x00", None)
    assert encode_body({"a": [1]}) == (b'{"a":[1]}', "application/json")


def test_prefix_validation():
    with pytest.raises(ValueError):
        StompServer(app_prefix="app")
    with pytest.raises(ValueError):
        StompServer(user_prefix="/user/")


async def test_stomp_subcommand_app(aiohttp_server, unused_tcp_port_factory):
    from sockjs_server.cli import COMMANDS, _register_plugins
    from sockjs_server.stomp.cli import build_app, configure

    _register_plugins()
    assert "stomp" in COMMANDS
    parser = argparse.ArgumentParser()
    configure(parser)
    tcp_port = unused_tcp_port_factory()
    args = parser.parse_args(["--port", "0", "--stomp-port", str(tcp_port)])
    server = await aiohttp_server(build_app(args))
    async with aiohttp.ClientSession() as http:
        ws = StompClient(await WebSocketPipe.open(http, str(server.make_url("/stomp"))))
        await ws.connect()
        await ws.subscribe("/topic/cli", "c")
        tcp = StompClient(await TcpPipe.open("127.0.0.1", tcp_port))
        await tcp.connect()
        await tcp.send("/topic/cli", "from tcp", receipt="r")
        assert (await ws.expect("MESSAGE")).text == "from tcp"
        await tcp.disconnect()
        await ws.disconnect()


async def test_lone_surrogate_over_websocket_is_a_protocol_error(harness):
    h = await harness("websocket")
    c = await h.connected()
    await c.pipe.ws.send_str(json.dumps(["SEND\ndestination:/topic/\ud800\n\n\x00"]))
    await c.expect_error("Bad frame")


async def test_authenticate_with_the_sockjs_request_headers(harness):
    def authenticate(info):
        assert info.connection.transport == "websocket"
        return info.connection.http_headers.get("x-user")

    stomp = StompServer(authenticate=authenticate)
    h = await harness("websocket", stomp=stomp)
    async with aiohttp.ClientSession(headers={"X-User": "zoe"}) as http:
        c = StompClient(await WebSocketPipe.open(http, h.base))
        await c.connect()
        assert [info.principal.name for info in stomp.connections] == ["zoe"]
        assert await stomp.users() == ["zoe"]
        await c.disconnect()


async def test_connection_hooks_and_handler_replies(harness):
    from sockjs_server.stomp import AccessDenied

    events = []
    handlers = AppHandlers()

    @handlers.message("/say")
    async def say(msg):
        data = msg.json()
        if not data.get("text"):
            await msg.reply("/queue/errors", {"error": "empty message"})
            return None
        await msg.publish("/topic/room", {"from": msg.user, "text": data["text"]})
        await msg.reply("/queue/acks", "ok")
        return None

    def on_connect(info):
        if info.principal.name == "banned":
            raise AccessDenied("Banned")
        events.append(("connect", info.principal.name, info.transport))

    async def on_disconnect(info):
        events.append(("disconnect", info.principal.name, info.transport))

    stomp = StompServer(
        handlers=handlers, authenticate=lambda i: i.login, on_connect=on_connect, on_disconnect=on_disconnect
    )
    h = await harness("tcp", stomp=stomp)
    c = await h.connected(login="amy")
    await c.subscribe("/user/queue/errors", "e")
    await c.subscribe("/user/queue/acks", "a")
    await c.subscribe("/topic/room", "r")
    await c.send("/app/say", '{"text": ""}', receipt="1")
    m = await c.expect("MESSAGE")
    assert (m["subscription"], m.text) == ("e", '{"error":"empty message"}')
    await c.send("/app/say", '{"text": "hi"}', receipt="2")
    got = {(await c.expect("MESSAGE"))["subscription"] for _ in range(2)}
    assert got == {"r", "a"}
    bad = await h.client()
    await bad.send_frame("CONNECT", {"accept-version": "1.2", "login": "banned"})
    await bad.expect_error("Banned")
    await c.disconnect()
    for _ in range(500):
        if len(events) == 2:
            break
        await asyncio.sleep(0.01)
    assert events == [("connect", "amy", "tcp"), ("disconnect", "amy", "tcp")]
