"""End to end: a STOMP client over TCP and over real SockJS sessions."""

from __future__ import annotations

import pytest
from conftest import ALL_TRANSPORTS

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
    assert "message-id" in msg.headers and "ack" not in msg.headers
    await sub.disconnect()
    await pub.disconnect()
