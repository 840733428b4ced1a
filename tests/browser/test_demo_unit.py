"""The demo's server side without a browser: room state, the app's routes, and its STOMP
destinations spoken by hand over the raw websocket endpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from sockjs_server.demo import DemoError, create_app, find_demo_dir
from sockjs_server.demo.rooms import ChatError, Rooms

from .support import DEMO_DIR, NODE_MODULES

# --- Rooms: plain state ------------------------------------------------------------


def test_presence_counts_connections_not_people() -> None:
    rooms = Rooms()
    assert rooms.join("lobby", "ann", "c1") is True
    assert rooms.join("lobby", "ann", "c2") is False  # second tab
    assert rooms.join("lobby", "bob", "c3") is True
    assert rooms.members("lobby") == ["ann", "bob"]
    assert rooms.leave("lobby", "c1") is None  # ann still has c2
    assert rooms.drop("c2") == [("lobby", "ann")]
    assert rooms.members("lobby") == ["bob"]


def test_history_is_bounded_and_only_members_speak() -> None:
    rooms = Rooms(history_size=3)
    with pytest.raises(ChatError):
        rooms.say("lobby", "ann", "hi", now=1.0)
    rooms.join("lobby", "ann", "c1")
    for i in range(5):
        rooms.say("lobby", "ann", f"m{i}", now=float(i))
    assert [m["text"] for m in rooms.history("lobby")] == ["m2", "m3", "m4"]
    assert rooms.history("lobby")[-1] == {"type": "message", "id": "m5", "room": "lobby", "from": "ann", "text": "m4", "ts": 4.0}


@pytest.mark.parametrize("room", ["", "UPPER", "a/b", "x" * 33, None, 3])
def test_bad_room_names(room: Any) -> None:
    with pytest.raises(ChatError):
        Rooms().join(room, "ann", "c1")


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001, None, ["list"]])
def test_bad_messages(text: Any) -> None:
    rooms = Rooms()
    rooms.join("lobby", "ann", "c1")
    with pytest.raises(ChatError):
        rooms.say("lobby", "ann", text, now=0.0)


def test_rooms_are_capped_and_empty_ones_forgotten_first() -> None:
    rooms = Rooms(max_rooms=2)
    rooms.join("a", "ann", "c1")
    rooms.join("b", "bob", "c2")
    rooms.leave("b", "c2")
    rooms.join("c", "cat", "c3")  # forgets empty "b"
    assert [r["name"] for r in rooms.directory()] == ["a", "c"]
    with pytest.raises(ChatError):
        rooms.join("d", "dan", "c4")


# --- the application --------------------------------------------------------------

needs_libraries = pytest.mark.skipif(
    not (NODE_MODULES / "sockjs-client").is_dir(), reason="demo/node_modules missing (npm ci --prefix demo)"
)


def test_demo_dir_is_found_from_a_checkout() -> None:
    assert find_demo_dir() == DEMO_DIR


def test_an_explicit_demo_dir_is_not_second_guessed(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="looked in"):
        find_demo_dir(tmp_path / "missing")


def test_missing_libraries_say_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(DemoError, match="npm ci --prefix"):
        create_app(tmp_path)


@needs_libraries
async def test_page_libraries_and_endpoint_are_served(aiohttp_client: Any) -> None:
    client: TestClient = await aiohttp_client(create_app())
    page = await client.get("/")
    assert page.status == 200 and "sockjs-server chat" in await page.text()
    for path in ("/static/chat.js", "/static/boot.js", "/vendor/sockjs.min.js", "/vendor/stomp.umd.min.js"):
        response = await client.get(path)
        assert response.status == 200, path
    assert (await client.get("/vendor/package.json")).status == 404
    info = await (await client.get("/chat/info")).json()
    assert info["websocket"] is True
    iframe = await (await client.get("/chat/iframe.html")).text()
    assert 'src="/vendor/sockjs.min.js"' in iframe  # sockjs-client from here, not a CDN


class Stomp:
    """A STOMP client spoken by hand over the endpoint's raw websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.buffer = ""

    @classmethod
    async def connect(cls, client: TestClient, nick: str, key: str = "k") -> tuple[Stomp, dict[str, str]]:
        ws = await client.ws_connect("/chat/websocket")
        stomp = cls(ws)
        await stomp.send("CONNECT", {"accept-version": "1.2", "host": "demo", "login": nick, "client-key": key})
        command, headers, _ = await stomp.receive()
        return stomp, {"command": command, **headers}

    async def send(self, command: str, headers: dict[str, str], body: str = "") -> None:
        head = "".join(f"{k}:{v}\n" for k, v in headers.items())
        await self.ws.send_str(f"{command}\n{head}\n{body}\x00")

    async def receive(self) -> tuple[str, dict[str, str], str]:
        # One websocket message may carry several frames (the server flushes once per loop turn).
        while "\x00" not in self.buffer:
            msg = await asyncio.wait_for(self.ws.receive(), 5)
            assert msg.type is WSMsgType.TEXT, msg
            self.buffer += msg.data
        frame, _, self.buffer = self.buffer.partition("\x00")
        head, _, body = frame.lstrip("\n").partition("\n\n")
        command, *lines = head.split("\n")
        headers = dict(line.split(":", 1) for line in lines)
        return command, headers, body

    async def receive_json(self) -> tuple[dict[str, str], Any]:
        command, headers, body = await self.receive()
        assert command == "MESSAGE", (command, headers, body)
        return headers, json.loads(body)


