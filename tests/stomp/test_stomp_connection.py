"""Sans-I/O connection state: synchronous, bytes in, events and bytes out."""

from __future__ import annotations

import pytest
from stomp_testing import ClientParser, encode_frame

from sockjs_server.stomp.connection import (
    AbortRequest,
    AckRequest,
    BeginRequest,
    Buffered,
    CommitRequest,
    ConnectRequest,
    DisconnectRequest,
    SendRequest,
    State,
    StompConnection,
    StompOptions,
    SubscribeRequest,
    UnsubscribeRequest,
)
from sockjs_server.stomp.errors import ProtocolError, StompError
from sockjs_server.stomp.frames import AckMode, Version


def feed(conn: StompConnection, command: str, headers=(), body=b"", now: float = 0.0):
    conn.receive_data(encode_frame(command, headers, body, escape_headers=command != "CONNECT"), now)
    return conn.next_event()


def out(conn: StompConnection):
    return ClientParser().feed(conn.data_to_send())


def connected(version: str | None = "1.2", options: StompOptions | None = None, heart_beat: str = "0,0") -> StompConnection:
    conn = StompConnection(options)
    headers = {"host": "/", "heart-beat": heart_beat}
    if version:
        headers["accept-version"] = version
    event = feed(conn, "CONNECT", headers)
    assert isinstance(event, ConnectRequest)
    conn.accept("sess-1", 0.0)
    [frame] = out(conn)
    assert frame.command == "CONNECTED"
    return conn


def fail_with(conn: StompConnection, command: str, headers=(), body=b"", *, closed: bool = False):
    """The frame is refused with ERROR; the connection goes on unless ``closed`` (as RabbitMQ's)."""
    state = conn.state
    with pytest.raises(StompError) as info:
        feed(conn, command, headers, body)
    conn.fail(info.value, 0.0)
    frames = out(conn)
    frame = frames[0]
    assert frame.command == "ERROR"
    assert frame["version"] == "1.0,1.1,1.2" and frame["content-type"] == "text/plain"
    assert "receipt-id" not in frame.headers  # RabbitMQ's ERROR frames carry none
    if closed:
        assert conn.state is State.CLOSED
    else:
        assert conn.state is (State.AWAITING_CONNECT if state is State.AWAITING_CONNECT else state)
    return frame


@pytest.mark.parametrize(
    "accept,expected",
    [(None, "1.0"), ("1.0", "1.0"), ("1.1", "1.1"), ("1.0,1.1,1.2", "1.2"), ("1.2,2.0", "1.2"), ("1.1, 1.0", "1.1")],
)
def test_version_negotiation(accept, expected):
    conn = StompConnection()
    headers = {"host": "/"}
    if accept is not None:
        headers["accept-version"] = accept
    event = feed(conn, "STOMP" if accept else "CONNECT", headers)
    assert isinstance(event, ConnectRequest) and event.version.value == expected
    assert conn.state is State.AUTHENTICATING
    conn.accept("s", 0.0)
    [frame] = out(conn)
    assert frame["version"] == expected and frame["session"] == "s"
    assert frame["heart-beat"] == "0,0"  # in every version, as RabbitMQ


def test_version_mismatch_lists_supported():
    conn = StompConnection()
    frame = fail_with(conn, "CONNECT", {"accept-version": "2.0,3.0"})
    assert frame["message"] == "Version mismatch"
    assert frame["version"] == "1.0,1.1,1.2"
    assert frame.text == "Supported versions are 1.0,1.1,1.2\n"
    # Another CONNECT may follow on the same connection.
    assert isinstance(feed(conn, "CONNECT", {"accept-version": "1.2"}), ConnectRequest)


def test_only_connect_first():
    frame = fail_with(StompConnection(), "SUBSCRIBE", {"destination": "/topic/a", "id": "1", "receipt": "r"})
    assert frame["message"] == "Illegal command" and frame.text == "You must log in using CONNECT first"


@pytest.mark.parametrize(
    "client,minimum,expected,send,receive",
    [
        ("0,0", 1.0, "0,0", 0, 0),
        ("1000,500", 1.0, "1000,1000", 1, 1),
        ("30000,40000", 1.0, "40000,30000", 40, 30),
        ("2500,1999", 1.0, "1000,2000", 1, 2),
        ("0,20", 0.01, "20,0", 0.02, 0),
        ("5000,0", 10.0, "0,10000", 0, 10),
    ],
)
def test_heartbeat_negotiation(client, minimum, expected, send, receive):
    # The client's rates, rounded down to a multiple of min_heartbeat and never below it.
    conn = StompConnection(StompOptions(min_heartbeat=minimum))
    feed(conn, "CONNECT", {"accept-version": "1.2", "heart-beat": client})
    conn.accept("s", 0.0)
    [frame] = out(conn)
    assert frame["heart-beat"] == expected
    assert (conn.heartbeat.send, conn.heartbeat.receive) == (send, receive)


