"""The third-party client stomp-py against the TCP listener."""

from __future__ import annotations

import asyncio
import threading

import pytest
from stomp_testing import TIMEOUT, harness  # noqa: F401

stomp = pytest.importorskip("stomp")

from sockjs_server.stomp import StompServer  # noqa: E402


class Listener(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.messages: list = []
        self.receipts: list[str] = []
        self.errors: list = []
        self.changed = threading.Condition()

    def _add(self, bucket: list, item: object) -> None:
        with self.changed:
            bucket.append(item)
            self.changed.notify_all()

    def on_message(self, frame) -> None:
        self._add(self.messages, frame)

    def on_receipt(self, frame) -> None:
        self._add(self.receipts, frame.headers["receipt-id"])

    def on_error(self, frame) -> None:
        self._add(self.errors, frame)

    def wait(self, predicate) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, TIMEOUT), "timed out"


def session(port: int, received: list[str]) -> None:
    """Runs in a thread: the whole conversation with blocking stomp-py calls."""
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(login="svc", passcode="pw", wait=True)
    conn.subscribe("/queue/interop", id="q", ack="client-individual", headers={"receipt": "sub"})
    listener.wait(lambda: "sub" in listener.receipts)
    conn.send("/queue/interop", "hello from stomp-py", headers={"receipt": "sent", "x-trace": "42"})
    listener.wait(lambda: "sent" in listener.receipts and listener.messages)
    message = listener.messages[0]
    received.append(message.body)
    received.append(message.headers["x-trace"])
    received.append(message.headers["user-id"])
    conn.ack(message.headers["ack"], receipt="acked")
    listener.wait(lambda: "acked" in listener.receipts)
    conn.disconnect(receipt="bye")
    assert not listener.errors, listener.errors


async def test_stomp_py_client(harness):
    server = StompServer(authenticate=lambda info: info.login if info.passcode == "pw" else None)
    h = await harness("tcp", stomp=server)
    watcher = await h.connected(login="watcher", passcode="pw")
    await watcher.subscribe("/topic/audit", "a")
    received: list[str] = []
    await asyncio.to_thread(session, h.port, received)
    assert received == ["hello from stomp-py", "42", "svc"]
    for _ in range(int(TIMEOUT * 100)):  # the server notices the disconnect
        if len(server.connections) == 1:
            break
        await asyncio.sleep(0.01)
    assert [c.principal.name for c in server.connections] == ["watcher"]
