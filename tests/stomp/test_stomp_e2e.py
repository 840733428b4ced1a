"""End to end: a STOMP client over TCP and over real SockJS sessions
(websocket, xhr-streaming, xhr-polling), against one StompServer."""

from __future__ import annotations

import asyncio

import pytest
from stomp_testing import ALL_TRANSPORTS, TIMEOUT, harness  # noqa: F401

from sockjs_server.stomp import AccessDenied, AppHandlers, MemoryBroker, StompOptions, StompServer

pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS)


async def test_pubsub_with_receipts(harness, transport):
    h = await harness(transport)
    sub = await h.connected()
    pub = await h.connected()
    await sub.subscribe("/topic/chat", "s1")
    await pub.send("/topic/chat", "hi żółć", receipt="r1", content_type="text/plain", x_custom="hello")
    msg = await sub.expect("MESSAGE")
    assert msg.text == "hi żółć"
    assert msg["destination"] == "/topic/chat"
    assert msg["subscription"] == "s1"
    assert msg["content-type"] == "text/plain"
    assert msg["x-custom"] == "hello"
    assert msg["content-length"] == str(len("hi żółć".encode()))
    assert msg["redelivered"] == "false"
    assert "message-id" in msg.headers and "ack" not in msg.headers
    await sub.disconnect()
    await pub.disconnect()


async def test_connected_headers(harness, transport):
    h = await harness(transport)
    client = await h.client()
    connected = await client.connect("1.0,1.1,1.2", heart_beat="0,0")
    assert connected["version"] == "1.2"
    assert connected["heart-beat"] == "0,0"
    assert connected["session"]
    assert connected["server"].startswith("sockjs-server/")
    await client.disconnect()


async def test_topic_wildcards_and_unsubscribe(harness, transport):
    h = await harness(transport)
    c = await h.connected()
    await c.subscribe("/topic/chat.*", "star")
    await c.subscribe("/topic/news.#", "hash")
    await c.send("/topic/chat.room1", "one")
    m = await c.expect("MESSAGE")
    assert (m["subscription"], m["destination"], m.text) == ("star", "/topic/chat.room1", "one")
    await c.send("/topic/chat.a.b", "no match for chat.*")
    await c.send("/topic/news.eu.pl", "deep")
    m = await c.expect("MESSAGE")
    assert (m["subscription"], m.text) == ("hash", "deep")
    await c.send_frame("UNSUBSCRIBE", {"id": "hash", "receipt": "u"})
    await c.receipt("u")
    await c.send("/topic/news.eu", "nobody", receipt="r")
    await c.no_frame()


async def test_queue_round_robin(harness, transport):
    h = await harness(transport)
    a = await h.connected()
    b = await h.connected()
    pub = await h.connected()
    await a.subscribe("/queue/work", "a")
    await b.subscribe("/queue/work", "b")
    for i in range(4):
        await pub.send("/queue/work", f"job{i}", receipt=f"r{i}")
    got_a = [(await a.expect("MESSAGE")).text for _ in range(2)]
    got_b = [(await b.expect("MESSAGE")).text for _ in range(2)]
    assert got_a == ["job0", "job2"]
    assert got_b == ["job1", "job3"]


async def test_queue_holds_messages_until_a_subscriber_comes(harness, transport):
    h = await harness(transport)
    pub = await h.connected()
    await pub.send("/queue/later", "first", receipt="r1")
    await pub.send("/queue/later", "second", receipt="r2")
    sub = await h.connected()
    await sub.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/later"})
    assert [(await sub.expect("MESSAGE")).text for _ in range(2)] == ["first", "second"]


async def test_nack_redelivers_and_ack_releases(harness, transport):
    h = await harness(transport)
    c = await h.connected()
    await c.subscribe("/queue/jobs", "s", ack="client-individual")
    await c.send("/queue/jobs", "m1", receipt="r1")
    m1 = await c.expect("MESSAGE")
    assert m1["ack"] == m1["message-id"] and m1["redelivered"] == "false"
    await c.send_frame("NACK", {"id": m1["ack"], "receipt": "n"})
    await c.receipt("n")
    again = await c.expect("MESSAGE")
    assert again.text == "m1" and again["redelivered"] == "true"
    await c.send_frame("ACK", {"id": again["ack"], "receipt": "a"})
    await c.receipt("a")
    await c.disconnect()
    # Nothing left to redeliver to a newcomer.
    d = await h.connected()
    await d.subscribe("/queue/jobs", "s2")
    await d.send("/queue/jobs", "fresh", receipt="r")
    assert (await d.expect("MESSAGE")).text == "fresh"