def test_bad_heartbeat_header():
    frame = fail_with(StompConnection(), "CONNECT", {"accept-version": "1.2", "heart-beat": "x,y"})
    assert frame["message"] == "Processing error"


def test_heartbeat_deadlines_from_now():
    conn = StompConnection(StompOptions(heartbeat_tolerance=3.0))
    feed(conn, "CONNECT", {"accept-version": "1.2", "heart-beat": "2000,2000"})
    conn.accept("s", 0.0)
    out(conn)
    assert conn.next_deadline() == 1.0  # our EOL is due at half the interval
    conn.on_timer(1.0)
    assert conn.data_to_send() == b"\n"
    assert conn.next_deadline() == 2.0
    conn.receive_data(b"\n", 5.0)  # client data pushes its deadline to 5 + 3 * 2
    conn.on_timer(5.5)
    assert conn.data_to_send() == b"\n"
    conn.on_timer(10.9)
    assert conn.state is State.CONNECTED
    conn.on_timer(11.0)
    assert conn.state is State.CLOSED
    frames = out(conn)
    assert frames[-1].command == "ERROR" and frames[-1]["message"] == "Heart-beat timeout"


def test_connect_timeout():
    conn = StompConnection(StompOptions(connect_timeout=5.0), now=100.0)
    assert conn.next_deadline() == 105.0
    conn.on_timer(104.0)
    assert conn.state is State.AWAITING_CONNECT
    conn.on_timer(105.0)
    [frame] = out(conn)
    assert frame["message"] == "Connect timeout"


def test_connect_frame_size_limit_then_larger_after():
    opts = StompOptions(max_connect_frame_size=100, max_frame_size=1000)
    conn = StompConnection(opts)
    conn.receive_data(b"CONNECT\nx:" + b"a" * 200 + b"\n\n\x00", 0.0)
    with pytest.raises(ProtocolError, match="too large"):
        conn.next_event()
    conn = connected(options=opts)
    event = feed(conn, "SEND", {"destination": "/q/a"}, b"b" * 500)
    assert isinstance(event, SendRequest) and len(event.body) == 500


def test_send_strips_server_set_headers():
    conn = connected()
    event = feed(
        conn,
        "SEND",
        [("destination", "/topic/a"), ("user-id", "root"), ("ack", "x"), ("x-a", "1"), ("x-a", "2"), ("receipt", "r"), ("content-type", "text/plain")],
        b"hi",
    )
    assert isinstance(event, SendRequest)
    # The receipt travels with the message, as RabbitMQ shows it.
    assert event.headers == (("x-a", "1"), ("receipt", "r"), ("content-type", "text/plain"))
    assert event.receipt == "r"


@pytest.mark.parametrize(
    "command,headers,message,body",
    [
        ("SEND", {}, "Missing destination", "\"SEND\" must include a 'destination' header\n"),
        ("SEND", {"destination": "/q/a", "message-id": "m"}, "Invalid header", "'message-id' is not allowed on 'SEND'.\n"),
        ("SUBSCRIBE", {"id": "1"}, "Missing destination", "\"SUBSCRIBE\" must include a 'destination' header\n"),
        ("SUBSCRIBE", {"destination": "/topic/a", "id": "1", "ack": "sometimes"}, "Processing error", "Processing error"),
        ("UNSUBSCRIBE", {}, "Missing destination or id", "UNSUBSCRIBE must include a 'destination' or 'id' header"),
        (
            "UNSUBSCRIBE",
            {"id": "nope"},
            "No subscription found",
            "UNSUBSCRIBE must refer to an existing subscription.\nSubscription to \"id='nope'\" not found.\n",
        ),
        ("ACK", {}, "Missing header", '"ACK" must include the "id" header\n'),
        ("NACK", {"message-id": "1"}, "Missing header", '"NACK" must include the "id" header\n'),
        ("BEGIN", {}, "Missing transaction", "\"BEGIN\" must include a 'transaction' header\n"),
        ("COMMIT", {"transaction": "t"}, "Bad transaction", 'Invalid transaction identifier: "t"\n'),
        ("ABORT", {"transaction": "t"}, "Bad transaction", 'Invalid transaction identifier: "t"\n'),
        ("SEND", {"destination": "/q/a", "transaction": "t"}, "Bad transaction", 'Invalid transaction identifier: "t"\n'),
        ("MESSAGE", {}, "Bad command", 'Could not interpret command "MESSAGE"\n'),
    ],
)
def test_bad_frames_1_2(command, headers, message, body):
    # RabbitMQ's texts; the connection goes on after each.
    headers = dict(headers, receipt="rr")
    frame = fail_with(connected(), command, headers)
    assert frame["message"] == message
    assert frame.text == body


