"""The user registry without I/O: two or three nodes wired by hand, messages passed in any order."""

from __future__ import annotations

import json

from sockjs_server.stomp.registry import SNAPSHOT_PART, PresenceEvent, Registry


def deliver(source: Registry, *targets: Registry, now: float = 0.0) -> list[PresenceEvent]:
    """Carry ``source``'s outgoing messages to ``targets``; returns their events."""
    events: list[PresenceEvent] = []
    for body in source.take_outgoing():
        for target in targets:
            events += target.receive(body, now)
    return events


def test_a_snapshot_and_live_changes_merge_exactly() -> None:
    a, b = Registry("a"), Registry("b")
    a.connect("s1", "ann", 1.0)
    a.subscribe("s1", "/topic/x")
    early = a.take_outgoing()  # changes b never sees as live messages
    for body in early:
        assert b.receive(body, 0.0) == []  # before a's snapshot: ignored
    b.hello()
    deliver(b, a)  # a answers the hello with its snapshot
    snapshot = a.take_outgoing()
    a.connect("s2", "bob", 2.0)  # a live change after the snapshot
    live = a.take_outgoing()
    events = [e for body in snapshot + live + early + live for e in b.receive(body, 0.0)]  # duplicates too
    assert [(e.kind, e.user, e.destination) for e in events] == [
        ("connected", "ann", None),
        ("subscribed", "ann", "/topic/x"),
        ("connected", "bob", None),
    ]
    assert b.users() == ["ann", "bob"] and b.subscribers("/topic/x") == ["ann"]
    assert b.nodes() == ["a", "b"] and a.leader and not b.leader


def test_a_user_with_several_sessions_is_counted_once() -> None:
    a, b = Registry("a"), Registry("b")
    a.hello()
    b.hello()
    deliver(a, b)
    deliver(b, a)
    a.take_outgoing()
    b.take_outgoing()
    first = a.connect("s1", "ann", 1.0) + a.subscribe("s1", "/topic/x")
    deliver(a, b)
    second = b.connect("s2", "ann", 2.0) + b.subscribe("s2", "/topic/x")
    assert [e.joined for e in first] == [True, True] and [e.joined for e in second] == [False, False]
    assert deliver(b, a)[-1].sessions == 2
    gone = a.disconnect("s1")
    assert [(e.kind, e.reason, e.left) for e in gone] == [("unsubscribed", "disconnect", False), ("disconnected", "disconnect", False)]
    assert a.users() == ["ann"]
    assert [e.left for e in deliver(a, b)] == [False, False]  # b still has ann's other session
    last = b.disconnect("s2")
    assert all(e.left for e in last)


def test_a_gap_asks_for_a_new_snapshot() -> None:
    a, b = Registry("a"), Registry("b")
    a.hello()
    deliver(a, b)
    b.take_outgoing()  # b's own snapshot, answering
    a.connect("s1", "ann", 1.0)
    a.connect("s2", "bob", 1.0)
    lost, kept = a.take_outgoing()
    assert b.receive(kept, 0.0) == []  # seq 2 while b has 0: a gap
    (ask,) = b.take_outgoing()
    assert json.loads(ask) == {"op": "sync", "node": "b", "seq": 0, "target": "a"}
    assert a.receive(ask, 0.0) == []
    events = deliver(a, b)
    assert sorted(e.user for e in events) == ["ann", "bob"]


def test_a_dead_node_takes_its_sessions_by_event_or_by_silence() -> None:
    a, b, c = Registry("a"), Registry("b", heartbeat=1.0), Registry("c")
    for node in (a, c):
        node.hello()
        deliver(node, b)
        b.take_outgoing()
    a.connect("s1", "ann", 1.0)
    c.connect("s2", "cid", 1.0)
    deliver(a, b)
    deliver(c, b)
    gone = b.node_gone("a")
    assert [(e.kind, e.user, e.reason) for e in gone] == [("disconnected", "ann", "node_lost")]
    c.beat()
    deliver(c, b, now=2.0)
    assert b.expire(3.0) == []  # c was heard at 2.0
    expired = b.expire(5.1)
    assert [(e.user, e.reason) for e in expired] == [("cid", "node_lost")]
    assert b.users() == [] and b.nodes() == ["b"] and b.leader


def test_large_snapshots_come_in_parts_and_junk_is_ignored() -> None:
    a, b = Registry("a"), Registry("b")
    for n in range(SNAPSHOT_PART * 2 + 1):
        a.connect(f"s{n}", f"u{n}", 1.0, {"k": "v"})
    a.take_outgoing()
    a.hello()
    parts = a.take_outgoing()
    assert len(parts) == 3
    events = [e for body in parts for e in b.receive(body, 0.0)]
    assert len(events) == SNAPSHOT_PART * 2 + 1 and len(b.users()) == SNAPSHOT_PART * 2 + 1
    assert b.sessions("u7")[0].attributes == {"k": "v"}
    for junk in (b"", b"[]", b"{", b'{"node": "a", "seq": "x"}', b'{"node": "a", "seq": 999, "op": "join"}'):
        assert b.receive(junk, 0.0) == []
