"""The built-in HTTP/1.1 and websocket server for ASGI apps (``--server builtin``):
sans-I/O request parsing (:mod:`.h1`) and websocket framing (:mod:`.wsframes`), and the
asyncio server on them (:mod:`.server`)."""

from __future__ import annotations

from .server import Limits, Server, run, serve

__all__ = ["Limits", "Server", "run", "serve"]
