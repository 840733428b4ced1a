"""The real @stomp/stompjs, under Node with ``ws``, against the raw ``/websocket``.

The Node packages are pinned in tests/node (installed by ``.ci/install-node-clients``);
without node or them the test is skipped, except under CI (CI=true) where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sockjs_client import UNIT
from sockjs_server import add_endpoint
from sockjs_server.stomp import StompOptions, StompServer

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "stomp_raw_websocket.mjs"
#: Heart-beat period asked by both sides, in seconds.
HEARTBEAT = 5 * UNIT


def node_or_skip() -> str:
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("node")
    if not (NODE_DIR / "node_modules" / "@stomp" / "stompjs").is_dir() or not (NODE_DIR / "node_modules" / "ws").is_dir():
        missing.append("tests/node/node_modules")
    if missing:
        message = "the Node client test needs " + ", ".join(missing) + " (run .ci/install-node-clients)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


async def run_node(node: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), *args, cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60 + 40 * HEARTBEAT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    events = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]
    return proc.returncode or 0, events, stderr.decode()


@pytest.mark.parametrize("mode", ["text", "binary"])
async def test_stompjs_under_node_over_the_raw_websocket(aiohttp_server: Any, mode: str) -> None:
    node = node_or_skip()
    period = round(HEARTBEAT * 1000)
    stomp = StompServer(options=StompOptions(min_heartbeat=HEARTBEAT))
    opened: list[str] = []
    stomp.on_connect = lambda info: opened.append(info.transport)
    app = web.Application()
    add_endpoint(app, "/stomp", stomp)
    server = await aiohttp_server(app)
    url = str(server.make_url("/stomp/websocket")).replace("http://", "ws://")
    destination = f"/topic/node-{uuid.uuid4().hex[:8]}"

    code, events, stderr = await run_node(node, url, destination, mode, str(period))
    assert code == 0, (events, stderr)
    kinds = [e["event"] for e in events]
    assert kinds == [
        "connected",
        "receipt",
        "receipt",
        "message",
        "receipt",
        "message",
        "heartbeats",
        "disconnected",
        "websocket-closed",
        "done",
    ], events

    connected = events[0]
    # ws aborts a handshake that selects no subprotocol when it offered some: v12.stomp was selected.
    assert connected["protocol"] == "v12.stomp"
    assert connected["version"] == "1.2"
    send_ms, receive_ms = (int(v) for v in connected["heartBeat"].split(","))
    assert send_ms >= period and receive_ms >= period
    assert opened == ["websocket-raw"]

    assert [e["id"] for e in events if e["event"] == "receipt"] == ["sub-receipt", "text-receipt", "binary-receipt"]
    text, binary = (e for e in events if e["event"] == "message")
    assert text == {"event": "message", "kind": "text", "body": "héllo ☃ from node", "contentLength": "20"}
    assert binary == {
        "event": "message",
        "kind": "binary",
        "length": 300,
        "intact": True,
        "contentType": "application/octet-stream",
    }
    heartbeats = events[6]
    assert heartbeats["received"] >= 2 and heartbeats["sent"] >= 2
    assert events[7] == {"event": "disconnected", "receipt": "RECEIPT"}
    assert events[8] == {"event": "websocket-closed", "code": 1000}
    for _ in range(100):
        if not stomp.connections:
            break
        await asyncio.sleep(UNIT)
    assert stomp.connections == []
