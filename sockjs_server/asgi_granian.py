"""Kept for existing imports: granian serving lives in :mod:`sockjs_server.servers.granian`."""

from __future__ import annotations

from .servers.granian import Server, run, serve

__all__ = ["Server", "run", "serve"]
