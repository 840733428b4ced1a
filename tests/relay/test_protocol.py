"""The sans-I/O broker connection: bytes in, events and bytes out, time as an argument.

The broker's side is written out by hand, as RabbitMQ sends it (NUL then LF
after every frame; see RabbitMQ's transcripts).
"""

from __future__ import annotations

import pytest

from sockjs_server.stomp.frames import Command
from sockjs_server.stomp.relay import relay_from_url
from sockjs_server.stomp.relay.protocol import (
    BrokerFailure,
    Connected,
    Delivery,
    Receipt,
    UpstreamProtocol,
    UpstreamState,
    parse_heartbeat,
)

CONNECTED = b"CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-abc\nheart-beat:10000,10000\nversion:1.2\n\n\x00\n"


def connected(**kwargs: object) -> UpstreamProtocol:
    proto = UpstreamProtocol(login="guest", passcode="guest", virtual_host="/", **kwargs)  # type: ignore[arg-type]
    proto.connect(now=0.0)
    proto.data_to_send()
    proto.receive_data(CONNECTED, now=0.0)
    event = proto.next_event()
    assert isinstance(event, Connected)
    return proto


def events(proto: UpstreamProtocol, data: bytes, now: float = 1.0) -> list[object]:
    proto.receive_data(data, now)
    out = []
    while (event := proto.next_event()) is not None:
        out.append(event)
    return out


def test_connect_frame_carries_the_relay_credentials_and_heartbeats() -> None:
    proto = UpstreamProtocol(login="relay", passcode="s3cret", virtual_host="chat", heartbeat=(10.0, 5.0))
    proto.connect(now=0.0)
    assert proto.data_to_send() == (
        b"CONNECT\naccept-version:1.2\nhost:chat\nlogin:relay\npasscode:s3cret\nheart-beat:10000,5000\n\n\x00"
    )
    assert proto.state is UpstreamState.CONNECTING


def test_connected_negotiates_heartbeats() -> None:
    proto = UpstreamProtocol(login=None, passcode=None, virtual_host=None, heartbeat=(10.0, 5.0))
    proto.connect(now=0.0)
    proto.receive_data(b"CONNECTED\nsession:s\nheart-beat:1000,20000\nversion:1.2\n\n\x00\n", now=0.0)
    event = proto.next_event()
    # "heart-beats every MAX(<cx>,<sy>)": we send every max(10000, 20000), expect every max(1000, 5000).
    assert event == Connected("s", None, (20.0, 5.0))
    assert proto.state is UpstreamState.CONNECTED


def test_frames_after_connected() -> None:
    proto = connected()
    proto.send(Command.SEND, [("destination", "/topic/a"), ("receipt", "r1")], b"x", now=1.0)
    assert proto.data_to_send() == b"SEND\ndestination:/topic/a\nreceipt:r1\ncontent-length:1\n\nx\x00"
    got = events(
        proto,
        b"MESSAGE\nsubscription:s\ndestination:/topic/a\nmessage-id:T_s@@session-abc@@1\nx-esc:a\\cb\n"
        b"content-length:1\n\nx\x00\nRECEIPT\nreceipt-id:r1\n\n\x00\n",
    )
    assert len(got) == 2
    delivery, receipt = got
    assert isinstance(delivery, Delivery)
    assert delivery.frame.get("x-esc") == "a:b"  # 1.2 unescaping
    assert receipt == Receipt("r1")


def test_error_ends_the_connection_and_a_later_receipt_confirms_nothing() -> None:
    proto = connected()
    # RabbitMQ's answer to SUBSCRIBE /exchange/no-such-exchange/x with receipt:r
    got = events(
        proto,
        b"ERROR\nmessage:not_found\ncontent-type:text/plain\nversion:1.0,1.1,1.2\ncontent-length:55\n\n"
        b"NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'\x00\nRECEIPT\nreceipt-id:r\n\n\x00\n",
    )
    assert len(got) == 1
    failure = got[0]
    assert isinstance(failure, BrokerFailure) and failure.from_broker
    assert failure.error.message == "not_found"
    assert "no-such-exchange" in failure.error.detail
    assert proto.state is UpstreamState.CLOSED
    assert events(proto, b"RECEIPT\nreceipt-id:r2\n\n\x00\n") == []
    with pytest.raises(Exception, match="Broker not available"):
        proto.send(Command.SEND, [("destination", "/topic/a")], now=2.0)