def test_second_connect_closes_without_error():
    conn = connected()
    with pytest.raises(StompError) as info:
        feed(conn, "CONNECT", {"accept-version": "1.2"})
    conn.fail(info.value, 0.0)
    assert out(conn) == [] and conn.state is State.CLOSED


def test_ack_rules_per_version():
    event = feed(connected("1.2"), "ACK", {"id": "a1"})
    assert isinstance(event, AckRequest) and (event.ack_id, event.subscription) == ("a1", None)
    event = feed(connected("1.1"), "NACK", {"message-id": "m1", "subscription": "s", "requeue": "false"})
    assert isinstance(event, AckRequest) and (event.ack_id, event.subscription, event.nack, event.requeue) == ("m1", "s", True, False)
    # 1.1 without subscription, and NACK in 1.0: accepted, as by RabbitMQ.
    event = feed(connected("1.1"), "ACK", {"message-id": "m1"})
    assert isinstance(event, AckRequest) and event.subscription is None
    event = feed(connected(None), "ACK", {"message-id": "m1"})
    assert isinstance(event, AckRequest) and event.ack_id == "m1"
    event = feed(connected(None), "NACK", {"message-id": "m1"})
    assert isinstance(event, AckRequest) and event.nack
    assert fail_with(connected("1.1"), "ACK", {"id": "m1"})["message"] == "Missing header"


@pytest.mark.parametrize("value,requeue", [("false", False), ("False", False), ("FALSE", True), ("true", True), ("no", True), ("", True)])
def test_nack_requeue_spellings(value, requeue):
    event = feed(connected("1.2"), "NACK", {"id": "a1", "requeue": value})
    assert isinstance(event, AckRequest) and event.requeue is requeue


def test_subscriptions_table():
    conn = connected()
    event = feed(conn, "SUBSCRIBE", {"destination": "/queue/a", "id": "s1", "ack": "client", "prefetch-count": "5"})
    assert isinstance(event, SubscribeRequest)
    assert event.subscription.ack is AckMode.CLIENT and event.headers == {"prefetch-count": "5"}
    frame = fail_with(conn, "SUBSCRIBE", {"destination": "/queue/b", "id": "s1"}, closed=True)
    assert frame["message"] == "Duplicated subscription identifier"
    assert frame.text == "A subscription identified by 'T_s1' already exists."
    conn = connected()
    feed(conn, "SUBSCRIBE", {"destination": "/queue/a", "id": "s1"})
    event = feed(conn, "UNSUBSCRIBE", {"id": "s1"})
    assert isinstance(event, UnsubscribeRequest) and event.subscription.key == "s1"
    assert conn.subscriptions == {}


def test_stomp_1_0_subscriptions_without_id():
    conn = connected(None)
    event = feed(conn, "SUBSCRIBE", {"destination": "/topic/a"})
    assert isinstance(event, SubscribeRequest)
    assert event.subscription.key == "/topic/a" and event.subscription.client_id is None
    event = feed(conn, "UNSUBSCRIBE", {"destination": "/topic/a"})
    assert isinstance(event, UnsubscribeRequest)


def test_subscription_limit():
    conn = connected(options=StompOptions(max_subscriptions=2))
    feed(conn, "SUBSCRIBE", {"destination": "/topic/a", "id": "1"})
    feed(conn, "SUBSCRIBE", {"destination": "/topic/a", "id": "2"})
    assert fail_with(conn, "SUBSCRIBE", {"destination": "/topic/a", "id": "3"}, closed=True)["message"] == "Too many subscriptions"