async def test_unacked_messages_go_to_another_subscriber_when_the_first_leaves(harness, transport):
    h = await harness(transport)
    a = await h.connected()
    await a.subscribe("/queue/orders", "a", ack="client")
    pub = await h.connected()
    for i in range(3):
        await pub.send("/queue/orders", f"o{i}", receipt=f"r{i}")
    msgs = [await a.expect("MESSAGE") for _ in range(3)]
    # Cumulative ACK of the first message only ("client" mode).
    await a.send_frame("ACK", {"id": msgs[0]["ack"], "receipt": "a0"})
    await a.receipt("a0")
    await a.disconnect()
    b = await h.connected()
    await b.subscribe("/queue/orders", "b")
    redelivered = [await b.expect("MESSAGE") for _ in range(2)]
    assert [m.text for m in redelivered] == ["o1", "o2"]
    assert all(m["redelivered"] == "true" for m in redelivered)


async def test_cumulative_ack_in_client_mode(harness, transport):
    h = await harness(transport)
    a = await h.connected()
    await a.subscribe("/queue/c", "a", ack="client")
    for i in range(3):
        await a.send("/queue/c", f"m{i}", receipt=f"r{i}")
    msgs = [await a.expect("MESSAGE") for _ in range(3)]
    await a.send_frame("ACK", {"id": msgs[2]["ack"], "receipt": "all"})
    await a.receipt("all")
    await a.send_frame("UNSUBSCRIBE", {"id": "a", "receipt": "u"})
    await a.receipt("u")
    await a.subscribe("/queue/c", "again")
    await a.no_frame()  # all three were acknowledged by the one ACK


async def test_transactions_commit_and_abort(harness, transport):
    h = await harness(transport)
    sub = await h.connected()
    await sub.subscribe("/topic/tx", "t")
    pub = await h.connected()
    await pub.send_frame("BEGIN", {"transaction": "tx1", "receipt": "b1"})
    await pub.receipt("b1")
    # A SEND's receipt in a transaction comes when COMMIT carries it out (as from RabbitMQ).
    await pub.send_frame("SEND", {"destination": "/topic/tx", "transaction": "tx1", "receipt": "s1"}, "in tx")
    await pub.send_frame("SEND", {"destination": "/topic/tx", "transaction": "tx1", "receipt": "s2"}, "in tx 2")
    await sub.no_frame()
    await pub.send_frame("COMMIT", {"transaction": "tx1", "receipt": "c1"})
    await pub.receipt("c1")
    await pub.receipt("s1")
    await pub.receipt("s2")
    assert [(await sub.expect("MESSAGE")).text for _ in range(2)] == ["in tx", "in tx 2"]
    await pub.send_frame("BEGIN", {"transaction": "tx2"})
    await pub.send("/topic/tx", "aborted", transaction="tx2")
    await pub.send_frame("ABORT", {"transaction": "tx2", "receipt": "a2"})
    await pub.receipt("a2")
    await pub.send("/topic/tx", "after", receipt="s3")
    assert (await sub.expect("MESSAGE")).text == "after"


async def test_transactional_ack(harness, transport):
    h = await harness(transport)
    c = await h.connected()
    await c.subscribe("/queue/txack", "s", ack="client-individual")
    await c.send("/queue/txack", "m", receipt="r")
    m = await c.expect("MESSAGE")
    await c.send_frame("BEGIN", {"transaction": "t"})
    await c.send_frame("ACK", {"id": m["ack"], "transaction": "t"})
    await c.send_frame("ABORT", {"transaction": "t", "receipt": "ab"})
    await c.receipt("ab")
    # The ACK was aborted: the message is still unacknowledged and comes back on NACK.
    await c.send_frame("NACK", {"id": m["ack"], "receipt": "n"})
    await c.receipt("n")
    assert (await c.expect("MESSAGE"))["redelivered"] == "true"


async def test_server_heart_beats(harness, transport):
    h = await harness(transport, options=StompOptions(min_heartbeat=0.01))
    c = await h.client()
    connected = await c.connect("1.2", heart_beat="0,20")
    assert connected["heart-beat"] == "20,0"
    for _ in range(int(TIMEOUT * 100)):
        if c.heartbeats >= 3:
            break
        await asyncio.sleep(0.01)
    assert c.heartbeats >= 3
    await c.disconnect()


async def test_silent_client_is_disconnected(harness, transport):
    h = await harness(transport, options=StompOptions(min_heartbeat=0.01))
    c = await h.client()
    connected = await c.connect("1.2", heart_beat="20,0")
    assert connected["heart-beat"] == "0,20"
    error = await c.expect_error("Heart-beat timeout")
    assert "no data from the client" in error.text


