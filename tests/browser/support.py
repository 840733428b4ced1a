"""Helpers for the real-browser tests: server processes, ports, Chromium flags."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo"
NODE_MODULES = DEMO_DIR / "node_modules"
PAGES_DIR = Path(__file__).resolve().parent / "pages"
ARTIFACTS = Path(os.environ.get("SOCKJS_ARTIFACTS", REPO / "artifacts"))

CHROMIUM = os.environ.get("SOCKJS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Every transport a modern browser can be forced onto, in sockjs-client's own names.
TRANSPORTS = [
    "websocket",
    "xhr-streaming",
    "eventsource",
    "iframe-eventsource",
    "htmlfile",
    "iframe-htmlfile",
    "xhr-polling",
    "iframe-xhr-polling",
    "jsonp-polling",
]

# sockjs-client enables these only when the page and the server share an origin
# (lib/transport/htmlfile.js: `HtmlfileReceiver.enabled && info.sameOrigin`);
# across origins their iframe- variants take over.
SAME_ORIGIN_ONLY = {"htmlfile"}


def missing_requirements() -> list[str]:
    """What this machine lacks to run the browser tests (empty when ready)."""
    missing = []
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing.append(f"chromium ({CHROMIUM})")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if not (NODE_MODULES / "sockjs-client" / "dist" / "sockjs.min.js").exists():
        missing.append("demo/node_modules (npm ci --prefix demo)")
    return missing


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


class ServerProcess:
    """A server run as a child process, its output kept in a log file under artifacts/."""

    def __init__(self, name: str, argv: Sequence[str], host: str, port: int, env: dict[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.env = env
        self.log_path = ARTIFACTS / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        # The checkout's package, whatever is installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        log.close()
        try:
            wait_for_port(self.host, self.port, self.process)
        except BaseException:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; its output:\n{self.output()}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"


def eventsource_percent_unescaped(host: str, port: int, prefix: str = "/echo") -> bool:
    """Whether the server sends "%" raw in eventsource frames.

    sockjs-client's eventsource receiver runs ``decodeURI`` on every event
    (lib/transport/receiver/eventsource.js), so servers must send "%" as
    "%25" (sockjs-node escapes "%", "\\r", "\\n" and NUL there): a raw "%"
    makes the frame undecodable and its messages are lost.
    """
    session = "probe" + os.urandom(4).hex()
    with socket.create_connection((host, port), timeout=5) as stream:
        stream.sendall(f"GET {prefix}/000/{session}/eventsource HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        received = b""
        while b"data: o" not in received:
            chunk = stream.recv(4096)
            if not chunk:
                raise RuntimeError(f"eventsource probe: stream ended: {received!r}")
            received += chunk
        body = b'["50%"]'
        with socket.create_connection((host, port), timeout=5) as send:
            send.sendall(
                f"POST {prefix}/000/{session}/xhr_send HTTP/1.0\r\nHost: {host}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            )
            send.recv(4096)
        while b"data: a" not in received:
            chunk = stream.recv(4096)
            if not chunk:
                break
            received += chunk
    return b'data: a["50%"]' in received


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
