"""Running an application from the command line: options every server command shares,
logging, the metrics URL, where the endpoints are, and one-line errors.

Its own module so that every server command (the CLI, the conformance test
server, the STOMP server, the demo) can use it without importing each other.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger

from ..aiohttp.routes import ENDPOINTS
from ..core.extras import install_hint
from ..servers.listening import CommandError, listen_error, listening_socket

__all__ = [
    "CommandError",
    "CommandParser",
    "JsonFormatter",
    "add_run_arguments",
    "port_number",
    "run_command",
    "serve",
    "setup_logging",
]

SESSION_LOGGER = "sockjs_server.sessions"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (problem and ``--help``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def run_command(run: Callable[[argparse.Namespace], None], args: argparse.Namespace, prog: str) -> None:
    """``run(args)``, turning a :class:`CommandError` into one line on stderr and exit status 2."""
    try:
        run(args)
    except CommandError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {value}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Logging, access log, metrics and event loop options of every server subcommand."""
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info", help="log level (default info)"
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log lines as text or one JSON object each (default text)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (same as --log-level debug)")
    parser.add_argument(
        "--no-session-log", action="store_true", help="no INFO line per SockJS session opened and closed"
    )
    parser.add_argument(
        "--access-log",
        choices=("no-sessions", "all", "off"),
        default="no-sessions",
        help="HTTP access log: every request but the SockJS session URLs (polling, streaming, "
        "sending, websocket; default), all requests, or none",
    )
    parser.add_argument(
        "--metrics-path",
        default=None,
        metavar="PATH",
        help="serve Prometheus metrics at this URL path, e.g. /metrics (the metrics extra: bash .ci/venv metrics); default: off",
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (the uvloop extra: bash .ci/venv uvloop)")


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: time (UTC), level, logger, message[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from ``--log-level``, ``--log-format``, ``-v`` and ``--no-session-log``."""
    level_name = "debug" if getattr(args, "verbose", False) else getattr(args, "log_level", "info")
    handler = logging.StreamHandler()
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level_name.upper()), handlers=[handler], force=True)
    if getattr(args, "no_session_log", False):
        logging.getLogger(SESSION_LOGGER).setLevel(logging.WARNING)


_SESSION_URL = re.compile(r"/[^/.]+/[^/.]+/(?:xhr|xhr_send|xhr_streaming|eventsource|htmlfile|jsonp|jsonp_send|websocket)$")


class SessionQuietAccessLogger(AccessLogger):
    """aiohttp's access log without the SockJS session URLs (one line per poll would flood it)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if _SESSION_URL.search(request.path):
            return
        super().log(request, response, time)


def _access_log(args: argparse.Namespace) -> tuple[logging.Logger | None, type[AbstractAccessLogger]]:
    choice = getattr(args, "access_log", "no-sessions")
    logger = logging.getLogger("aiohttp.access")
    if choice == "off":
        return None, AccessLogger
    if choice == "all":
        return logger, AccessLogger
    return logger, SessionQuietAccessLogger


def _endpoint_lines(app: web.Application, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    lines = []
    for endpoint in app.get(ENDPOINTS, ()):
        label = labels.get(endpoint.prefix)
        if label is None:
            label = "STOMP over SockJS" if type(endpoint.handler).__name__ == "StompServer" else "SockJS endpoint"
        lines.append((label, endpoint.prefix or "/"))
    return lines


def _print_flush(line: str) -> None:
    print(line, flush=True)


def serve(
    app: web.Application,
    args: argparse.Namespace,
    *,
    announce: Callable[[str], None] = _print_flush,
    labels: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> None:
    """``web.run_app`` on ``--host``/``--port`` with the shared options applied.

    Once listening it prints where each endpoint is ("SockJS echo at
    http://127.0.0.1:8080/echo"; ``labels`` maps prefixes to names, ``extra``
    adds lines, where ``{base}`` stands for the server's URL). A port in use or an unknown host raises :class:`CommandError`.
    """
    metrics_path = getattr(args, "metrics_path", None)
    if metrics_path:
        if not metrics_path.startswith("/"):
            raise CommandError(f"--metrics-path must be a URL path starting with '/', e.g. /metrics, not {metrics_path!r}")
        try:
            from ..metrics import add_metrics_route

            add_metrics_route(app, metrics_path)
        except ImportError:
            raise CommandError(f"--metrics-path needs prometheus_client: {install_hint('metrics')}") from None
    loop = None
    if getattr(args, "uvloop", False):
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise CommandError(f"--uvloop needs uvloop: {install_hint('uvloop')}") from None
        loop = uvloop.new_event_loop()
    endpoints = _endpoint_lines(app, labels or {})

    def print_where(line: str) -> None:
        match = re.match(r"======== Running on (\S+) ========", line)
        if match is None:
            announce(line)
            return
        base = match.group(1).rstrip("/")  # the bound address (the real port when --port 0)
        for label, path in endpoints:
            announce(f"{label} at {base}{path}")
        for text in extra:
            announce(text.replace("{base}", base))
        if metrics_path:
            announce(f"Prometheus metrics at {base}{metrics_path}")
        announce("(Ctrl+C to stop)")

    access_log, access_log_class = _access_log(args)
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=print_where,
            loop=loop,
            access_log=access_log,
            access_log_class=access_log_class,
        )
    except OSError as exc:
        message = listen_error(exc, args)
        if message is None:
            raise
        raise CommandError(message) from None
