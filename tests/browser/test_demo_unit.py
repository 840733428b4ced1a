"""The demo's server side without a browser: room state, the app's routes, and its STOMP
destinations spoken by hand over the raw websocket endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from sockjs_server.demo import DemoError, create_app, find_demo_dir
from sockjs_server.demo.rooms import MAX_NICK, MAX_TEXT, ChatError, Joined, Rooms

from .support import DEMO_DIR, NODE_MODULES

UNIT = 0.1 * float(os.environ.get("SOCKJS_TESTS_TIME_FACTOR", "1"))

# --- Rooms: plain state ------------------------------------------------------------


def test_presence_counts_connections_not_people() -> None:
    rooms = Rooms()
    assert rooms.join("lobby", "ann", "c1", now=0.0) is Joined.NEW
    assert rooms.join("lobby", "ann", "c2", now=0.0) is Joined.ALREADY  # second tab: not a new join
    assert rooms.join("lobby", "bob", "c3", now=0.0) is Joined.NEW
    assert rooms.members("lobby") == ["ann", "bob"]
    assert rooms.leave("lobby", "c1", now=1.0) is None  # ann still has c2
    assert rooms.leave("lobby", "c2", now=1.0) == "ann"  # leaving on purpose: gone at once
    assert rooms.members("lobby") == ["bob"]


def test_a_lost_connection_is_away_for_the_grace_period_then_gone() -> None:
    rooms = Rooms(rejoin_grace=10.0)
    rooms.join("lobby", "ann", "c1", now=0.0)
    rooms.join("lobby", "bob", "c2", now=0.0)
    assert rooms.next_deadline() is None
    assert rooms.drop("c2", now=5.0) == [("lobby", "bob")]
    assert rooms.members("lobby") == ["ann", "bob"] and rooms.away("lobby") == ["bob"]
    assert rooms.is_away("bob")
    assert rooms.next_deadline() == 15.0
    assert rooms.expire(now=14.9) == ([], [])
    with pytest.raises(ChatError):  # away members cannot write
        rooms.say("lobby", "bob", "hi", now=6.0)
    assert rooms.expire(now=15.0) == ([("lobby", "bob")], [])
    assert rooms.members("lobby") == ["ann"] and rooms.away("lobby") == []
    assert not rooms.is_away("bob")


def test_reconnecting_within_the_grace_period_is_not_a_new_join() -> None:
    rooms = Rooms(rejoin_grace=10.0)
    rooms.join("lobby", "bob", "c1", now=0.0)
    rooms.drop("c1", now=1.0)
    assert rooms.join("lobby", "bob", "c2", now=9.0) is Joined.RETURNED
    assert rooms.away("lobby") == [] and rooms.next_deadline() is None
    assert rooms.expire(now=100.0) == ([], [])
    assert rooms.members("lobby") == ["bob"]
    # After the grace period, coming back is a join again.
    rooms.drop("c2", now=200.0)
    rooms.expire(now=210.0)
    assert rooms.join("lobby", "bob", "c3", now=211.0) is Joined.NEW


def test_history_is_bounded_and_only_members_speak() -> None:
    rooms = Rooms(history_size=3)
    with pytest.raises(ChatError):
        rooms.say("lobby", "ann", "hi", now=1.0)
    rooms.join("lobby", "ann", "c1", now=0.0)
    for i in range(5):
        rooms.say("lobby", "ann", f"m{i}", now=float(i))
    assert [m["text"] for m in rooms.history("lobby")] == ["m2", "m3", "m4"]
    assert rooms.history("lobby")[-1] == {"type": "message", "id": "m5", "room": "lobby", "from": "ann", "text": "m4", "ts": 4.0}


@pytest.mark.parametrize("room", ["", "UPPER", "a/b", "x" * 33, None, 3])
def test_bad_room_names(room: Any) -> None:
    with pytest.raises(ChatError):
        Rooms().join(room, "ann", "c1", now=0.0)


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_TEXT + 1), None, ["list"]])
def test_bad_messages(text: Any) -> None:
    rooms = Rooms()
    rooms.join("lobby", "ann", "c1", now=0.0)
    with pytest.raises(ChatError):
        rooms.say("lobby", "ann", text, now=0.0)


def test_too_long_messages_say_the_limit_and_the_length() -> None:
    rooms = Rooms()
    rooms.join("lobby", "ann", "c1", now=0.0)
    rooms.say("lobby", "ann", "é" * MAX_TEXT, now=0.0)  # characters, not bytes
    with pytest.raises(ChatError, match=f"at most {MAX_TEXT} characters; this one has {MAX_TEXT + 5}"):
        rooms.say("lobby", "ann", "x" * (MAX_TEXT + 5), now=0.0)


def test_directory_lists_active_rooms_only() -> None:
    rooms = Rooms()
    rooms.join("a", "ann", "c1", now=0.0)
    rooms.join("b", "bob", "c2", now=0.0)
    rooms.say("b", "bob", "kept for a while", now=1.0)
    rooms.join("c", "cat", "c3", now=0.0)
    rooms.leave("b", "c2", now=2.0)
    rooms.drop("c3", now=2.0)
    # "b" is empty (its history is kept, but it is not listed); "c" has an away member.
    assert rooms.directory() == [{"name": "a", "members": 1}, {"name": "c", "members": 1}]
    assert "b" in rooms


def test_empty_rooms_expire() -> None:
    rooms = Rooms(empty_room_timeout=60.0, rejoin_grace=10.0)
    rooms.join("quiet", "ann", "c1", now=0.0)
    rooms.leave("quiet", "c1", now=1.0)
    assert "quiet" not in rooms  # no members, no history: nothing to keep
    rooms.join("chatty", "ann", "c1", now=0.0)
    rooms.say("chatty", "ann", "hello", now=1.0)
    rooms.drop("c1", now=2.0)
    assert rooms.expire(now=12.0) == ([("chatty", "ann")], [])
    assert rooms.next_deadline() == 72.0  # the history is kept a while after the last activity
    assert rooms.expire(now=71.0) == ([], [])
    assert rooms.history("chatty") != []
    assert rooms.expire(now=72.0) == ([], ["chatty"])
    assert len(rooms) == 0 and rooms.next_deadline() is None


def test_rooms_are_capped_and_empty_ones_forgotten_first() -> None:
    rooms = Rooms(max_rooms=2)
    rooms.join("a", "ann", "c1", now=0.0)
    rooms.join("b", "bob", "c2", now=0.0)
    rooms.say("b", "bob", "x", now=0.0)
    rooms.leave("b", "c2", now=0.0)
    rooms.join("c", "cat", "c3", now=0.0)  # forgets empty "b"
    assert "b" not in rooms and len(rooms) == 2
    with pytest.raises(ChatError, match="All 2 rooms are in use"):
        rooms.join("d", "dan", "c4", now=0.0)


def test_one_person_cannot_fill_the_registry() -> None:
    rooms = Rooms(max_rooms_per_user=2)
    rooms.join("a", "ann", "c1", now=0.0)
    rooms.join("b", "ann", "c2", now=0.0)
    rooms.join("b", "ann", "c3", now=0.0)  # a room she is in already: fine
    with pytest.raises(ChatError, match="in 2 rooms already"):
        rooms.join("c", "ann", "c1", now=0.0)
    assert "c" not in rooms
    rooms.leave("a", "c1", now=1.0)
    rooms.join("c", "ann", "c1", now=1.0)


def test_readme_documents_the_limits_with_their_defaults() -> None:
    readme = (DEMO_DIR.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- demo-limits-table -->", 1)[1].split("<!-- /demo-limits-table -->", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", block, re.MULTILINE))
    defaults = Rooms()
    expected = {name: repr(getattr(defaults, name)) for name in ("history_size", "max_rooms", "max_rooms_per_user", "empty_room_timeout", "rejoin_grace")}
    expected.update(MAX_TEXT=repr(MAX_TEXT), MAX_NICK=repr(MAX_NICK))
    assert rows == expected
    assert "not a restart of the server" in readme and "per node" in readme


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
    # The snapshot answers the SUBSCRIBE; the join, announced once it is done, follows.
    headers, snapshot = await ann.receive_json()
    assert headers["subscription"] == "j"
    assert snapshot == {"type": "snapshot", "room": "lobby", "members": ["ann"], "away": [], "history": []}
    _, presence = await ann.receive_json()
    assert presence["type"] == "presence" and presence["joined"] == "ann"

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

    # A refusal carries the request's ref, so the page can give the text back.
    await bob.send("SEND", {"destination": "/app/private"}, json.dumps({"to": "nobody", "text": "x", "ref": "r1"}))
    headers, error = await bob.receive_json()
    assert headers["subscription"] == "errors" and error == {"error": "nobody is not online.", "ref": "r1"}
    await bob.send("SEND", {"destination": "/app/say"}, json.dumps({"room": "lobby", "text": "x" * 2001, "ref": "r2"}))
    _, error = await bob.receive_json()
    assert error == {"error": "Messages are at most 2000 characters; this one has 2001.", "ref": "r2"}

    # Leaving on purpose is announced at once.
    await bob.send("SEND", {"destination": "/app/leave"}, json.dumps({"room": "lobby"}))
    _, left = await ann.receive_json()
    assert left["left"] == "bob" and left["members"] == ["ann"]
    await bob.ws.close()
    await ann.ws.close()
    await impostor.ws.close()


async def join(client: TestClient, nick: str, room: str, key: str) -> tuple[Stomp, dict[str, Any]]:
    """Connect, subscribe to the room's topic, join it; returns the snapshot."""
    stomp, connected = await Stomp.connect(client, nick, key)
    assert connected["command"] == "CONNECTED", connected
    await stomp.send("SUBSCRIBE", {"id": "t", "destination": f"/topic/room.{room}"})
    await stomp.send("SUBSCRIBE", {"id": "j", "destination": f"/app/room.{room}"})
    while True:
        headers, body = await stomp.receive_json()
        if headers["subscription"] == "j":
            break
    # The join is announced once done: the room's presence event, to everyone in it.
    headers, presence = await stomp.receive_json()
    assert headers["subscription"] == "t" and presence["type"] == "presence", presence
    return stomp, body


