"""SockJS endpoints as ASGI 3 applications, for Starlette, FastAPI, uvicorn, granian and
the built-in server: :class:`SockJSApp` (one endpoint) and :class:`SockJSRouter` (several)."""

from __future__ import annotations

from .app import SockJSApp, SockJSRouter

__all__ = ["SockJSApp", "SockJSRouter"]
