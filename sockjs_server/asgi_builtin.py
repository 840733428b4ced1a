"""Kept for existing imports: the built-in server lives in :mod:`sockjs_server.servers.builtin`."""

from __future__ import annotations

from .servers.builtin import Limits, Server, run, serve

__all__ = ["Limits", "Server", "run", "serve"]
