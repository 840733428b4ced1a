"""Metrics: the counters, stats() and the Prometheus endpoint, scraped while every
SockJS transport and STOMP (over SockJS and TCP, in-memory broker and relay) is in use."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sockjs_client import (
    GUARD,
    UNIT,
    AppServer,
    RawHTTP,
    Serve,
    Served,
    SockJSClient,
    bounded,
    closing,
    echo,
    new_id,
    raw_ws_handshake,
)

from sockjs_server import Options, Session, add_endpoint
from sockjs_server.metrics import SockJSCollector, add_metrics_route, stats
from sockjs_server.stomp import MemoryBroker, StompServer
from sockjs_server.stomp.relay import relay_from_url
from sockjs_server.stomp.tcp import start_tcp_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

SOCKJS_TRANSPORTS = ("websocket", "websocket-raw", "xhr-streaming", "xhr-polling", "eventsource", "htmlfile", "jsonp-polling")


async def scrape(http: TestClient, path: str = "/metrics") -> Samples:
    response = await http.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def sends_too_much(session: Session) -> None:
    """Queues more than the session may hold for a client that is not polling."""
    await asyncio.sleep(UNIT)
    for _ in range(20):
        session.send_nowait("x" * 100)
    await session.wait_closed()


class Raw:
    """A STOMP client over the endpoint's raw websocket or a TCP stream (frames as bytes)."""

    def __init__(self, send: Any, receive: Any) -> None:
        self.send = send
        self.receive = receive
        self.buffer = b""

    async def frame(self) -> bytes:
        while b"\0" not in self.buffer:
            data = await bounded(self.receive())
            assert data, "connection closed"
            self.buffer += data
        frame, _, self.buffer = self.buffer.partition(b"\0")
        return frame.lstrip(b"\r\n")


@pytest.fixture
async def served(aiohttp_client: Any) -> AsyncIterator[tuple[TestClient, StompServer, Any]]:
    app = web.Application()
    long = Options(disconnect_delay=30 * GUARD, heartbeat_delay=30 * GUARD)
    add_endpoint(app, "/echo", echo, options=long)
    add_endpoint(app, "/slow", sends_too_much, options=Options(max_queue_bytes=500, disconnect_delay=30 * GUARD))
    stomp = StompServer(broker=MemoryBroker())
    add_endpoint(app, "/stomp", stomp, options=long)
    # A relay whose broker is not there: its state and reconnections are figures too.
    relay = relay_from_url(f"stomp://guest:guest@127.0.0.1:{free_port()}/?reconnect_delay=0.05&max_reconnect_delay=0.1")
    add_endpoint(app, "/relay", StompServer(broker=relay), options=long)
    add_metrics_route(app, "/metrics")
    http = await aiohttp_client(AppServer(app))
    tcp = await start_tcp_server(stomp, "127.0.0.1", 0)
    await relay.start()
    yield http, stomp, tcp
    tcp.close()
    await stomp.close()
    await relay.close()


async def open_every_transport(client: SockJSClient) -> list[Any]:
    """One echo session per SockJS transport, each echoing "hi" once; returns what to close."""
    held: list[Any] = []
    ws = await client.websocket(new_id())
    assert (await ws.frame()).kind == "o"
    await ws.send("hi")
    assert (await ws.next_non_heartbeat()).messages == ("hi",)
    held.append(ws)
    raw = await client.raw_websocket()
    await raw.send_str("hi")
    assert (await bounded(raw.receive())).data == "hi"
    held.append(raw)
    for transport in ("xhr_streaming", "eventsource", "htmlfile"):
        sid = new_id()
        stream = await client.stream(sid, transport)
        await stream.prelude()
        assert (await stream.frame()).kind == "o"
        assert (await client.xhr_send(sid, "hi")).status == 204
        assert (await stream.next_non_heartbeat()).messages == ("hi",)
        held.append(stream)
    sid = new_id()
    assert (await client.xhr_frame(sid)).kind == "o"
    assert (await client.xhr_send(sid, "hi")).status == 204
    assert (await client.xhr_frame(sid)).messages == ("hi",)
    sid = new_id()
    assert (await client.jsonp_frame(sid)).kind == "o"
    assert (await client.jsonp_send(sid, "hi")).status == 200
    assert (await client.jsonp_frame(sid)).messages == ("hi",)
    return held


