"""Running an application from the command line: ``web.run_app``, optionally on uvloop.

Its own module so that every server command (the CLI, the conformance test
server, the STOMP server) can use it without importing each other.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from aiohttp import web

__all__ = ["serve"]


def _print_flush(line: str) -> None:
    print(line, flush=True)


def serve(app: web.Application, args: argparse.Namespace, *, announce: Callable[[str], None] = _print_flush) -> None:
    """``web.run_app`` on ``--host``/``--port``, on uvloop when ``--uvloop`` is given."""
    loop = None
    if getattr(args, "uvloop", False):
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise SystemExit("--uvloop needs uvloop: pip install 'sockjs-server[uvloop]'") from None
        loop = uvloop.new_event_loop()
    web.run_app(app, host=args.host, port=args.port, print=announce, loop=loop)