@needs_libraries
async def test_a_reconnect_within_the_grace_period_is_not_announced(aiohttp_client: Any) -> None:
    """A lost connection makes bob away; reconnecting is no new "joined", and the history is still there."""
    client: TestClient = await aiohttp_client(create_app(rooms=Rooms(rejoin_grace=60.0)))
    ann, _ = await join(client, "ann", "lobby", "key-a")
    bob, _ = await join(client, "bob", "lobby", "key-b")
    _, joined = await ann.receive_json()
    assert joined["joined"] == "bob"
    await bob.send("SEND", {"destination": "/app/say"}, json.dumps({"room": "lobby", "text": "before"}))
    await ann.receive_json()

    await bob.ws.close()  # lost, not left
    _, away = await ann.receive_json()
    assert "joined" not in away and "left" not in away
    assert away["members"] == ["ann", "bob"] and away["away"] == ["bob"]
    # Nobody else can take the nickname meanwhile.
    impostor, refused = await Stomp.connect(client, "bob", "key-c")
    assert refused["command"] == "ERROR" and refused["message"] == "Nickname taken"

    bob, snapshot = await join(client, "bob", "lobby", "key-b")
    assert snapshot["members"] == ["ann", "bob"] and snapshot["away"] == []
    assert [m["text"] for m in snapshot["history"]] == ["before"]
    _, back = await ann.receive_json()
    assert "joined" not in back and back["away"] == []
    for stomp in (ann, bob, impostor):
        await stomp.ws.close()


@needs_libraries
async def test_a_lost_connection_is_announced_after_the_grace_period(aiohttp_client: Any) -> None:
    app = create_app(rooms=Rooms(rejoin_grace=UNIT))
    client: TestClient = await aiohttp_client(app)
    ann, _ = await join(client, "ann", "lobby", "key-a")
    bob, _ = await join(client, "bob", "lobby", "key-b")
    await ann.receive_json()  # bob joined
    await ann.send("SUBSCRIBE", {"id": "rooms", "destination": "/topic/rooms"})
    await bob.ws.close()
    _, away = await ann.receive_json()
    assert away["away"] == ["bob"]
    headers, left = await ann.receive_json()
    assert headers["subscription"] == "t" and left["left"] == "bob" and left["members"] == ["ann"] and left["away"] == []
    headers, directory = await ann.receive_json()
    assert headers["subscription"] == "rooms" and directory == {"rooms": [{"name": "lobby", "members": 1}]}
    await ann.ws.close()
