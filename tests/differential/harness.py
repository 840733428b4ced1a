"""Differential STOMP harness: one script, three brokers, compared transcripts.

A scenario is a small script (see :mod:`.scenarios`) of frames a client
writes and of things it waits for. It is played against

* ``rabbit``: RabbitMQ's own STOMP listener (the reference),
* ``memory``: our server with the MemoryBroker, over TCP,
* ``relay``: our server relaying to RabbitMQ, over TCP,

each in a throw-away RabbitMQ virtual host, and what every connection
received is normalised (session ids, server name, message and ack ids,
generated queue names, the unique names of the run) into a transcript. Two
targets agree on a scenario when their transcripts are equal.

Servers and clients run on one event loop in a background thread, so the
harness is usable from pytest (plain synchronous tests) and from the
command line (``python -m tests.differential``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from sockjs_server import Options, add_endpoint
from sockjs_server.stomp import MemoryBroker, StompServer, start_tcp_server
from sockjs_server.stomp.relay import RabbitRelay

RABBIT_HOST = os.environ.get("RABBITMQ_STOMP_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("RABBITMQ_STOMP_PORT", "61613"))
#: Seconds to wait for something a script expects (stretch on slow machines).
WAIT = float(os.environ.get("STOMP_DIFF_WAIT", "3"))
#: Seconds of silence after which no more MESSAGEs are expected at the end of a script.
SETTLE = float(os.environ.get("STOMP_DIFF_SETTLE", "0.05"))

TARGETS = ("rabbit", "memory", "relay")
_BROKER_AWAY = re.compile(r"message:Broker (not available|connection lost)")

# --- the script language ------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.]+)\}")
_CHARS = {"sp": " ", "lf": "\n", "cr": "\r", "nul": "\x00", "bs": "\\", "tab": "\t", "lb": "{", "rb": "}", "bar": "|"}


@dataclass(frozen=True)
class Step:
    conn: str
    op: str  # "send", "raw", "login", "wait", "sleep", "split"
    arg: str = ""
    extra: tuple[str, ...] = ()


def parse_script(script: str) -> tuple[Step, ...]:
    """Lines ``c1 <op> ...``; see the module docstring of :mod:`.scenarios`."""
    steps: list[Step] = []
    for raw in script.strip().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("sleep "):
            steps.append(Step("", "sleep", line.split()[1]))
            continue
        conn, _, rest = line.partition(" ")
        rest = rest.strip()
        if conn.endswith("?"):
            steps.append(Step(conn[:-1], "wait", rest))
        elif conn.endswith(">>"):
            steps.append(Step(conn[:-2], "raw", rest))
        elif conn.endswith("~"):
            steps.append(Step(conn[:-1], "split", rest))
        elif conn.endswith(">"):
            steps.append(Step(conn[:-1], "send", rest))
        elif rest.startswith("login"):
            steps.append(Step(conn, "login", rest[5:].strip()))
        else:
            raise ValueError(f"cannot read script line {raw!r}")
    return tuple(steps)


# --- client side -------------------------------------------------------------------------


@dataclass
class Received:
    command: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class _Reader:
    """Frames and heart-beats from raw bytes (independent of the server's codec)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.after_frame = False

    def next(self) -> Received | str | None:
        buf = self.buf
        while buf[:1] in (b"\n", b"\r"):
            if buf[:1] == b"\r":
                if len(buf) < 2:
                    return None
                del buf[:1]
                continue
            del buf[:1]
            if self.after_frame:
                self.after_frame = False  # RabbitMQ ends every frame with NUL + LF
                continue
            return "beat"
        if not buf:
            return None
        head_end = buf.find(b"\n\n")
        if head_end < 0:
            return None
        head = bytes(buf[:head_end]).decode("utf-8", "replace").split("\n")
        headers = [tuple(line.partition(":")[::2]) for line in head[1:]]
        length = None
        for key, value in headers:
            if key == "content-length":
                length = int(value)
                break
        start = head_end + 2
        if length is not None:
            if len(buf) < start + length + 1:
                return None
            body = bytes(buf[start : start + length])
            end = start + length
        else:
            end = buf.find(b"\x00", start)
            if end < 0:
                return None
            body = bytes(buf[start:end])
        del buf[: end + 1]
        self.after_frame = True
        return Received(head[0], [(k, v) for k, v in headers], body)


class _Conn:
    def __init__(self, name: str, reader: asyncio.StreamReader | None, writer: asyncio.StreamWriter | None) -> None:
        self.name = name
        self.reader = reader
        self.writer = writer
        self.parse = _Reader()
        self.closed = False
        self.messages: list[Received] = []
        #: MESSAGEs accounted for by "msg" waits.
        self.counted = 0
        self.events: list[str] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.http: aiohttp.ClientSession | None = None
        self.session_buffer: list[bytes] = []
        #: receipt-id -> (command, subscription) of the frames this client sent.
        self.receipts: dict[str, tuple[str, str | None]] = {}
        self.subscribed = False

    def note_sent(self, data: bytes) -> None:
        """Remember which frame asked for which receipt (see :func:`canonical`)."""
        for chunk in data.split(b"\x00"):
            lines = chunk.decode("utf-8", "replace").replace("\r", "").lstrip("\n").split("\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if not line:
                    break
                key, _, value = line.partition(":")
                headers.setdefault(key, value)
            if lines[0] == "SUBSCRIBE":
                self.subscribed = True
            if "receipt" in headers:
                sub = headers.get("id", headers.get("destination"))
                self.receipts.setdefault(headers["receipt"], (lines[0], sub))

    async def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            if self.ws is not None:
                await self.ws.send_str(json.dumps([data.decode("utf-8", "surrogateescape")]))
                return
            assert self.writer is not None
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass

    async def _read_more(self, timeout: float) -> bool:
        """Read once; False on timeout. Sets ``closed`` on EOF."""
        try:
            if self.ws is not None:
                while True:
                    msg = await asyncio.wait_for(self.ws.receive(), timeout)
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        self.closed = True
                        return True
                    text = msg.data
                    if text == "o" or text == "h":
                        continue
                    if text.startswith("c"):
                        self.closed = True
                        return True
                    for part in json.loads(text[1:]):
                        self.parse.buf += part.encode("utf-8")
                    return True
            assert self.reader is not None
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except asyncio.TimeoutError:
            return False
        except (ConnectionError, aiohttp.ClientError):
            data = b""
        if not data:
            self.closed = True
        self.parse.buf += data
        return True

    async def next(self, deadline: float) -> Received | str | None:
        """The next frame or "beat", "closed", or None at the deadline."""
        loop = asyncio.get_running_loop()
        while True:
            item = self.parse.next()
            if item is not None:
                return item
            if self.closed:
                return "closed"
            left = deadline - loop.time()
            if left <= 0:
                return None
            await self._read_more(left)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


# --- normalisation -------------------------------------------------------------------------


class Normaliser:
    """Makes transcripts of different brokers comparable."""

    def __init__(self, unique: str, vhost: str) -> None:
        self.unique = unique
        self.vhost = vhost
        self.ids: dict[str, str] = {}
        self.gen: dict[str, str] = {}

    def _id(self, value: str) -> str:
        if value not in self.ids:
            self.ids[value] = f"<id{len(self.ids) + 1}>"
        return self.ids[value]

    def text(self, value: str) -> str:
        value = value.replace(self.unique, "U").replace(self.vhost, "VHOST")

        def gen(m: re.Match[str]) -> str:
            if m.group(0) not in self.gen:
                self.gen[m.group(0)] = f"amq.gen-<{len(self.gen) + 1}>"
            return self.gen[m.group(0)]

        value = re.sub(r"amq\.gen-[A-Za-z0-9_\-]+", gen, value)
        # RabbitMQ's delivery tags are ids of its channel, as message ids are.
        return re.sub(r"unknown delivery tag \d+", "unknown delivery tag <tag>", value)

    def frame(self, frame: Received) -> str:
        pairs: list[tuple[str, str]] = []
        for key, value in frame.headers:
            if key == "session":
                value = "<session>"
            elif key == "server":
                value = "<server>"
            elif key in ("message-id", "ack"):
                value = self._id(value)
            elif key == "content-length" and b"unknown delivery tag" in frame.body:
                value = "<length>"  # the tag's digits are normalised away
            else:
                value = self.text(value)
            pairs.append((key, value))
        # Header order carries no meaning (except among repeats of one name).
        pairs.sort(key=lambda kv: kv[0])
        head = " ".join(f"{k}:{v}" for k, v in pairs)
        body = frame.body.decode("utf-8", "backslashreplace")
        out = f"{frame.command} {head}".rstrip()
        if body:
            out += " | " + self.text(body).replace("\n", "\\n").replace("\x00", "\\0")
        return out


# --- running a scenario --------------------------------------------------------------------


@dataclass
class Endpoint:
    host: str
    port: int
    sockjs_url: str | None = None


_SUBSCRIPTION = re.compile(r" subscription:(\S*)")
_RECEIPT_ID = re.compile(r"^RECEIPT receipt-id:(\S*)$")
#: Frames whose RECEIPT RabbitMQ may send before or after MESSAGEs that are
#: already on their way (it confirms and delivers on different processes).
_RACING = frozenset({"SEND", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT"})


def canonical(events: list[str], receipts: dict[str, tuple[str, str | None]]) -> list[str]:
    """One connection's events in an order that does not depend on races.

    RabbitMQ guarantees the order of one subscription's MESSAGEs, and of the
    frames that answer the client (RECEIPT, ERROR) among themselves, but not
    how MESSAGEs of different subscriptions interleave, nor whether the
    RECEIPT of a SEND, ACK, NACK or transaction frame comes before or after
    a MESSAGE already on its way. Two events are *independent* when they may
    swap: MESSAGEs of different subscriptions, and a MESSAGE with a RECEIPT
    of a racing frame (or of the SUBSCRIBE/UNSUBSCRIBE of another
    subscription). Everything else (ERRORs, markers, ``<closed>``, the
    RECEIPT of a MESSAGE's own SUBSCRIBE or UNSUBSCRIBE) keeps its place.
    The result is the lexicographically least ordering of the same trace
    (non-MESSAGE events first, then MESSAGEs by subscription), so two
    transcripts that differ only by such races become equal.
    """

    def sub_of(event: str) -> str | None:
        if not event.startswith("MESSAGE "):
            return None
        m = _SUBSCRIPTION.search(event.partition(" | ")[0])
        return m.group(1) if m else ""

    def independent(a: str, b: str) -> bool:
        sa, sb = sub_of(a), sub_of(b)
        if sa is not None and sb is not None:
            return sa != sb
        if sa is None and sb is None:
            return False
        message_sub, other = (sa, b) if sa is not None else (sb, a)
        m = _RECEIPT_ID.match(other)
        if not m or m.group(1) not in receipts:
            return False
        command, sub = receipts[m.group(1)]
        if command in _RACING:
            return True
        return command in ("SUBSCRIBE", "UNSUBSCRIBE") and sub != message_sub

    def key(event: str) -> tuple[int, str]:
        sub = sub_of(event)
        return (0, "") if sub is None else (1, sub)

    left = list(events)
    out: list[str] = []
    while left:
        # Candidates: events with no earlier event they depend on.
        best = -1
        for j, event in enumerate(left):
            if all(independent(left[i], event) for i in range(j)):
                if best < 0 or key(event) < key(left[best]):
                    best = j
        out.append(left.pop(best))
    return out


_ID = re.compile(r"<id\d+>")


@dataclass
class Result:
    transcript: dict[str, list[str]] = field(default_factory=dict)
    receipts: dict[str, dict[str, tuple[str, str | None]]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The canonical transcript (see :func:`canonical`), ids numbered in order of appearance."""
        out = [
            f"{conn}: {event}"
            for conn, events in sorted(self.transcript.items())
            for event in canonical(events, self.receipts.get(conn, {}))
        ]
        numbers: dict[str, str] = {}

        def renumber(m: re.Match[str]) -> str:
            return numbers.setdefault(m.group(0), f"<id{len(numbers) + 1}>")

        return [_ID.sub(renumber, line) for line in out]

    def raw_lines(self) -> list[str]:
        """The transcript in the order things arrived."""
        return [f"{conn}: {event}" for conn, events in sorted(self.transcript.items()) for event in events]


_ERROR_BODY = re.compile(r"^(\S+: ERROR )(.*?) \| .*$")
_CONTENT_LENGTH = re.compile(r"content-length:\d+ ")


def without_error_bodies(lines: list[str]) -> list[str]:
    """Transcript lines with each ERROR's body (and so its content-length) left out."""
    out = []
    for line in lines:
        m = _ERROR_BODY.match(line)
        out.append(m.group(1) + _CONTENT_LENGTH.sub("", m.group(2)) if m else line)
    return out


def _template(text: str, conn: _Conn, conns: dict[str, _Conn], unique: str, vhost: str) -> str:
    def replace(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in _CHARS:
            return _CHARS[key]
        if key == "u":
            return unique
        if key == "vhost":
            return vhost
        source = conn
        if "." in key:
            other, key = key.split(".", 1)
            source = conns[other]
        kind = key.rstrip("0123456789")
        index = int(key[len(kind) :] or "0") - 1
        if kind in ("ack", "mid", "reply", "dest"):
            try:
                msg = source.messages[index]
            except IndexError:
                return f"<no-message-{index + 1}>"
            header = {"ack": "ack", "mid": "message-id", "reply": "reply-to", "dest": "destination"}[kind]
            return msg.get(header) or f"<no-{header}>"
        raise KeyError(f"unknown placeholder {{{m.group(1)}}}")

    return _PLACEHOLDER.sub(replace, text)


def _frame_bytes(text: str) -> bytes:
    """``COMMAND h:v h:v | body`` -> frame bytes (headers written as given, no escaping)."""
    head, sep, body = text.partition(" | ")
    if not sep and head.endswith(" |"):
        head = head[:-2]
    parts = head.split(" ")
    lines = [parts[0]] + [p for p in parts[1:] if p]
    return ("\n".join(lines) + "\n\n" + body).encode("utf-8", "surrogateescape") + b"\x00"


def _login(version: str, extra: list[str], vhost: str) -> str:
    headers = []
    if version != "1.0":
        headers.append(f"accept-version:{version}")
    headers += [f"host:{vhost}", "login:guest", "passcode:guest"]
    if not any(h.startswith("heart-beat:") for h in extra) and version != "1.0":
        headers.append("heart-beat:0,0")
    return "CONNECT " + " ".join(headers + extra)


async def _open(endpoint: Endpoint, name: str, sockjs: bool) -> _Conn:
    if sockjs and endpoint.sockjs_url is not None:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(f"{endpoint.sockjs_url}/000/{uuid.uuid4().hex[:8]}/websocket")
        conn = _Conn(name, None, None)
        conn.ws, conn.http = ws, http
        return conn
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
            return _Conn(name, reader, writer)
        except ConnectionRefusedError:
            # RabbitMQ is shared: another test may be restarting its listener.
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def run_script(steps: tuple[Step, ...], endpoint: Endpoint, vhost: str, *, sockjs: bool = False) -> Result:
    """Play ``steps`` against ``endpoint``; returns the normalised transcript."""
    loop = asyncio.get_running_loop()
    unique = "d" + uuid.uuid4().hex[:10]
    norm = Normaliser(unique, vhost)
    conns: dict[str, _Conn] = {}
    result = Result()

    async def conn_for(name: str) -> _Conn:
        if name not in conns:
            conns[name] = await _open(endpoint, name, sockjs)
            result.transcript[name] = conns[name].events
            result.receipts[name] = conns[name].receipts
        return conns[name]

    async def record_until(conn: _Conn, done: Any, timeout: float = WAIT, what: str = "") -> None:
        deadline = loop.time() + timeout
        while True:
            item = await conn.next(deadline)
            if item is None:
                if what:
                    conn.events.append(f"<timeout: {what}>")
                return
            if item == "closed":
                if not conn.events or conn.events[-1] != "<closed>":
                    conn.events.append("<closed>")
                return
            if item == "beat":
                if done("beat"):
                    conn.events.append("<heart-beat>")
                    return
                continue
            assert isinstance(item, Received)
            if item.command == "MESSAGE":
                conn.messages.append(item)
            conn.events.append(norm.frame(item))
            if done(item):
                return

    try:
        for step in steps:
            if step.op == "sleep":
                await asyncio.sleep(float(step.arg))
                continue
            conn = await conn_for(step.conn)
            text = _template(step.arg, conn, conns, unique, vhost)
            if step.op == "login":
                version, *extra = text.split(" ") if text else ["1.2"]
                data = _frame_bytes(_login(version, [e for e in extra if e], vhost))
                conn.note_sent(data)
                await conn.write(data)
                await record_until(conn, lambda f: isinstance(f, Received), what="CONNECTED")
            elif step.op == "send":
                data = _frame_bytes(text)
                conn.note_sent(data)
                await conn.write(data)
            elif step.op == "raw":
                data = text.encode("utf-8", "surrogateescape")
                conn.note_sent(data)
                await conn.write(data)
            elif step.op == "split":
                data = _frame_bytes(text)
                conn.note_sent(data)
                for i in range(0, len(data), 3):
                    await conn.write(data[i : i + 3])
                    await asyncio.sleep(0.002)
            elif step.op == "wait":
                await _wait(conn, text, record_until)
            else:  # pragma: no cover
                raise ValueError(step.op)
        # MESSAGEs still on their way (RabbitMQ may send the RECEIPT of a SEND
        # before delivering it) are part of the transcript: wait for silence.
        async def settle(conn: _Conn) -> None:
            while not conn.closed:
                seen = len(conn.events)
                await record_until(conn, lambda f: False, timeout=SETTLE)
                if len(conn.events) == seen:
                    return

        await asyncio.gather(*(settle(c) for c in conns.values() if c.subscribed))
        # The end of every script: is each connection still there?
        for conn in conns.values():
            if conn.closed:
                if not conn.events or conn.events[-1] != "<closed>":
                    await record_until(conn, lambda f: False, timeout=0.05)
                continue
            await conn.write(b"DISCONNECT\nreceipt:bye\n\n\x00")
            await record_until(
                conn,
                lambda f: isinstance(f, Received)
                and (f.command == "ERROR" or (f.command == "RECEIPT" and f.get("receipt-id") == "bye")),
                what="RECEIPT bye",
            )
    finally:
        for conn in conns.values():
            await conn.close()
    return result


async def _wait(conn: _Conn, text: str, record_until: Any) -> None:
    kind, _, arg = text.partition(" ")
    arg = arg.strip()
    if kind == "receipt":
        await record_until(
            conn, lambda f: isinstance(f, Received) and f.command in ("RECEIPT",) and f.get("receipt-id") == arg, what=f"RECEIPT {arg}"
        )
    elif kind == "error":
        await record_until(conn, lambda f: isinstance(f, Received) and f.command == "ERROR", what="ERROR")
    elif kind == "msg":
        # MESSAGEs already recorded by earlier waits (e.g. before a RECEIPT) count too.
        want = conn.counted + int(arg or "1")
        if len(conn.messages) >= want:
            conn.counted = want
            return

        def done(f: Any) -> bool:
            return len(conn.messages) >= want

        await record_until(conn, done, what="MESSAGE")
        conn.counted = min(want, len(conn.messages))
    elif kind == "frame":
        await record_until(conn, lambda f: isinstance(f, Received), what="a frame")
    elif kind == "closed":
        await record_until(conn, lambda f: False, timeout=float(arg or WAIT), what="close")
    elif kind == "beat":
        await record_until(conn, lambda f: f == "beat", timeout=float(arg or WAIT), what="heart-beat")
    elif kind == "quiet":
        await record_until(conn, lambda f: False, timeout=float(arg or "0.3"))
    else:
        raise ValueError(f"unknown wait {text!r}")


# --- the targets ------------------------------------------------------------------------------


def _rabbitmqctl(*args: str, attempts: int = 10) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    for attempt in range(attempts):
        done = subprocess.run([ctl, "-q", *args], capture_output=True, timeout=60)
        if done.returncode == 0:
            return
        # RabbitMQ is shared: another test may be restarting it.
        time.sleep(1 + attempt)
    raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")


class Targets:
    """A throw-away vhost, and our two servers (memory, relay) on a background loop."""

    def __init__(self) -> None:
        self.vhost = f"stomp-diff-{uuid.uuid4().hex[:8]}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stomp-differential", daemon=True)
        self.endpoints: dict[str, Endpoint] = {}
        self._cleanup: list[Any] = []

    def _call(self, coro: Any, timeout: float = 120) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> None:
        _rabbitmqctl("add_vhost", self.vhost)
        _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.thread.start()
        self._call(self._start())

    async def _start(self) -> None:
        self.endpoints["rabbit"] = Endpoint(RABBIT_HOST, RABBIT_PORT)
        for name in ("memory", "relay"):
            broker: Any
            if name == "memory":
                broker = MemoryBroker()
            else:
                broker = RabbitRelay(RABBIT_HOST, RABBIT_PORT, "guest", "guest", self.vhost, heartbeat=0, connect_timeout=5, receipt_timeout=5)
                await broker.start()
            stomp = StompServer(broker=broker)
            server = await start_tcp_server(stomp, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            app = web.Application()
            add_endpoint(app, "/stomp", stomp, options=Options())
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.endpoints[name] = Endpoint("127.0.0.1", port, f"http://127.0.0.1:{http_port}/stomp")
            self._cleanup.append((server, stomp, broker, runner))

    async def _stop(self) -> None:
        for server, stomp, broker, runner in self._cleanup:
            server.close()
            await stomp.close()
            await runner.cleanup()
            await broker.close()

    def stop(self) -> None:
        try:
            if self.thread.is_alive():
                self._call(self._stop())
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)
        finally:
            _rabbitmqctl("delete_vhost", self.vhost)

    def run(self, steps: tuple[Step, ...], target: str, *, sockjs: bool = False) -> Result:
        for attempt in range(3):
            result: Result = self._call(run_script(steps, self.endpoints[target], self.vhost, sockjs=sockjs))
            # RabbitMQ is shared on a developer's machine: another test may be
            # restarting it. The relay says so; play the scenario again.
            if not any(_BROKER_AWAY.search(line) for line in result.raw_lines()):
                break
            time.sleep(2 + attempt * 3)
        return result


@contextmanager
def targets() -> Iterator[Targets]:
    t = Targets()
    try:
        t.start()
        yield t
    finally:
        t.stop()