def test_transactions_are_buffered_until_commit():
    conn = connected()
    assert isinstance(feed(conn, "BEGIN", {"transaction": "t"}), BeginRequest)
    buffered = feed(conn, "SEND", {"destination": "/q/a", "transaction": "t", "receipt": "r"}, b"1")
    assert isinstance(buffered, Buffered) and buffered.receipt is None  # confirmed at COMMIT
    acked = feed(conn, "ACK", {"id": "x", "transaction": "t", "receipt": "ra"})
    assert isinstance(acked, Buffered) and acked.receipt == "ra"  # confirmed at once, as by RabbitMQ
    commit = feed(conn, "COMMIT", {"transaction": "t"})
    assert isinstance(commit, CommitRequest)
    assert [type(op) for op in commit.operations] == [SendRequest, AckRequest]
    assert commit.operations[0].body == b"1" and commit.operations[0].receipt == "r"
    feed(conn, "BEGIN", {"transaction": "t"})  # the name is free again
    feed(conn, "SEND", {"destination": "/q/a", "transaction": "t"}, b"2")
    assert isinstance(feed(conn, "ABORT", {"transaction": "t"}), AbortRequest)
    assert fail_with(conn, "COMMIT", {"transaction": "t"})["message"] == "Bad transaction"


def test_transaction_limits():
    conn = connected(options=StompOptions(max_transactions=1))
    feed(conn, "BEGIN", {"transaction": "a"})
    assert fail_with(conn, "BEGIN", {"transaction": "b"}, closed=True)["message"] == "Too many transactions"
    conn = connected(options=StompOptions(max_transaction_frames=2))
    feed(conn, "BEGIN", {"transaction": "a"})
    feed(conn, "SEND", {"destination": "/q/a", "transaction": "a"})
    feed(conn, "SEND", {"destination": "/q/a", "transaction": "a"})
    assert fail_with(conn, "SEND", {"destination": "/q/a", "transaction": "a"}, closed=True)["message"] == "Transaction too large"
    conn = connected(options=StompOptions(max_transaction_bytes=10))
    feed(conn, "BEGIN", {"transaction": "a"})
    feed(conn, "SEND", {"destination": "/q/a", "transaction": "a"}, b"x" * 10)
    assert fail_with(conn, "SEND", {"destination": "/q/a", "transaction": "a"}, b"y", closed=True)["message"] == "Transaction too large"
    conn = connected()
    feed(conn, "BEGIN", {"transaction": "a"})
    assert isinstance(feed(conn, "BEGIN", {"transaction": "a"}), BeginRequest)  # RabbitMQ starts it afresh


def test_disconnect_then_nothing_more_is_read():
    conn = connected()
    feed(conn, "BEGIN", {"transaction": "a"})
    event = feed(conn, "DISCONNECT", {"receipt": "bye"})
    assert isinstance(event, DisconnectRequest) and conn.state is State.DISCONNECTING
    conn.receipt("bye", 0.0)
    [frame] = out(conn)
    assert frame["receipt-id"] == "bye"
    conn.receive_data(b"SEND\ndestination:/q/a\n\n\x00", 0.0)
    assert conn.next_event() is None


def test_several_frames_in_one_chunk_become_events_in_order():
    conn = connected()
    conn.receive_data(
        encode_frame("SUBSCRIBE", {"destination": "/topic/a", "id": "1"}) + b"\n" + encode_frame("SEND", {"destination": "/topic/a"}, "x"),
        0.0,
    )
    assert isinstance(conn.next_event(), SubscribeRequest)
    assert isinstance(conn.next_event(), SendRequest)
    assert conn.next_event() is None


def test_frames_pipelined_after_connect_use_the_negotiated_escaping():
    conn = StompConnection()
    conn.receive_data(
        encode_frame("CONNECT", {"accept-version": "1.2"}, escape_headers=False)
        + encode_frame("SEND", {"destination": "/q/a:b"}),
        0.0,
    )
    assert isinstance(conn.next_event(), ConnectRequest)
    assert conn.next_event() is None  # waits for accept()
    conn.accept("s", 0.0)
    event = conn.next_event()
    assert isinstance(event, SendRequest) and event.destination == "/q/a:b"
    assert conn.version is Version.V1_2


def test_options_validation():
    with pytest.raises(ValueError):
        StompOptions(max_frame_size=0)
    with pytest.raises(ValueError):
        StompOptions(min_heartbeat=0.0)
    with pytest.raises(ValueError):
        StompOptions(heartbeat_tolerance=0.5)
    with pytest.raises(ValueError):
        StompOptions(max_pending_bytes=1000, max_frame_size=2000)