async def test_client_heart_beats_keep_it_alive(harness, transport):
    # The client promises data every 30 ms; the server gives up after 10 silent intervals (0.3 s);
    # EOLs every 20 ms for twice that long keep the connection open.
    h = await harness(transport, options=StompOptions(min_heartbeat=0.01, heartbeat_tolerance=10))
    c = await h.client()
    await c.connect("1.2", heart_beat="30,0")
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.6
    while loop.time() < end:
        await c.send_raw(b"\n")
        await asyncio.sleep(0.02)
    await c.send("/topic/x", "still here", receipt="alive")


async def test_error_in_one_frame_keeps_the_connection(harness, transport):
    # As RabbitMQ: ERROR (no receipt-id), and the connection goes on.
    h = await harness(transport)
    c = await h.connected()
    other = await h.connected()
    await other.subscribe("/topic/ok", "o")
    await c.send_frame("SEND", {"receipt": "bad"}, "x")
    error = await c.expect_error("Missing destination", closed=False)
    assert "receipt-id" not in error.headers and error["version"] == "1.0,1.1,1.2"
    assert error.text == "\"SEND\" must include a 'destination' header\n"
    await c.send("/topic/elsewhere", "still connected", receipt="ok")
    # Other connections are untouched.
    await other.send("/topic/ok", "fine", receipt="r")
    assert (await other.expect("MESSAGE")).text == "fine"


async def test_frame_before_connect(harness, transport):
    h = await harness(transport)
    c = await h.client()
    await c.send_frame("SEND", {"destination": "/topic/x"}, "too early")
    await c.expect_error("Illegal command", closed=False)
    await c.connect("1.2")  # RabbitMQ waits for a CONNECT after it


async def test_version_mismatch(harness, transport):
    h = await harness(transport)
    c = await h.client()
    await c.send_frame("CONNECT", {"accept-version": "2.0", "host": "/"})
    error = await c.expect_error("Version mismatch", closed=False)
    assert error["version"] == "1.0,1.1,1.2"


async def test_app_destination_without_handler_keeps_the_connection(harness, transport):
    h = await harness(transport)
    c = await h.connected()
    await c.send_frame("SEND", {"destination": "/app/nothing", "receipt": "r1"}, "x")
    error = await c.expect_error("Unknown destination", closed=False)
    assert error.text == "no handler for /app/nothing"
    await c.send_frame("SUBSCRIBE", {"id": "a", "destination": "/app/nothing", "receipt": "r2"})
    error = await c.expect_error("Unknown destination", closed=False)
    assert error.text == "no subscribe handler for /app/nothing"
    await c.send_frame("SEND", {"destination": "/user/nobody", "receipt": "r3"}, "x")
    await c.expect_error("Unknown destination", closed=False)
    await c.subscribe("/topic/x", "a")  # the id is free: that SUBSCRIBE never happened
    await c.send("/topic/x", "still open", receipt="r4")
    assert (await c.expect("MESSAGE")).text == "still open"


async def test_unknown_destination(harness, transport):
    h = await harness(transport)
    c = await h.connected()
    await c.send_frame("SUBSCRIBE", {"id": "b", "destination": "/foo/bar", "receipt": "r"})
    error = await c.expect_error("Unknown destination", closed=False)
    assert "receipt-id" not in error.headers
    await c.subscribe("/topic/x", "b")  # the id is free: that SUBSCRIBE never happened


async def test_user_destinations(harness, transport):
    stomp = StompServer(authenticate=lambda info: info.login)
    h = await harness(transport, stomp=stomp)
    alice1 = await h.connected(login="alice")
    alice2 = await h.connected("tcp", login="alice")
    bob = await h.connected(login="bob")
    for i, c in enumerate((alice1, alice2, bob)):
        await c.subscribe("/user/queue/inbox", f"in{i}")
    await stomp.send_to_user("alice", "/queue/inbox", {"text": "for alice"})
    for c in (alice1, alice2):
        m = await c.expect("MESSAGE")
        assert m["destination"] == "/user/queue/inbox"
        assert m["content-type"] == "application/json"
        assert m.text == '{"text":"for alice"}'
    # A client addresses another user with /user/<name>/queue/...
    await alice1.send("/user/bob/queue/inbox", "hi bob", receipt="r")
    m = await bob.expect("MESSAGE")
    assert m.text == "hi bob" and m["destination"] == "/user/queue/inbox"
    await alice1.no_frame()
    await alice2.no_frame()


async def test_user_id_cannot_be_forged(harness, transport):
    stomp = StompServer(authenticate=lambda info: info.login)
    h = await harness(transport, stomp=stomp)
    alice = await h.connected(login="alice")
    await alice.subscribe("/topic/t", "t")
    await alice.send("/topic/t", "x", receipt="r", user_id="root", ack="forged", subscription="forged")
    m = await alice.expect("MESSAGE")
    assert m["user-id"] == "alice"
    assert m["subscription"] == "t" and "ack" not in m.headers
    assert [k for k, _ in m.raw_headers].count("user-id") == 1


