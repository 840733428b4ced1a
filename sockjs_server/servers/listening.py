"""Opening the listening socket of a command-line server, with a one-line answer for the usual mistakes.

Below every server (aiohttp, the built-in one, uvicorn, granian) so that each
reports a port in use or an unknown host the same way.
"""

from __future__ import annotations

import argparse
import errno
import re
import socket

__all__ = ["CommandError", "listen_error", "listening_socket"]


class CommandError(Exception):
    """A user's mistake on the command line (a port in use, a bad URL, a missing folder).

    Its message names the problem and the fix; the command prints it on one
    line and exits with status 2, without a traceback.
    """


def listen_error(exc: OSError, args: argparse.Namespace) -> str | None:
    """One line for an error opening a listening socket, or None if it is something else."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve --host {args.host!r} ({exc.strerror}): give an IP address such as 127.0.0.1 or 0.0.0.0"
    codes = {errno.EADDRINUSE: "address already in use", errno.EACCES: "permission denied", errno.EADDRNOTAVAIL: "address not available"}
    if exc.errno not in codes:
        return None
    match = re.search(r"\('?([^',]*)'?, (\d+)\)", str(exc))
    port = int(match.group(2)) if match else getattr(args, "port", None)
    where = f"{match.group(1)}:{port}" if match else f"{args.host}:{port}"
    option = "--stomp-port" if port == getattr(args, "stomp_port", None) and port != args.port else "--port"
    if exc.errno == errno.EADDRINUSE:
        fix = f"another program listens there (an earlier server still running?): stop it or pick another port with {option}"
    elif exc.errno == errno.EACCES:
        fix = f"ports below 1024 need privileges: pick a port above 1024 with {option}"
    else:
        fix = "this machine has no such address: use --host 127.0.0.1 or 0.0.0.0"
    return f"cannot listen on {where}: {codes[exc.errno]}; {fix}"


def listening_socket(args: argparse.Namespace) -> socket.socket:
    """A socket bound to ``--host``/``--port`` (not yet listening), or :class:`CommandError`
    with the one-line answer (port in use, unknown host, ...)."""
    try:
        info = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(info[4])
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        message = listen_error(exc, args)
        if message is None:
            raise
        raise CommandError(message) from None
    sock.set_inheritable(True)
    return sock