def test_refused_login_is_a_failure_before_connected() -> None:
    proto = UpstreamProtocol(login="guest", passcode="wrong", virtual_host="/")
    proto.connect(now=0.0)
    got = events(proto, b"ERROR\nmessage:Bad CONNECT\ncontent-length:32\n\nAccess refused for user 'guest'\n\x00\n")
    assert isinstance(got[0], BrokerFailure)
    assert got[0].error.message == "Bad CONNECT"


def test_garbage_from_the_broker_is_a_failure() -> None:
    proto = connected()
    got = events(proto, b"BOGUS\n\n\x00")
    assert isinstance(got[0], BrokerFailure) and not got[0].from_broker
    assert got[0].error.message == "Broker protocol error"


def test_heartbeats_are_sent_when_idle_and_silence_is_failure() -> None:
    proto = connected(heartbeat=(10.0, 10.0), heartbeat_tolerance=3.0)
    assert (proto.send_interval, proto.receive_interval) == (10.0, 10.0)
    assert proto.next_deadline() == 10.0
    assert proto.on_timer(9.9) is None and proto.data_to_send() == b""
    assert proto.on_timer(10.0) is None
    assert proto.data_to_send() == b"\n"
    proto.receive_data(b"\n", now=15.0)  # the broker's heart-beat
    assert proto.next_deadline() == 20.0
    assert proto.on_timer(44.9) is None
    proto.data_to_send()
    failure = proto.on_timer(45.0)
    assert isinstance(failure, BrokerFailure)
    assert failure.error.message == "Broker heart-beat timeout"


def test_parse_heartbeat() -> None:
    assert parse_heartbeat("0,1000") == (0, 1000)
    assert parse_heartbeat(None) == (0, 0)
    assert parse_heartbeat("x,y") == (0, 0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("stomp://guest:guest@127.0.0.1:61613/", ("127.0.0.1", 61613, "guest", "guest", "/")),
        ("stomp://relay:p%40ss@rabbit.internal/chat", ("rabbit.internal", 61613, "relay", "p@ss", "chat")),
        ("stomp://127.0.0.1:61614", ("127.0.0.1", 61614, "guest", "guest", "/")),
        ("stomp://u:p@h:1/%2F", ("h", 1, "u", "p", "/")),
    ],
)
def test_relay_from_url(url: str, expected: tuple[object, ...]) -> None:
    relay = relay_from_url(url)
    assert (relay.host, relay.port, relay.login, relay.passcode, relay.virtual_host) == expected


def test_relay_from_url_options() -> None:
    relay = relay_from_url("stomp://h/?heartbeat=5&reconnect_delay=0.5&share_topics=false", receipt_timeout=3.0)
    assert (relay.heartbeat, relay.reconnect_delay, relay.share_topics, relay.receipt_timeout) == (5.0, 0.5, False, 3.0)
    for bad in ("http://h/", "stomp:///", "stomp://h/?nope=1", "stomp://h/?heartbeat=x", "stomp://h:99999/"):
        with pytest.raises(ValueError):
            relay_from_url(bad)


def test_relay_url_with_several_addresses() -> None:
    relay = relay_from_url("stomp://guest:guest@rabbit1:61613,rabbit2:61623,rabbit3/chat")
    assert relay.addresses == [("rabbit1", 61613), ("rabbit2", 61623), ("rabbit3", 61613)]
    assert (relay.host, relay.port, relay.virtual_host) == ("rabbit1", 61613, "chat")
    tls = relay_from_url("stomps://relay@[::1]:61700,rabbit2/")
    assert tls.addresses == [("::1", 61700), ("rabbit2", 61614)] and tls.ssl is not None
    assert (tls.login, tls.passcode) == ("relay", "")
    for bad in ("stomp://h1,/", "stomp://h1,h2:0/", "stomp://h1:x,h2/", "stomp://[::1]x/"):
        with pytest.raises(ValueError):
            relay_from_url(bad)
