"""Kept for existing imports: uvicorn serving lives in :mod:`sockjs_server.servers.uvicorn`."""

from __future__ import annotations

from .servers.uvicorn import Server, config, serve

__all__ = ["Server", "config", "serve"]
