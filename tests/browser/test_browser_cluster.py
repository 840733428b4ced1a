"""The chat demo on two nodes relaying to one RabbitMQ, in Chromium: one chat, one set of members.

ann's page is served by node 1, bob's by node 2; carol comes through HAProxy
with ``balance roundrobin`` (no stickiness) over the websocket transport.
Needs RabbitMQ (127.0.0.1:61613, guest/guest) and haproxy: ``.ci/install-rabbitmq``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .support import ServerProcess, free_port, python, wait_for_port
from .test_browser_chat import ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq]

ROUND_ROBIN = """
defaults
    mode http
    option http-server-close
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 120s

frontend chat
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    server node1 127.0.0.1:{node1}
    server node2 127.0.0.1:{node2}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Two demo nodes of one new cluster and HAProxy in front: (node 1, node 2, balancer) origins."""
    try:
        socket.create_connection(("127.0.0.1", 61613), timeout=2).close()
    except OSError:
        pytest.fail("RabbitMQ's STOMP port 127.0.0.1:61613 is not reachable: run .ci/install-rabbitmq", pytrace=False)
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed: run .ci/install-rabbitmq", pytrace=False)
    relay = f"stomp://guest:guest@127.0.0.1:61613/?cluster=browser-{uuid.uuid4().hex[:10]}&registry_heartbeat=1"
    ports = [free_port(), free_port()]
    nodes = [
        ServerProcess(f"demo-node{n}", python("-m", "sockjs_server", "demo", "--host", "127.0.0.1", "--port", str(port), "--relay", relay), "127.0.0.1", port)
        for n, port in enumerate(ports, 1)
    ]
    balancer_port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(ROUND_ROBIN.format(port=balancer_port, node1=ports[0], node2=ports[1]))
    with nodes[0], nodes[1]:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port("127.0.0.1", balancer_port, process)
            yield nodes[0].origin, nodes[1].origin, f"http://127.0.0.1:{balancer_port}"
        finally:
            process.terminate()
            process.wait(10)


def test_one_chat_across_two_nodes(browser: Any, cluster: tuple[str, str, str]) -> None:
    node1, node2, balancer = cluster
    pages: list[ChatPage] = []
    try:
        ann = ChatPage(browser, node1, "ann", room="cluster", transport="websocket")
        pages.append(ann)
        ann.connected()
        bob = ChatPage(browser, node2, "bob", room="cluster", transport="xhr-streaming")
        pages.append(bob)
        bob.connected()
        carol = ChatPage(browser, balancer, "carol", room="cluster", transport="websocket")
        pages.append(carol)
        carol.connected()
        for page in (ann, bob, carol):
            page.sees_members("ann", "bob", "carol")
        ann.say("hello from node 1")
        bob.sees_message("ann", "hello from node 1")
        carol.sees_message("ann", "hello from node 1")
        # A private message to someone on the other node.
        ann.page.click("#member-list li[data-member='bob'] button")
        ann.say("psst, bob")
        dm = bob.page.locator("#dm-list li[data-peer='ann']")
        expect(dm.locator(".badge")).to_have_text("1")
        dm.locator("button").click()
        bob.sees_message("ann", "psst, bob")
        # "Other rooms" counts the members of every node.
        dave = ChatPage(browser, node2, "dave", room="side", transport="websocket")
        pages.append(dave)
        dave.connected()
        expect(ann.page.locator("#directory-list li[data-room='side'] .count")).to_have_text("1")
        # The nickname is taken on the other node too.
        impostor = ChatPage(browser, node2, "ann", room="cluster", transport="websocket")
        pages.append(impostor)
        expect(impostor.page.locator("body", has_text="already in use")).to_have_count(1)
        errors = [f"{p.nick}: {e}" for p in pages for e in p.errors]
        assert not errors, errors
    finally:
        for page in pages:
            page.close()