async def test_app_handlers(harness, transport):
    handlers = AppHandlers()
    seen = []

    @handlers.message("/chat.{room}", send_to="/topic/chat.{room}")
    async def chat(msg):
        seen.append((msg.params["room"], msg.user, msg.connection.transport))
        return {"room": msg.params["room"], "text": msg.text.upper()}

    @handlers.message("/whoami", reply_to="/queue/replies")
    def whoami(msg):
        return f"you are {msg.user}"

    @handlers.subscribe("/rooms/{room}/history")
    async def history(msg):
        return ["old", msg.params["room"]]

    @handlers.message("/boom")
    async def boom(msg):
        raise RuntimeError("kaput")

    @handlers.message("/deny")
    async def deny(msg):
        raise AccessDenied("Not yours", "go away")

    stomp = StompServer(handlers=handlers, authenticate=lambda info: info.login)
    h = await harness(transport, stomp=stomp)
    c = await h.connected(login="carol")
    await c.subscribe("/topic/chat.lobby", "room")
    await c.subscribe("/user/queue/replies", "replies")
    await c.send_frame("SUBSCRIBE", {"id": "hist", "destination": "/app/rooms/lobby/history", "receipt": "h"})
    await c.receipt("h")  # the RECEIPT of a SUBSCRIBE comes before its first MESSAGE
    m = await c.expect("MESSAGE")
    assert (m["subscription"], m["destination"], m.text) == ("hist", "/app/rooms/lobby/history", '["old","lobby"]')
    await c.send("/app/chat.lobby", "hello", receipt="r1")
    m = await c.expect("MESSAGE")
    assert (m["subscription"], m["destination"]) == ("room", "/topic/chat.lobby")
    assert m.text == '{"room":"lobby","text":"HELLO"}'
    assert seen == [("lobby", "carol", transport)]
    await c.send("/app/whoami", "", receipt="r2")
    m = await c.expect("MESSAGE")
    assert (m["subscription"], m.text) == ("replies", "you are carol")
    other = await h.connected(login="dave")
    await other.send_frame("SEND", {"destination": "/app/boom", "receipt": "b"})
    error = await other.expect_error("Handler error")
    assert "kaput" not in error.text
    third = await h.connected(login="erin")
    await third.send_frame("SEND", {"destination": "/app/deny"})
    assert (await third.expect_error("Not yours")).text == "go away"
    await third.close()
    # The first client is unaffected by the others' errors.
    await c.send("/app/chat.lobby", "still", receipt="r3")
    assert (await c.expect("MESSAGE")).text == '{"room":"lobby","text":"STILL"}'


async def test_authentication_refused(harness, transport):
    stomp = StompServer(authenticate=lambda info: info.login if info.passcode == "secret" else None)
    h = await harness(transport, stomp=stomp)
    c = await h.client()
    await c.send_frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": "mallory", "passcode": "guess"})
    await c.expect_error("Bad CONNECT")
    ok = await h.connected(login="alice", passcode="secret")
    await ok.disconnect()


async def test_authorization(harness, transport):
    def authorize(principal, command, destination):
        return not destination.startswith("/topic/admin")

    stomp = StompServer(authorize=authorize)
    h = await harness(transport, stomp=stomp)
    c = await h.connected()
    await c.subscribe("/topic/public", "p")
    await c.send_frame("SUBSCRIBE", {"id": "a", "destination": "/topic/admin.log", "receipt": "r"})
    error = await c.expect_error("Access refused")


async def test_server_publish_and_binary_safe_bodies(harness, transport):
    stomp = StompServer(MemoryBroker())
    h = await harness(transport, stomp=stomp)
    c = await h.connected()
    await c.subscribe("/topic/feed", "f")
    await stomp.publish("/topic/feed", "text\x00with nul", headers={"x-a": "1", "destination": "/forged"})
    m = await c.expect("MESSAGE")
    assert m.body == b"text\x00with nul"
    assert m["destination"] == "/topic/feed" and m["x-a"] == "1"


async def test_escaped_headers_round_trip(harness, transport):
    h = await harness(transport)
    c = await h.connected()
    await c.subscribe("/topic/esc", "e:1")
    await c.send("/topic/esc", "b", receipt="r", x_esc="a:b\nc\\d\re")
    m = await c.expect("MESSAGE")
    assert m["x-esc"] == "a:b\nc\\d\re"
    assert m["subscription"] == "e:1"