@needs_libraries
async def test_join_history_presence_and_private_over_stomp(aiohttp_client: Any) -> None:
    app: web.Application = create_app()
    client: TestClient = await aiohttp_client(app)

    ann, connected = await Stomp.connect(client, "ann", "key-a")
    assert connected["command"] == "CONNECTED"
    await ann.send("SUBSCRIBE", {"id": "t", "destination": "/topic/room.lobby"})
    await ann.send("SUBSCRIBE", {"id": "private", "destination": "/user/queue/private"})
    await ann.send("SUBSCRIBE", {"id": "j", "destination": "/app/room.lobby"})
    _, presence = await ann.receive_json()
    assert presence["type"] == "presence" and presence["joined"] == "ann"
    headers, snapshot = await ann.receive_json()
    assert headers["subscription"] == "j"
    assert snapshot == {"type": "snapshot", "room": "lobby", "members": ["ann"], "history": []}

    await ann.send("SEND", {"destination": "/app/say", "content-type": "application/json"}, json.dumps({"room": "lobby", "text": "hi"}))
    _, said = await ann.receive_json()
    assert (said["type"], said["from"], said["text"]) == ("message", "ann", "hi")

    # Someone else with the same nickname is refused while ann is connected.
    impostor, refused = await Stomp.connect(client, "ann", "key-b")
    assert refused["command"] == "ERROR" and refused["message"] == "Nickname taken"

    bob, _ = await Stomp.connect(client, "bob", "key-c")
    await bob.send("SUBSCRIBE", {"id": "errors", "destination": "/user/queue/errors"})
    await bob.send("SUBSCRIBE", {"id": "private", "destination": "/user/queue/private"})
    await bob.send("SUBSCRIBE", {"id": "j", "destination": "/app/room.lobby"})
    _, snapshot = await bob.receive_json()
    assert snapshot["members"] == ["ann", "bob"]
    assert [m["text"] for m in snapshot["history"]] == ["hi"]
    _, joined = await ann.receive_json()
    assert joined["joined"] == "bob" and joined["members"] == ["ann", "bob"]

    await bob.send("SEND", {"destination": "/app/private"}, json.dumps({"to": "ann", "text": "psst"}))
    _, private = await ann.receive_json()
    assert (private["from"], private["to"], private["text"]) == ("bob", "ann", "psst")
    _, echoed = await bob.receive_json()
    assert echoed == private

    await bob.send("SEND", {"destination": "/app/private"}, json.dumps({"to": "nobody", "text": "x"}))
    headers, error = await bob.receive_json()
    assert headers["subscription"] == "errors" and error == {"error": "nobody is not online."}

    await bob.ws.close()
    _, left = await ann.receive_json()
    assert left["left"] == "bob" and left["members"] == ["ann"]
    await ann.ws.close()
    await impostor.ws.close()