async def test_scrape_during_every_transport_and_stomp(served: tuple[TestClient, StompServer, Any]) -> None:
    http, stomp, tcp = served
    held = await open_every_transport(SockJSClient(http, "/echo"))
    # Errors by status: an unknown session, a wrong method.
    assert (await SockJSClient(http, "/echo").xhr_send("nobody", "x")).status == 404
    assert (await http.put("/echo/info")).status == 405

    # STOMP over the raw websocket: subscriptions, a topic message, a waiting queue message.
    ws = await bounded(http.ws_connect("/stomp/websocket", protocols=("v12.stomp",)))
    client = Raw(lambda data: ws.send_bytes(data), lambda: _ws_data(ws))
    await client.send(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    assert (await client.frame()).startswith(b"CONNECTED")
    await client.send(b"SUBSCRIBE\nid:1\ndestination:/topic/news\n\n\0")
    await client.send(b"SUBSCRIBE\nid:2\ndestination:/queue/work\nack:client\n\n\0")
    await client.send(b"SEND\ndestination:/queue/nobody\nreceipt:r0\n\nwaiting\0")
    assert (await client.frame()).startswith(b"RECEIPT")
    await client.send(b"SEND\ndestination:/topic/news\n\nhello\0")
    assert (await client.frame()).startswith(b"MESSAGE")
    # STOMP over TCP: a client that gets an ERROR.
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp.sockets[0].getsockname()[1])
    writer.write(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0SUBSCRIBE\nid:9\n\n\0")
    tcp_client = Raw(writer.write, lambda: reader.read(65536))
    assert (await tcp_client.frame()).startswith(b"CONNECTED")
    error = await tcp_client.frame()
    assert error.startswith(b"ERROR") and b"message:Missing destination" in error
    writer.close()
    # A session closed for not reading (3001).
    slow = SockJSClient(http, "/slow")
    sid = new_id()
    assert (await slow.xhr_frame(sid)).kind == "o"
    await asyncio.sleep(5 * UNIT)
    assert (await slow.xhr_frame(sid)).kind == "c"

    samples = await scrape(http)
    e = {"endpoint": "/echo"}
    for transport in SOCKJS_TRANSPORTS:
        assert value(samples, "sockjs_sessions_open", transport=transport, **e) == 1, transport
        assert value(samples, "sockjs_sessions_opened_total", transport=transport, **e) == 1, transport
    assert value(samples, "sockjs_messages_in_total", **e) == len(SOCKJS_TRANSPORTS)
    assert value(samples, "sockjs_messages_out_total", **e) == len(SOCKJS_TRANSPORTS)
    assert value(samples, "sockjs_in_bytes_total", **e) >= 6 * len('["hi"]') + len("hi")
    # JSON-encoded on the SockJS transports, as it is on the raw websocket.
    assert value(samples, "sockjs_out_bytes_total", **e) == 6 * len('"hi"') + len("hi")
    assert value(samples, "sockjs_request_errors_total", status="404", **e) == 1
    assert value(samples, "sockjs_request_errors_total", status="405", **e) == 1
    assert ("sockjs_queued_bytes", frozenset(e.items())) in samples
    slow_labels = {"endpoint": "/slow"}
    assert value(samples, "sockjs_slow_consumer_closes_total", limit="max_queue", **slow_labels) == 1
    assert value(samples, "sockjs_slow_consumer_closes_total", limit="send_timeout", **slow_labels) == 0
    assert value(samples, "sockjs_sessions_closed_total", code="3001", **slow_labels) == 1
    assert 0 < value(samples, "sockjs_queued_bytes_high_water", **slow_labels) <= 500
    s = {"endpoint": "/stomp"}
    assert value(samples, "sockjs_sessions_open", transport="websocket-raw", **s) == 1
    assert value(samples, "sockjs_stomp_connections", transport="websocket-raw", **s) == 1
    assert value(samples, "sockjs_stomp_connections_opened_total", **s) == 2
    assert value(samples, "sockjs_stomp_subscriptions", **s) == 2
    assert value(samples, "sockjs_stomp_frames_in_total", command="CONNECT", **s) == 2
    assert value(samples, "sockjs_stomp_frames_in_total", command="SUBSCRIBE", **s) == 2
    assert value(samples, "sockjs_stomp_frames_in_total", command="SEND", **s) == 2
    assert value(samples, "sockjs_stomp_messages_out_total", **s) == 1
    assert value(samples, "sockjs_stomp_errors_total", message="Missing destination", **s) == 1
    assert value(samples, "sockjs_stomp_broker_queue_depth", queue="nobody", **s) == 1
    r = {"endpoint": "/relay"}
    assert value(samples, "sockjs_stomp_broker_state", state="unavailable", **r) == 1
    assert value(samples, "sockjs_stomp_broker_state", state="available", **r) == 0
    assert ("sockjs_stomp_broker_reconnections_total", frozenset(r.items())) in samples
    assert ("process_resident_memory_bytes", frozenset()) in samples  # prometheus_client's own collectors

    # The same figures as plain data.
    figures = stats(http.app)  # type: ignore[arg-type]
    assert figures["/echo"]["sessions_open"] == {t: 1 for t in SOCKJS_TRANSPORTS}
    assert figures["/stomp"]["stomp"]["subscriptions"] == 2
    assert figures["/stomp"]["stomp"]["broker"]["queues"] == {"nobody": 1, "work": 0}
    assert figures["/relay"]["stomp"]["broker"]["state"] == "unavailable"
    json.dumps(figures)  # plain data

    # Closing: the websocket sessions end with the client's close code.
    for item in held:
        closed = item.close()
        if closed is not None:
            await closed
    await ws.close()
    for _ in range(int(GUARD / UNIT)):
        samples = await scrape(http)
        if value(samples, "sockjs_sessions_open", transport="websocket", **e) == 0 and value(
            samples, "sockjs_sessions_open", transport="websocket-raw", **e
        ) == 0:
            break
        await asyncio.sleep(UNIT)
    assert value(samples, "sockjs_sessions_open", transport="websocket", **e) == 0
    assert sum(v for (name, labels), v in samples.items() if name == "sockjs_sessions_closed_total" and ("endpoint", "/echo") in labels) >= 2
    assert value(samples, "sockjs_stomp_connections", transport="websocket-raw", **s) == 0


async def _ws_data(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    msg = await ws.receive()
    if msg.type is aiohttp.WSMsgType.TEXT:
        return str(msg.data).encode()
    if msg.type is aiohttp.WSMsgType.BINARY:
        return bytes(msg.data)
    return b""


def test_stats_need_no_prometheus_client() -> None:
    """Without the extra: stats() works, add_metrics_route says how to get it."""
    code = """
import sys
sys.modules["prometheus_client"] = None  # as if not installed
from aiohttp import web
from sockjs_server import add_endpoint
from sockjs_server.metrics import SockJSCollector, add_metrics_route, stats
from sockjs_server.cli.testserver import echo
app = web.Application()
add_endpoint(app, "/echo", echo)
assert stats(app)["/echo"]["messages_in"] == 0
try:
    add_metrics_route(app, "/metrics")
except ImportError as exc:
    print(exc)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "bash .ci/venv metrics" in result.stdout


# -- slow consumers: both kinds of 3001 close, counted by the limit reached (every layer) ---------


def slow_consumer_figures(served: Served) -> tuple[int, dict[str, int], dict[str, float]]:
    """The endpoint's slow-consumer closes: in total and by limit from stats(), by limit from Prometheus."""
    from prometheus_client import CollectorRegistry

    figures = served.endpoint.stats()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SockJSCollector([served.endpoint]))
    prometheus = {
        limit: registry.get_sample_value(
            "sockjs_slow_consumer_closes_total", {"endpoint": served.endpoint.prefix, "limit": limit}
        )
        or 0.0
        for limit in ("max_queue", "send_timeout")
    }
    return figures["slow_consumer_closes"], figures["slow_consumer_closes_by_limit"], prometheus


async def test_a_send_queue_overflow_counts_as_a_slow_consumer_close(serve: Serve) -> None:
    """max_queue_messages reached while the polling client is away: 3001 "Send queue overflow"."""
    polled = asyncio.Event()
    overflowed = asyncio.Event()

    async def overflow(session: Session) -> None:
        await polled.wait()  # no poll pending now: the messages stay queued
        for _ in range(6):
            session.send_nowait("x")
        overflowed.set()
        await session.wait_closed()

    served = await serve(overflow, max_queue_messages=5)
    session_id = new_id()
    assert (await served.client.xhr_frame(session_id)).kind == "o"
    polled.set()
    await bounded(overflowed.wait())
    assert await served.client.xhr_frame(session_id) == closing(3001, "Send queue overflow")
    assert slow_consumer_figures(served) == (1, {"max_queue": 1, "send_timeout": 0}, {"max_queue": 1, "send_timeout": 0})


async def test_a_send_timeout_counts_as_a_slow_consumer_close(serve: Serve) -> None:
    """A websocket client that stops reading takes nothing for send_timeout: 3001 "Slow consumer"."""
    done: asyncio.Future[Session] = asyncio.get_running_loop().create_future()

    async def flood(session: Session) -> None:
        while not session.closed:
            await session.send("f" * 10_000)  # waits at the high-water mark: never overflows
        done.set_result(session)

    served = await serve(flood, send_timeout=5 * UNIT)
    async with await RawHTTP.connect(served.host, served.port) as conn:
        conn.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert (await raw_ws_handshake(conn, served.client.url(new_id(), "websocket"))).status == 101
        conn.writer.transport.pause_reading()  # type: ignore[attr-defined]
        session = await bounded(done)
    assert (session.close_code, session.close_reason) == (3001, "Slow consumer")
    assert slow_consumer_figures(served) == (1, {"max_queue": 0, "send_timeout": 1}, {"max_queue": 0, "send_timeout": 1})


def test_error_messages_are_bounded() -> None:
    from sockjs_server.runtime.stats import MAX_ERROR_MESSAGES
    from sockjs_server.stomp.stats import StompCounters

    counters = StompCounters()
    for n in range(MAX_ERROR_MESSAGES + 50):
        counters.error(f"message {n}")
    assert len(counters.errors) == MAX_ERROR_MESSAGES + 1
    assert counters.errors["(other)"] == 50


# -- the ASGI layer ---------------------------------------------------------------------------


async def test_asgi_metrics_app_in_starlette(aiohttp_client: Any) -> None:
    """MetricsApp mounted beside SockJSApps in Starlette, scraped while a session runs."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    from asgi_server import UvicornServer
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from sockjs_server.asgi import SockJSApp
    from sockjs_server.metrics import MetricsApp

    chat = SockJSApp(echo, prefix="/chat")
    app = Starlette(routes=[Mount("/chat", chat), Mount("/metrics", MetricsApp([chat]))], lifespan=chat.lifespan)
    http = await aiohttp_client(UvicornServer(app))
    client = SockJSClient(http, "/chat")
    session_id = new_id()
    await client.xhr_frame(session_id)
    assert (await client.xhr_send(session_id, "hello")).status == 204
    await client.xhr_frame(session_id)
    samples = await scrape(http, "/metrics")
    assert value(samples, "sockjs_sessions_open", endpoint="/chat", transport="xhr-polling") == 1
    assert value(samples, "sockjs_messages_in_total", endpoint="/chat") == 1
    assert value(samples, "sockjs_messages_out_total", endpoint="/chat") == 1
    assert stats([chat])["/chat"]["messages_in"] == 1
    assert (await http.post("/metrics")).status == 405


async def test_asgi_metrics_app_as_router_fallback(aiohttp_client: Any) -> None:
    pytest.importorskip("uvicorn")
    from asgi_server import UvicornServer

    from sockjs_server.asgi import SockJSApp, SockJSRouter
    from sockjs_server.metrics import MetricsApp

    echo_app = SockJSApp(echo, prefix="/echo")
    router = SockJSRouter({"/echo": echo_app}, fallback=MetricsApp([echo_app], path="/metrics"))
    http = await aiohttp_client(UvicornServer(router))
    client = SockJSClient(http, "/echo")
    await client.xhr_frame(new_id())
    samples = await scrape(http)
    assert value(samples, "sockjs_sessions_opened_total", endpoint="/echo", transport="xhr-polling") == 1
    assert (await http.get("/other")).status == 404
    assert (await http.get("/echo")).status == 200  # still the endpoint's greeting
